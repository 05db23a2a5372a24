import math

import pytest
import torch

from hashlearn.losses import DPSHLoss

DTYPES = [torch.float32, torch.float64]


def reference_dpsh(outputs, label_sets, similar, eta, own_quantization):
    """Slow loop over ordered pairs i != j and over every entry."""
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    total, n_pairs = 0.0, 0
    for i in range(batch):
        for j in range(batch):
            if i != j:
                theta = 0.5 * sum(u[i][k] * u[j][k] for k in range(n_bits))
                total += math.log1p(math.exp(theta)) - similar(label_sets, i, j) * theta
                n_pairs += 1
    loss = total / n_pairs if n_pairs else 0.0
    if own_quantization:
        loss += eta * sum((x - (1.0 if x > 0 else -1.0)) ** 2 for row in u for x in row) / (batch * n_bits)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=7, n_bits=16, n_classes=4, multi_label=multi_label)
    loss = DPSHLoss(16, 4, eta=0.3, own_quantization=own_quantization)
    value = loss(outputs, labels)
    assert value.dtype == dtype
    assert float(value) == approx(reference_dpsh(outputs, label_sets, similarity_of, 0.3, own_quantization), dtype)


def test_large_inner_products_stay_finite():
    outputs = torch.ones(3, 256, dtype=torch.float32)  # theta = 128: exp would overflow float32
    value = DPSHLoss(256, 2)(outputs, torch.tensor([0, 1, 1]))
    assert math.isfinite(float(value))
    # dissimilar pairs cost ~theta = 128, similar ones ~0; 4 of the 6 ordered pairs are dissimilar
    assert float(value) == pytest.approx(128 * 4 / 6, rel=1e-6)


def test_similar_pairs_prefer_equal_codes():
    loss = DPSHLoss(8, 2, own_quantization=False)
    code = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
    same = loss(torch.stack([code, code]), torch.tensor([0, 0]))
    opposite = loss(torch.stack([code, -code]), torch.tensor([0, 0]))
    assert float(same) < float(opposite)
