import pytest
import torch

from hashlearn.quantization import QUANTIZERS, NoQuantizer, build_quantizer
from hashlearn.quantization.base import make_generator


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize(
    "outputs, error, match",
    [
        ([[0.5, -0.5]], TypeError, "torch.Tensor"),
        (torch.zeros(2, 4, dtype=torch.int32), TypeError, "floating"),
        (torch.zeros(4), ValueError, "shape"),
        (torch.zeros(0, 4), ValueError, "at least one"),
    ],
)
def test_bad_outputs_raise_typed_errors(name, outputs, error, match):
    with pytest.raises(error, match=match):
        build_quantizer(name)(outputs)


def test_registry_lists_what_exists():
    assert set(QUANTIZERS) == {"none", "reg", "swd", "hswd"}
    with pytest.raises(ValueError, match="available: hswd, none, reg, swd"):
        build_quantizer("itq")
    with pytest.raises(TypeError):
        build_quantizer("swd", n_directions=3)


def test_no_quantizer_is_zero_in_the_outputs_dtype():
    value = NoQuantizer()(torch.randn(3, 8, dtype=torch.float64))
    assert value.item() == 0.0 and value.dtype == torch.float64


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("case", ["batch_of_one", "identical", "all_zero", "saturated"])
def test_gradients_are_finite_on_edge_cases(name, case):
    generator = torch.Generator().manual_seed(0)
    batch = 1 if case == "batch_of_one" else 6
    if case == "identical":
        outputs = torch.tanh(torch.randn(1, 16, generator=generator)).repeat(batch, 1)
    elif case == "all_zero":
        outputs = torch.zeros(batch, 16)
    elif case == "saturated":
        outputs = torch.where(torch.randn(batch, 16, generator=generator) > 0, 1.0, -1.0)
    else:
        outputs = torch.tanh(torch.randn(batch, 16, generator=generator))
    outputs.requires_grad_(True)
    value = build_quantizer(name)(outputs)
    assert torch.isfinite(value)
    if value.requires_grad:
        value.backward()
        assert torch.isfinite(outputs.grad).all()


def test_make_generator_seeds_and_validates():
    first, second = make_generator(5), make_generator(5)
    assert torch.equal(torch.randn(3, generator=first), torch.randn(3, generator=second))
    with pytest.raises(TypeError, match="random_state"):
        make_generator(1.5)
    make_generator(None)  # fresh entropy is allowed
