import math

import numpy as np
import pytest
import torch

from hashlearn.losses import CSQLoss, make_hash_centers

DTYPES = [torch.float32, torch.float64]


def min_distance(centers):
    return min(int((a != b).sum()) for i, a in enumerate(centers) for b in centers[i + 1 :])


def test_hadamard_centers_are_orthogonal_rows():
    centers = make_hash_centers(16, 10)
    assert centers.shape == (10, 16) and set(np.unique(centers)) == {-1, 1}
    assert min_distance(centers) == 8  # Hadamard rows differ in exactly half the bits


def test_up_to_twice_n_bits_classes_use_plus_minus_hadamard():
    centers = make_hash_centers(8, 16)
    assert np.array_equal(centers[8:], -centers[:8])
    assert min_distance(centers) == 4
    assert len({tuple(row) for row in centers}) == 16


@pytest.mark.parametrize("n_bits, n_classes", [(8, 17), (24, 5)])
def test_random_centers_when_hadamard_cannot_serve(n_bits, n_classes):
    centers = make_hash_centers(n_bits, n_classes, random_state=3)
    assert centers.shape == (n_classes, n_bits) and set(np.unique(centers)) <= {-1, 1}
    assert np.array_equal(centers, make_hash_centers(n_bits, n_classes, random_state=3))


def test_random_centers_meet_the_minimum_distance_when_possible():
    centers = make_hash_centers(32, 10, method="random", random_state=0, min_distance=10)
    assert min_distance(centers) >= 10
    hopeless = make_hash_centers(8, 40, method="random", random_state=0, min_distance=8, max_tries=5)
    assert hopeless.shape == (40, 8)  # best effort, no error


def test_unknown_center_method():
    with pytest.raises(ValueError, match="centers"):
        make_hash_centers(8, 2, method="learned")


def reference_csq(outputs, label_sets, centers, tie_breaker, lam, own_quantization):
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    total = 0.0
    for i in range(batch):
        for k in range(n_bits):
            summed = sum(centers[c][k] for c in label_sets[i])
            center_bit = tie_breaker[k] if summed == 0 else math.copysign(1.0, summed)
            target = (center_bit + 1) / 2
            p = min(max((u[i][k] + 1) / 2, 1e-6), 1 - 1e-6)
            total -= target * math.log(p) + (1 - target) * math.log(1 - p)
    loss = total / (batch * n_bits)
    if own_quantization:
        loss += lam * sum((abs(x) - 1) ** 2 for row in u for x in row) / (batch * n_bits)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, dtype, multi_label, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=8, n_bits=16, n_classes=4, multi_label=multi_label, seed=6)
    loss = CSQLoss(16, 4, lam=0.5, own_quantization=own_quantization)
    expected = reference_csq(outputs, label_sets, loss.centers.tolist(), loss.tie_breaker.tolist(), 0.5, own_quantization)
    assert loss(outputs, labels).item() == approx(expected, dtype)


def test_multi_label_center_breaks_ties_with_the_fixed_vector():
    loss = CSQLoss(8, 2)
    centers = loss.item_centers(torch.tensor([[1.0, 1.0]]))[0]
    first, second = loss.centers
    agree = first == second
    assert torch.equal(centers[agree], first[agree])
    assert torch.equal(centers[~agree], loss.tie_breaker[~agree])
    assert (~agree).any()


def test_codes_at_their_center_cost_almost_nothing():
    loss = CSQLoss(16, 3)
    labels = torch.tensor([0, 1, 2])
    at_center = loss(loss.centers[labels].clone(), labels)
    elsewhere = loss(-loss.centers[labels].clone(), labels)
    assert at_center.item() < 1e-4 < elsewhere.item()
