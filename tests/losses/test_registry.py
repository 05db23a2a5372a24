import pytest
import torch

from hashlearn.losses import LOSSES, available_methods, build_objective, parse_method_name
from hashlearn.quantization import QUANTIZERS, HSWDQuantizer, NoQuantizer, SlicedWassersteinQuantizer


def test_parse_method_names():
    assert parse_method_name("dsdh") == ("dsdh", None)
    assert parse_method_name(" DSDH+HSWD ") == ("dsdh", "hswd")
    with pytest.raises(ValueError, match="available losses: dpsh, dsdh"):
        parse_method_name("dhn+swd")
    with pytest.raises(ValueError, match="available quantizers: none, reg, swd, hswd"):
        parse_method_name("dsdh+itq")
    with pytest.raises(ValueError, match="more than one"):
        parse_method_name("dsdh+swd+reg")
    with pytest.raises(TypeError, match="string"):
        parse_method_name(None)


def test_plain_method_keeps_its_own_quantization():
    objective = build_objective("dsdh", 16, 10, eta=0.3)
    assert objective.locality.own_quantization and objective.locality.eta == 0.3
    assert isinstance(objective.quantizer, NoQuantizer) and objective.weight == 0.0


def test_suffix_replaces_the_own_quantization():
    objective = build_objective("dpsh+swd", 16, 10, quantization_weight=0.5, quantizer_kwargs={"n_projections": 8})
    assert not objective.locality.own_quantization
    assert isinstance(objective.quantizer, SlicedWassersteinQuantizer) and objective.quantizer.n_projections == 8
    assert objective.weight == 0.5
    ablation = build_objective("dpsh+none", 16, 10)
    assert not ablation.locality.own_quantization and ablation.weight == 0.0


def test_builder_rejects_conflicting_arguments():
    with pytest.raises(TypeError, match="own_quantization"):
        build_objective("dpsh", 16, 10, own_quantization=False)
    with pytest.raises(ValueError, match="quantizer_kwargs"):
        build_objective("dpsh", 16, 10, quantizer_kwargs={"n_projections": 8})
    with pytest.raises(TypeError):
        build_objective("dpsh", 16, 10, not_a_parameter=1)


def test_every_available_method_builds_and_runs():
    names = available_methods()
    assert len(names) == len(LOSSES) * (1 + len(QUANTIZERS))
    generator = torch.Generator().manual_seed(0)
    outputs = torch.tanh(torch.randn(8, 16, generator=generator))
    class_labels = torch.randint(0, 4, (8,), generator=generator)
    features = torch.randn(8, 6, generator=generator)
    for name in names:
        objective = build_objective(name, 16, 4)
        labels = features if name.startswith("unsupervised") else class_labels
        paired = getattr(objective.locality, "cross_modal", False)  # dcmh, ssah: (image, text) codes
        value = objective((outputs, outputs.flip(0)) if paired else outputs, labels)
        assert value.ndim == 0 and torch.isfinite(value), name


def test_hswd_suffix_gives_the_documented_value():
    outputs = torch.tanh(torch.randn(8, 16, generator=torch.Generator().manual_seed(1)))
    labels = torch.arange(8) % 4
    objective = build_objective("csq+hswd", 16, 4, quantization_weight=2.0)
    expected = LOSSES["csq"].cls(16, 4, own_quantization=False)(outputs, labels) + 2.0 * HSWDQuantizer()(outputs)
    assert objective(outputs, labels).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("name", ["dsdh+hswd", "hashnet", "csq+swd", "greedyhash"])
def test_objective_state_round_trips_through_safetensors(name):
    """Checkpoints hold objective.state_dict() as safetensors: plain tensors only, no pickle."""
    from safetensors.torch import load, save

    objective = build_objective(name, 16, 4)
    objective.step()
    state = {key: value.contiguous() for key, value in objective.state_dict().items()}
    restored = build_objective(name, 16, 4)
    restored.load_state_dict(load(save(state)))
    for key, value in restored.state_dict().items():
        assert torch.equal(value, state[key]), key
