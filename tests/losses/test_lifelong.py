"""LifelongLoss against a slow explicit loop, float32 and float64; the old codes are fixed targets."""

import math

import numpy as np
import pytest
import torch

from hashlearn.codes import sign_to_codes
from hashlearn.losses import LOSSES, build_objective
from hashlearn.losses.lifelong import LifelongLoss

from .conftest import DTYPES


def cosine(a: set, b: set) -> float:
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else 0.0


def reference(outputs, label_sets, old_codes, old_sets, old_weight, new_weight, eta):
    """The loss written as plain Python sums over pairs."""
    u = outputs.detach().double().tolist()
    n, k = len(u), len(u[0])
    within, pairs = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i != j:
                within += (k * cosine(label_sets[i], label_sets[j]) - sum(u[i][b] * u[j][b] for b in range(k))) ** 2
                pairs += 1
    total = new_weight * within / max(pairs, 1) / k**2
    if old_codes:
        cross = 0.0
        for i in range(n):
            for j in range(len(old_codes)):
                cross += (k * cosine(label_sets[i], old_sets[j]) - sum(u[i][b] * old_codes[j][b] for b in range(k))) ** 2
        total += old_weight * cross / (n * len(old_codes)) / k**2
    quantization = sum((value - (1.0 if value > 0 else -1.0)) ** 2 for row in u for value in row) / (n * k)
    return total + eta * quantization


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
def test_matches_the_slow_reference(make_batch, approx, dtype, multi_label):
    outputs, labels, label_sets = make_batch(dtype=dtype, batch=6, n_bits=8, n_classes=4, multi_label=multi_label, seed=2)
    _, old_labels, old_sets = make_batch(batch=5, n_bits=8, n_classes=4, multi_label=multi_label, seed=7)
    old = torch.where(torch.randn(5, 8, generator=torch.Generator().manual_seed(3)) > 0, 1.0, -1.0)
    loss = LifelongLoss(8, 4, old_weight=0.7, new_weight=1.3, eta=0.2).to(dtype).set_old_database(old, old_labels)
    expected = reference(outputs, label_sets, old.tolist(), old_sets, 0.7, 1.3, 0.2)
    assert float(loss(outputs, labels)) == approx(expected, dtype)
    # without old codes only the within-batch and quantization terms remain
    assert float(LifelongLoss(8, 4, new_weight=1.3, eta=0.2).to(dtype)(outputs, labels)) == approx(
        reference(outputs, label_sets, [], [], 0.7, 1.3, 0.2), dtype)


def test_packed_codes_equal_pm1_codes_and_get_no_gradient(make_batch):
    outputs, labels, _ = make_batch(batch=6, n_bits=16, n_classes=3)
    old = torch.where(torch.randn(9, 16, generator=torch.Generator().manual_seed(1)) > 0, 1.0, -1.0).double()
    old_labels = torch.arange(9) % 3
    from_pm1 = LifelongLoss(16, 3).double().set_old_database(old, old_labels)
    from_packed = LifelongLoss(16, 3).double().set_old_database(sign_to_codes(old.numpy()), old_labels.numpy())
    assert torch.equal(from_pm1.old_codes, from_packed.old_codes)
    outputs = outputs.clone().requires_grad_(True)
    from_packed(outputs, labels).backward()
    assert not from_packed.old_codes.requires_grad and torch.isfinite(outputs.grad).all()
    # the stored codes are data, not weights: they stay out of the state_dict (and so out of checkpoints)
    assert "old_codes" not in from_packed.state_dict()


def test_old_codes_pull_new_items_of_an_old_class_to_its_code():
    """Free codes trained only against fixed old codes end at the old code of their class (and far from the others)."""
    torch.manual_seed(0)
    old = torch.tensor([[1.0] * 8 + [-1.0] * 8, [-1.0] * 8 + [1.0] * 8])
    loss = LifelongLoss(16, 3, new_weight=0.0).set_old_database(old, torch.tensor([0, 1]))
    logits = torch.nn.Parameter(0.1 * torch.randn(6, 16))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss(torch.tanh(logits), labels).backward()
        optimizer.step()
    codes = torch.where(logits > 0, 1.0, -1.0)
    assert torch.equal(codes[0], old[0]) and torch.equal(codes[3], old[1])
    assert abs(float(codes[4] @ old[0])) <= 8 and abs(float(codes[4] @ old[1])) <= 8  # class 2: >= 4 bits from both


def test_anchor_sampling_uses_a_seeded_subset(make_batch):
    outputs, labels, _ = make_batch(batch=4, n_bits=8, n_classes=3)
    old = torch.where(torch.randn(50, 8, generator=torch.Generator().manual_seed(5)) > 0, 1.0, -1.0).double()
    a = LifelongLoss(8, 3, anchors_per_step=10).double().set_old_database(old, torch.arange(50) % 3, seed=4)
    b = LifelongLoss(8, 3, anchors_per_step=10).double().set_old_database(old, torch.arange(50) % 3, seed=4)
    assert [float(a(outputs, labels)) for _ in range(3)] == [float(b(outputs, labels)) for _ in range(3)]


def test_bad_arguments_raise_typed_errors():
    with pytest.raises(ValueError, match="old_weight"):
        LifelongLoss(8, 3, old_weight=-1)
    with pytest.raises(ValueError, match="anchors_per_step"):
        LifelongLoss(8, 3, anchors_per_step=0)
    loss = LifelongLoss(8, 3)
    with pytest.raises(ValueError, match=r"\(M, 8\)"):
        loss.set_old_database(np.ones((4, 16)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="only -1 and"):
        loss.set_old_database(np.full((4, 8), 0.5), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="must match"):
        loss.set_old_database(np.ones((4, 8)), np.zeros(3, dtype=np.int64))


def test_registered_once_and_built_by_the_objective_builder():
    assert LOSSES["lifelong"].cls is LifelongLoss
    objective = build_objective("lifelong+hswd", 16, 10)
    assert isinstance(objective.locality, LifelongLoss) and objective.locality.own_quantization is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_compatible_loss_adds_the_cross_term_to_the_objective(make_batch, approx, dtype):
    from hashlearn.losses.lifelong import BackwardCompatibleLoss

    outputs, labels, label_sets = make_batch(dtype=dtype, batch=5, n_bits=8, n_classes=3, seed=4)
    _, old_labels, old_sets = make_batch(batch=6, n_bits=8, n_classes=3, seed=9)
    old = torch.where(torch.randn(6, 8, generator=torch.Generator().manual_seed(8)) > 0, 1.0, -1.0)
    objective = build_objective("dpsh", 8, 3).to(dtype)
    loss = BackwardCompatibleLoss(objective, old, old_labels, weight=0.5, anchors_per_step=None).to(dtype)
    cross = reference(outputs, label_sets, old.tolist(), old_sets, 1.0, 0.0, 0.0)
    assert float(loss(outputs, labels)) == approx(float(objective(outputs, labels)) + 0.5 * cross, dtype)
    with pytest.raises(ValueError, match="weight"):
        BackwardCompatibleLoss(objective, old, old_labels, weight=-1.0)
