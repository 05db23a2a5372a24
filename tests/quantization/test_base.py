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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sort_rows_matches_torch_sort_in_value_and_gradient(dtype):
    from hashlearn.quantization.base import sort_rows

    generator = torch.Generator().manual_seed(0)
    values = torch.randn(5, 33, generator=generator, dtype=dtype)
    values[0, :10] = 0.25  # ties
    weights = torch.randn(5, 33, generator=generator, dtype=dtype)
    ours, reference = values.clone().requires_grad_(True), values.clone().requires_grad_(True)
    (sort_rows(ours) * weights).sum().backward()
    (torch.sort(reference, dim=1).values * weights).sum().backward()
    assert torch.equal(sort_rows(values), torch.sort(values, dim=1).values)
    # tied entries may receive each other's gradient; compare rows as multisets
    for row in range(5):
        assert sorted(ours.grad[row].tolist()) == pytest.approx(sorted(reference.grad[row].tolist()))


@pytest.mark.parametrize("count", [1, 7, 16])
def test_lowest_in_rows_selects_the_smallest(count):
    from hashlearn.quantization.base import lowest_in_rows

    values = torch.randn(4, 16, generator=torch.Generator().manual_seed(count))
    chosen = lowest_in_rows(values, count)
    assert chosen.shape == (4, count)
    for row in range(4):
        assert sorted(values[row, chosen[row]].tolist()) == sorted(values[row].tolist())[:count]
