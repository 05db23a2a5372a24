"""CrossModalLifelongLoss against a slow explicit loop, float32 and float64; both sides' old codes are fixed targets."""

import math

import numpy as np
import pytest
import torch

from hashlearn.losses import LOSSES, build_objective
from hashlearn.losses.crossmodal import CrossModalLoss
from hashlearn.losses.lifelong_crossmodal import CrossModalLifelongLoss

from .conftest import DTYPES


def cosine(a: set, b: set) -> float:
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else 0.0


def dot(x, y) -> float:
    return sum(p * q for p, q in zip(x, y))


def bce_to_center(row, center) -> float:
    """Mean over bits of the binary cross-entropy of (u + 1) / 2 against the center's bits."""
    total = 0.0
    for value, bit in zip(row, center):
        p = min(max((value + 1) / 2, 1e-6), 1 - 1e-6)
        total += -(math.log(p) if bit > 0 else math.log(1 - p))
    return total / len(row)


def reference(image, text, label_sets, old_image, old_text, old_sets, centers, tie_breaker, old_classes, *, old_weight, new_weight,
              center_weight, eta, replay_weight):
    """The loss written as plain Python sums over image-text pairs."""
    f, g = image.detach().double().tolist(), text.detach().double().tolist()
    n, k = len(f), len(f[0])
    within = sum((k * cosine(label_sets[i], label_sets[j]) - dot(f[i], g[j])) ** 2 for i in range(n) for j in range(n)) / (n * n)
    total = new_weight * within / k**2
    if center_weight:
        def center_of(labels):
            summed = [sum(centers[c][b] for c in labels) for b in range(k)]
            return [tie_breaker[b] if s == 0 else (1 if s > 0 else -1) for b, s in enumerate(summed)]

        sides = []
        for codes in (f, g):
            weights = [replay_weight if label_sets[i] and label_sets[i] <= old_classes else 1.0 for i in range(n)]
            values = [bce_to_center(codes[i], center_of(label_sets[i])) for i in range(n)]
            sides.append(sum(w * v for w, v in zip(weights, values)) / sum(weights))
        total += center_weight * sum(sides) / 2
    if old_image:
        m = len(old_image)
        image_to_text = sum((k * cosine(label_sets[i], old_sets[j]) - dot(f[i], old_text[j])) ** 2 for i in range(n) for j in range(m))
        text_to_image = sum((k * cosine(label_sets[i], old_sets[j]) - dot(g[i], old_image[j])) ** 2 for i in range(n) for j in range(m))
        total += old_weight * (image_to_text + text_to_image) / (2 * n * m) / k**2
    quantization = [sum((v - (1.0 if v > 0 else -1.0)) ** 2 for row in codes for v in row) / (n * k) for codes in (f, g)]
    return total + eta * sum(quantization) / 2


def pm1(rows, bits, seed):
    return torch.where(torch.randn(rows, bits, generator=torch.Generator().manual_seed(seed)) > 0, 1.0, -1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("center_weight", [0.0, 0.8])
def test_matches_the_slow_reference(make_batch, approx, dtype, multi_label, center_weight):
    image, labels, label_sets = make_batch(dtype=dtype, batch=6, n_bits=8, n_classes=5, multi_label=multi_label, seed=2)
    text = make_batch(dtype=dtype, batch=6, n_bits=8, n_classes=5, seed=4)[0]
    old_labels = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 0, 0]], dtype=torch.uint8)
    old_sets = [{c for c in range(5) if old_labels[j, c]} for j in range(5)]
    old_image, old_text = pm1(5, 8, 3), pm1(5, 8, 5)
    settings = dict(old_weight=0.7, new_weight=1.3, center_weight=center_weight, eta=0.2, replay_weight=2.5)
    loss = CrossModalLifelongLoss(8, 5, **settings).to(dtype).set_old_database((old_image, old_text), old_labels)
    expected = reference(image, text, label_sets, old_image.tolist(), old_text.tolist(), old_sets, loss.centers.tolist(),
                         loss.tie_breaker.tolist(), {0, 1, 2}, **settings)
    assert float(loss((image, text), labels)) == approx(expected, dtype)
    # without old codes: the within-batch, center and quantization terms (every class new, no memory weighting)
    fresh = CrossModalLifelongLoss(8, 5, **settings).to(dtype)
    assert float(fresh((image, text), labels)) == approx(
        reference(image, text, label_sets, [], [], [], fresh.centers.tolist(), fresh.tie_breaker.tolist(), set(), **settings), dtype)


def test_old_centers_are_the_majority_of_both_sides_stored_codes():
    image = torch.tensor([[1.0, 1, 1, -1, -1, -1, 1, 1], [1.0, -1, 1, -1, 1, -1, 1, -1]])
    text = torch.tensor([[1.0, 1, -1, -1, -1, 1, 1, -1], [-1.0, -1, -1, -1, 1, 1, 1, 1]])
    loss = CrossModalLifelongLoss(8, 3, center_weight=1.0).set_old_database((image, text), torch.tensor([0, 0]))
    codes = torch.cat([image, text]).tolist()
    majority = [1.0 if sum(row[b] for row in codes) >= 0 else -1.0 for b in range(8)]  # ties: +1
    assert loss.centers[0].tolist() == majority and loss.old_classes.tolist() == [True, False, False]
    assert loss.n_old_pairs == 2 and loss.n_old == 4
    # the new classes' centers keep away from the old one
    assert all(float(loss.centers[c] @ loss.centers[0]) <= 0 for c in (1, 2))


def test_old_codes_get_no_gradient_and_packed_codes_equal_pm1_codes(make_batch):
    from hashlearn.codes import sign_to_codes

    image, labels, _ = make_batch(batch=4, n_bits=16, n_classes=3)
    text = make_batch(batch=4, n_bits=16, n_classes=3, seed=9)[0]
    old_image, old_text = pm1(7, 16, 1).double(), pm1(7, 16, 2).double()
    from_pm1 = CrossModalLifelongLoss(16, 3).double().set_old_database((old_image, old_text), torch.arange(7) % 3)
    from_packed = CrossModalLifelongLoss(16, 3).double().set_old_database(
        (sign_to_codes(old_image.numpy()), sign_to_codes(old_text.numpy())), np.arange(7) % 3)
    assert torch.equal(from_pm1.old_codes, from_packed.old_codes)
    image, text = image.clone().requires_grad_(True), text.clone().requires_grad_(True)
    from_packed((image, text), labels).backward()
    assert torch.isfinite(image.grad).all() and torch.isfinite(text.grad).all() and not from_packed.old_codes.requires_grad
    assert "old_codes" not in from_packed.state_dict()


def test_anchor_sampling_uses_one_seeded_subset_for_both_directions(make_batch):
    image, labels, _ = make_batch(batch=4, n_bits=8, n_classes=3)
    text = make_batch(batch=4, n_bits=8, n_classes=3, seed=3)[0]
    old = (pm1(40, 8, 5).double(), pm1(40, 8, 6).double())
    a = CrossModalLifelongLoss(8, 3, anchors_per_step=10).double().set_old_database(old, torch.arange(40) % 3, seed=4)
    b = CrossModalLifelongLoss(8, 3, anchors_per_step=10).double().set_old_database(old, torch.arange(40) % 3, seed=4)
    assert [float(a((image, text), labels)) for _ in range(3)] == [float(b((image, text), labels)) for _ in range(3)]


def test_bad_arguments_raise_typed_errors(make_batch):
    with pytest.raises(ValueError, match="memory_targets"):
        CrossModalLifelongLoss(8, 3, memory_targets="codes")
    loss = CrossModalLifelongLoss(8, 3)
    with pytest.raises(TypeError, match="pair"):
        loss.set_old_database(np.ones((4, 8)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="one row per old pair"):
        loss.set_old_database((np.ones((4, 8)), np.ones((3, 8))), np.zeros(4, dtype=np.int64))
    outputs, labels, _ = make_batch(batch=4, n_bits=8, n_classes=3)
    with pytest.raises(TypeError, match="two-tower"):
        loss(outputs, labels)


def test_registered_once_as_a_cross_modal_loss():
    assert LOSSES["lifelong-crossmodal"].cls is CrossModalLifelongLoss and issubclass(CrossModalLifelongLoss, CrossModalLoss)
    objective = build_objective("lifelong-crossmodal+hswd", 16, 4)
    assert objective.locality.cross_modal and objective.locality.own_quantization is False
