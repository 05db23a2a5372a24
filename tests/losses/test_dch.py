import math

import pytest
import torch

from hashlearn.losses import DCHLoss
from hashlearn.losses.dch import cosine_hamming_distance

DTYPES = [torch.float32, torch.float64]


def cosine(a, b):
    norm_a, norm_b = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (norm_a * norm_b)


def reference_dch(outputs, label_sets, similar, gamma, lam, own_quantization):
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    pairs = [(i, j) for i in range(batch) for j in range(batch) if i != j]
    similar_losses, dissimilar_losses = [], []
    for i, j in pairs:
        d = max(n_bits / 2 * (1 - cosine(u[i], u[j])), 1e-6)
        if similar(label_sets, i, j):
            similar_losses.append(math.log(1 + d / gamma))
        else:
            dissimilar_losses.append(math.log(1 + gamma / d))
    loss = sum(similar_losses) / max(len(similar_losses), 1) + sum(dissimilar_losses) / max(len(dissimilar_losses), 1)
    if own_quantization:
        q = [math.log(1 + n_bits / 2 * (1 - cosine([abs(x) for x in row], [1.0] * n_bits)) / gamma) for row in u]
        loss += lam * sum(q) / batch
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=7, n_bits=16, n_classes=3, multi_label=multi_label, seed=5)
    loss = DCHLoss(16, 3, gamma=5.0, lam=0.4, own_quantization=own_quantization)
    expected = reference_dch(outputs, label_sets, similarity_of, 5.0, 0.4, own_quantization)
    assert loss(outputs, labels).item() == approx(expected, dtype)


def test_distance_is_the_hamming_distance_for_binary_codes():
    codes = torch.where(torch.rand(6, 24, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0).double()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1).double()
    assert torch.allclose(cosine_hamming_distance(codes), hamming)


def test_gamma_must_be_positive():
    with pytest.raises(ValueError, match="gamma"):
        DCHLoss(8, 2, gamma=0)
