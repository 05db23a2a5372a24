import math

import pytest
import torch

from hashlearn.losses import DCMHLoss, build_objective
from hashlearn.quantization import HSWDQuantizer

DTYPES = [torch.float32, torch.float64]


def paired_batch(dtype, batch=6, n_bits=16, n_classes=4, multi_label=True, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)
    text = torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)
    if multi_label:
        labels = (torch.rand(batch, n_classes, generator=generator) < 0.4).to(torch.uint8)
        label_sets = [{c for c in range(n_classes) if labels[i, c]} for i in range(batch)]
    else:
        labels = torch.randint(0, n_classes, (batch,), generator=generator)
        label_sets = [{int(labels[i])} for i in range(batch)]
    return image, text, labels, label_sets


def reference_dcmh(image, text, label_sets, gamma, eta, own_quantization):
    """Slow loop over every image-text pair (i, j), every entry and every bit."""
    F, G = image.double().tolist(), text.double().tolist()
    batch, n_bits = len(F), len(F[0])
    total = 0.0
    for i in range(batch):
        for j in range(batch):
            theta = 0.5 * sum(F[i][k] * G[j][k] for k in range(n_bits))
            s = 1.0 if label_sets[i] & label_sets[j] else 0.0
            total += math.log1p(math.exp(theta)) - s * theta
    loss = total / batch**2
    if own_quantization:
        quantization = 0.0
        for i in range(batch):
            for k in range(n_bits):
                b = 1.0 if F[i][k] + G[i][k] > 0 else -1.0
                quantization += (b - F[i][k]) ** 2 + (b - G[i][k]) ** 2
        balance = sum((sum(F[i][k] for i in range(batch)) / batch) ** 2 + (sum(G[i][k] for i in range(batch)) / batch) ** 2
                      for k in range(n_bits))
        loss += gamma * quantization / (batch * n_bits) + eta * balance / n_bits
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(dtype, multi_label, own_quantization):
    image, text, labels, label_sets = paired_batch(dtype, multi_label=multi_label)
    loss = DCMHLoss(16, 4, gamma=0.3, eta=0.2, own_quantization=own_quantization)
    value = loss((image, text), labels)
    assert value.dtype == dtype
    tolerance = dict(rel=2e-5, abs=1e-6) if dtype == torch.float32 else dict(rel=1e-10, abs=1e-12)
    assert float(value) == pytest.approx(reference_dcmh(image, text, label_sets, 0.3, 0.2, own_quantization), **tolerance)


def test_with_pluggable_quantizer_is_the_mean_over_modalities():
    image, text, labels, _ = paired_batch(torch.float64)
    objective = build_objective("dcmh+hswd", 16, 4, quantization_weight=0.5)
    assert objective.locality.own_quantization is False
    expected = DCMHLoss(16, 4, own_quantization=False)((image, text), labels) + 0.5 * (
        HSWDQuantizer()(image) + HSWDQuantizer()(text)) / 2
    assert float(objective((image, text), labels)) == pytest.approx(float(expected), rel=1e-12)


def test_aligned_pairs_cost_less_than_opposite_ones():
    loss = DCMHLoss(8, 2, own_quantization=False)
    code = torch.tensor([[1.0, -1, 1, -1, 1, -1, 1, -1], [-1.0, 1, -1, 1, -1, 1, -1, 1]])
    labels = torch.tensor([0, 1])
    assert float(loss((code, code), labels)) < float(loss((code, -code), labels))


def test_bad_inputs_are_typed_errors():
    loss = DCMHLoss(8, 2)
    with pytest.raises(TypeError, match="pair"):
        loss(torch.zeros(2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same shape"):
        loss((torch.zeros(2, 8), torch.zeros(3, 8)), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n_bits=8"):
        loss((torch.zeros(2, 4), torch.zeros(2, 4)), torch.tensor([0, 1]))


def test_gradients_are_finite_when_saturated():
    image = torch.ones(4, 64, requires_grad=True)
    text = (-torch.ones(4, 64)).requires_grad_(True)
    value = DCMHLoss(64, 2)((image, text), torch.tensor([0, 0, 1, 1]))
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(image.grad).all() and torch.isfinite(text.grad).all()
