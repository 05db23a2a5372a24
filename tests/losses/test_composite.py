import pytest
import torch

from hashlearn.losses import CompositeLoss, DSDHLoss, HashNetLoss
from hashlearn.quantization import HSWDQuantizer, NoQuantizer, Quantizer


def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.tanh(torch.randn(6, 8, generator=generator)), torch.tensor([0, 1, 2, 0, 1, 2])


def test_value_is_locality_plus_weighted_quantizer():
    outputs, labels = batch()
    locality, quantizer = DSDHLoss(8, 3, own_quantization=False), HSWDQuantizer()
    objective = CompositeLoss(locality, quantizer, weight=0.7)
    expected = locality(outputs, labels) + 0.7 * quantizer(outputs)
    assert objective(outputs, labels).item() == pytest.approx(expected.item())
    assert objective.last_terms["quantization"].item() == pytest.approx(quantizer(outputs).item())
    assert objective.last_terms["locality"].item() == pytest.approx(locality(outputs, labels).item())


def test_parameters_are_the_locality_loss_parameters():
    objective = CompositeLoss(DSDHLoss(8, 3), HSWDQuantizer(), 0.1)
    assert [name for name, _ in objective.named_parameters()] == ["locality.classifier.weight"]


def test_without_quantizer_the_value_is_the_locality_loss():
    outputs, labels = batch()
    locality = DSDHLoss(8, 3)
    objective = CompositeLoss(locality)
    assert isinstance(objective.quantizer, NoQuantizer)
    assert objective(outputs, labels).item() == pytest.approx(locality(outputs, labels).item())


def test_hooks_reach_both_parts():
    calls = []

    class Recorder(Quantizer):
        def compute(self, outputs):
            return outputs.new_zeros(())

        def on_epoch_start(self, epoch):
            calls.append(("epoch", epoch))

        def step(self):
            calls.append("step")

    objective = CompositeLoss(HashNetLoss(8, 2, step_size=1), Recorder(), 1.0)
    objective.on_epoch_start(3)
    objective.step()
    assert calls == [("epoch", 3), "step"]
    assert objective.locality.scale > 1


def test_bad_parts_and_weights():
    with pytest.raises(TypeError, match="locality"):
        CompositeLoss(HSWDQuantizer())
    with pytest.raises(TypeError, match="quantizer"):
        CompositeLoss(DSDHLoss(8, 3), DSDHLoss(8, 3))
    for weight in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight"):
            CompositeLoss(DSDHLoss(8, 3), HSWDQuantizer(), weight)
