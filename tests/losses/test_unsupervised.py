import math

import pytest
import torch

from hashlearn.losses import UnsupervisedLoss

DTYPES = [torch.float32, torch.float64]


def cosine(a, b):
    norm_a, norm_b = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return 0.0 if norm_a == 0 or norm_b == 0 else sum(x * y for x, y in zip(a, b)) / (norm_a * norm_b)


def neighbour_sets(features, n_neighbors, far_fraction):
    f = features.double().tolist()
    batch = len(f)
    near, far = [], []
    for i in range(batch):
        others = sorted((sum((x - y) ** 2 for x, y in zip(f[i], f[j])), j) for j in range(batch) if j != i)
        ranked = [j for _, j in others]
        n_near = min(n_neighbors, batch - 1)
        n_far = min(int(far_fraction * (batch - 1)), batch - 1 - n_near)
        near.append(ranked[:n_near])
        far.append(ranked[len(ranked) - n_far :])
    return near, far


def reference_unsupervised(outputs, features, mode, n_neighbors, far_fraction, margin):
    u = outputs.double().tolist()
    near, far = neighbour_sets(features, n_neighbors, far_fraction)
    if mode == "pairwise":
        near_terms = [(1 - cosine(u[i], u[j])) ** 2 for i in range(len(u)) for j in near[i]]
        far_terms = [max(0.0, cosine(u[i], u[j]) - margin) ** 2 for i in range(len(u)) for j in far[i]]
        return sum(near_terms) / max(len(near_terms), 1) + sum(far_terms) / max(len(far_terms), 1)
    terms = [
        max(0.0, margin + (1 - cosine(u[i], u[j])) / 2 - (1 - cosine(u[i], u[k])) / 2)
        for i in range(len(u))
        for j in near[i]
        for k in far[i]
    ]
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode, margin", [("pairwise", 0.0), ("pairwise", 0.2), ("triplet", 0.25), ("triplet", 0.6)])
@pytest.mark.parametrize("batch", [2, 3, 12])
def test_matches_slow_loop(approx, dtype, mode, margin, batch):
    generator = torch.Generator().manual_seed(batch)
    features = torch.randn(batch, 5, generator=generator, dtype=torch.float64).to(dtype)
    outputs = torch.tanh(torch.randn(batch, 16, generator=generator, dtype=torch.float64)).to(dtype)
    loss = UnsupervisedLoss(16, mode=mode, n_neighbors=3, far_fraction=0.4, margin=margin)
    expected = reference_unsupervised(outputs, features, mode, 3, 0.4, margin)
    assert loss(outputs, features).item() == approx(expected, dtype)


def test_default_margins_and_bad_arguments():
    assert UnsupervisedLoss(8).margin == 0.0
    assert UnsupervisedLoss(8, mode="triplet").margin == 0.25
    with pytest.raises(ValueError, match="mode"):
        UnsupervisedLoss(8, mode="listwise")
    with pytest.raises(ValueError, match="far_fraction"):
        UnsupervisedLoss(8, far_fraction=0.0)
    with pytest.raises(ValueError, match="n_neighbors"):
        UnsupervisedLoss(8, n_neighbors=0)


def test_neighbours_with_equal_codes_and_far_items_with_orthogonal_codes_cost_nothing():
    features = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    a = torch.tensor([1.0, 1.0, 1.0, 1.0])
    b = torch.tensor([1.0, -1.0, 1.0, -1.0])  # orthogonal to a
    outputs = torch.stack([a, a, b, b])
    assert UnsupervisedLoss(4, n_neighbors=1, far_fraction=0.67).forward(outputs, features).item() == pytest.approx(0.0, abs=1e-7)
