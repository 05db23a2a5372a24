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


def _fit_free_codes(loss, labels, steps: int = 200) -> torch.Tensor:
    """Sign codes of free logits (one row per label) after ``steps`` Adam steps on ``loss(tanh(logits), labels)``."""
    logits = torch.nn.Parameter(0.1 * torch.randn(len(labels), loss.n_bits))
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(torch.tanh(logits), labels).backward()
        optimizer.step()
    return torch.where(logits > 0, 1.0, -1.0)


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
    codes = _fit_free_codes(loss, torch.tensor([0, 0, 1, 1, 2, 2]))
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


# --- center targets ---------------------------------------------------------------------------------
def slow_majority(codes, label_sets, n_classes):
    """Per class: +1 where at least half of its items' codes have +1 (ties +1); None for a class without items."""
    centers = []
    for c in range(n_classes):
        rows = [codes[i] for i in range(len(codes)) if c in label_sets[i]]
        centers.append([1 if sum(row[b] for row in rows) >= 0 else -1 for b in range(len(codes[0]))] if rows else None)
    return centers


def hamming(a, b):
    return sum(x != y for x, y in zip(a, b))


def slow_center_term(outputs, label_sets, centers, tie_breaker, only_old, replay_weight, stored=None):
    """Weighted mean over items of the mean over bits of the CSQ cross-entropy toward the item's center
    (or toward its stored ±1 code, where ``stored[i]`` is one)."""
    u = outputs.detach().double().tolist()
    total, weights = 0.0, 0.0
    for i, row in enumerate(u):
        summed = [sum(centers[c][b] for c in label_sets[i]) for b in range(len(row))]
        center = [tie_breaker[b] if s == 0 else (1 if s > 0 else -1) for b, s in enumerate(summed)]
        if stored is not None and stored[i] is not None:
            center = stored[i]
        bce = 0.0
        for b, value in enumerate(row):
            p = min(max((value + 1) / 2, 1e-6), 1 - 1e-6)
            t = (center[b] + 1) / 2
            bce -= t * math.log(p) + (1 - t) * math.log(1 - p)
        w = replay_weight if only_old(label_sets[i]) else 1.0
        total, weights = total + w * bce / len(row), weights + w
    return total / weights


def test_old_centers_are_the_majority_of_the_stored_codes_and_new_ones_are_far():
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((30, 16)) < 0.5, -1.0, 1.0)
    labels = rng.integers(0, 3, 30)  # classes 0-2 stored; 3-5 are new
    loss = LifelongLoss(16, 6, center_weight=1.0).set_old_database(codes, labels)
    centers = loss.centers.numpy().astype(int).tolist()
    expected = slow_majority(codes.tolist(), [{int(c)} for c in labels], 6)
    assert centers[:3] == expected[:3] and expected[3:] == [None] * 3
    assert loss.old_classes.tolist() == [True] * 3 + [False] * 3
    # greedy max-min: each new center is as far from the centers before it as any candidate is
    from hashlearn.losses.lifelong import N_RANDOM_CANDIDATES
    from scipy.linalg import hadamard

    candidates = np.concatenate([hadamard(16), -hadamard(16),
                                 np.where(np.random.default_rng(0).random((N_RANDOM_CANDIDATES, 16)) < 0.5, -1, 1)]).tolist()
    for c in range(3, 6):
        best = max(min(hamming(cand, centers[j]) for j in range(c)) for cand in candidates)
        assert min(hamming(centers[c], centers[j]) for j in range(c)) == best
    # the stored codes themselves are untouched by the loss
    assert torch.equal(loss.old_codes, torch.as_tensor(codes, dtype=torch.float32))


@pytest.mark.parametrize("code_dtype", [np.int8, np.float32, np.float64])
def test_majority_centers_of_multi_hot_labels_match_the_slow_reference(code_dtype):
    """Every item votes for each of its labels; ties (even counts) give +1; a class without items has no center."""
    from hashlearn.losses.lifelong import majority_centers

    rng = np.random.default_rng(0)
    codes = np.where(rng.random((40, 12)) < 0.5, -1, 1).astype(code_dtype)
    labels = (rng.random((40, 5)) < 0.4).astype(np.float32)
    labels[:, 4] = 0  # class 4 has no items
    centers, has_center = majority_centers(codes, labels)
    assert ((labels.T @ codes.astype(np.float64))[:4] == 0).any()  # the case has ties
    sets = [{c for c in range(5) if labels[i, c]} for i in range(40)]
    expected = slow_majority(codes.astype(int).tolist(), sets, 5)
    assert has_center.tolist() == [e is not None for e in expected] == [True] * 4 + [False]
    assert centers[:4].tolist() == expected[:4] and centers.dtype == np.int8


def test_new_centers_of_a_hadamard_parent_keep_csq_distances():
    """Old centers = CSQ's Hadamard rows: the new ones are n_bits/2 from all of them and from each other, as CSQ's own are."""
    from hashlearn.losses.csq import _min_pairwise_hamming, make_hash_centers
    from hashlearn.losses.lifelong import far_centers

    for n_bits in (16, 32, 64):
        old = make_hash_centers(n_bits, 10)[:5]
        new = far_centers(old, 5, n_bits)
        assert _min_pairwise_hamming(np.concatenate([old, new])) == n_bits // 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("replay_weight", [1.0, 4.0])
def test_center_term_matches_the_slow_reference(make_batch, approx, dtype, multi_label, replay_weight):
    outputs, labels, label_sets = make_batch(dtype=dtype, batch=8, n_bits=8, n_classes=4, multi_label=multi_label, seed=5)
    old = torch.where(torch.randn(10, 8, generator=torch.Generator().manual_seed(6)) > 0, 1.0, -1.0)
    old_labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 1, 0])  # classes 0 and 1 are old
    loss = LifelongLoss(8, 4, old_weight=0.5, new_weight=0.3, eta=0.2, center_weight=1.7, replay_weight=replay_weight)
    loss = loss.to(dtype).set_old_database(old, old_labels)
    centers = loss.centers.to(torch.int64).tolist()
    assert centers[:2] == slow_majority(old.tolist(), [{int(c)} for c in old_labels], 4)[:2]
    only_old = lambda labels: bool(labels) and labels <= {0, 1}  # noqa: E731
    expected = (1.7 * slow_center_term(outputs, label_sets, centers, loss.tie_breaker.tolist(), only_old, replay_weight)
                + reference(outputs, label_sets, old.tolist(), [{int(c)} for c in old_labels], 0.5, 0.3, 0.2))
    assert float(loss(outputs, labels)) == approx(expected, dtype)


def test_center_targets_learn_a_new_class_far_from_the_old_codes():
    """Free codes trained with the center term alone: new-class items end on their new center, old-class items on their stored majority."""
    torch.manual_seed(0)
    old = torch.tensor([[1.0] * 8 + [-1.0] * 8] * 3 + [[-1.0] * 8 + [1.0] * 8] * 3)
    loss = LifelongLoss(16, 3, new_weight=0.0, old_weight=0.0, eta=0.0, center_weight=1.0).set_old_database(old, torch.tensor([0] * 3 + [1] * 3))
    codes = _fit_free_codes(loss, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert torch.equal(codes[0], old[0]) and torch.equal(codes[2], old[3]) and torch.equal(codes[4], codes[5])
    assert min(hamming(codes[4].tolist(), old[0].tolist()), hamming(codes[4].tolist(), old[3].tolist())) >= 8


def test_center_arguments_raise_typed_errors():
    with pytest.raises(ValueError, match="center_weight"):
        LifelongLoss(8, 3, center_weight=-0.5)
    with pytest.raises(ValueError, match="replay_weight"):
        LifelongLoss(8, 3, replay_weight="5")


def test_recorded_centers_replace_the_majority_of_their_old_classes_only():
    rng = np.random.default_rng(3)
    codes = np.where(rng.random((20, 16)) < 0.5, -1.0, 1.0)
    labels = np.arange(20) % 3  # classes 0-2 old, 3 new
    recorded = {1: np.where(rng.random(16) < 0.5, -1, 1), 3: np.ones(16)}  # class 3 has no stored codes: its record is ignored
    majority = LifelongLoss(16, 4, center_weight=1.0).set_old_database(codes, labels, recorded_centers=recorded)
    kept = LifelongLoss(16, 4, center_weight=1.0, old_centers="recorded").set_old_database(codes, labels, recorded_centers=recorded)
    expected = slow_majority(codes.tolist(), [{int(c)} for c in labels], 4)
    assert majority.centers[:3].to(torch.int64).tolist() == expected[:3]
    assert kept.centers[1].to(torch.int64).tolist() == recorded[1].tolist()
    assert kept.centers[[0, 2]].to(torch.int64).tolist() == [expected[0], expected[2]]
    # the new class's center is placed far from the centers actually in use
    assert min(hamming(kept.centers[3].tolist(), kept.centers[j].tolist()) for j in range(3)) >= 6
    with pytest.raises(ValueError, match="old_centers"):
        LifelongLoss(16, 4, old_centers="median")
    with pytest.raises(ValueError, match="recorded center of class 1"):
        LifelongLoss(16, 4, old_centers="recorded").set_old_database(codes, labels, recorded_centers={1: np.zeros(16)})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("memory_targets", ["centers", "codes"])
def test_memory_items_aim_at_their_stored_codes_against_the_slow_reference(make_batch, approx, dtype, memory_targets):
    from hashlearn.losses.lifelong import with_stored_codes

    outputs, labels, label_sets = make_batch(dtype=dtype, batch=8, n_bits=8, n_classes=4, seed=9)
    old = torch.where(torch.randn(10, 8, generator=torch.Generator().manual_seed(4)) > 0, 1.0, -1.0)
    old_labels = torch.tensor([0, 1] * 5)
    stored_rows = np.where(np.random.default_rng(1).random((8, 8)) < 0.5, -1, 1)
    has_code = np.array([c in (0, 1) for c in labels.tolist()]) & (np.arange(8) % 2 == 0)  # some old-class items carry a code
    targets = torch.as_tensor(with_stored_codes(labels.numpy(), 4, stored_rows, has_code))
    loss = LifelongLoss(8, 4, old_weight=0.5, new_weight=0.3, eta=0.2, center_weight=1.1, replay_weight=3.0, memory_targets=memory_targets)
    loss = loss.to(dtype).set_old_database(old, old_labels)
    stored = [stored_rows[i].tolist() if has_code[i] and memory_targets == "codes" else None for i in range(8)]
    only_old = lambda labels: bool(labels) and labels <= {0, 1}  # noqa: E731
    expected = (1.1 * slow_center_term(outputs, label_sets, loss.centers.to(torch.int64).tolist(), loss.tie_breaker.tolist(), only_old, 3.0, stored)
                + reference(outputs, label_sets, old.tolist(), [{int(c)} for c in old_labels], 0.5, 0.3, 0.2))
    assert float(loss(outputs, targets)) == approx(expected, dtype)
    # the rows' label part alone gives the plain loss; with "centers" the stored codes change nothing
    plain = float(loss(outputs, labels))
    assert (plain == approx(float(loss(outputs, targets)), dtype)) == (memory_targets == "centers")


def test_stored_code_targets_pull_memory_items_onto_their_own_codes():
    """Free codes of two items of one old class: with "codes" each ends on its own stored code, with "centers" both on the center."""
    from hashlearn.losses.lifelong import with_stored_codes

    torch.manual_seed(0)
    old = torch.tensor([[1.0] * 16, [1.0] * 12 + [-1.0] * 4, [-1.0] * 16])
    stored = np.array([[1] * 16, [1] * 12 + [-1] * 4])
    targets = torch.as_tensor(with_stored_codes(np.array([0, 0]), 2, stored, np.array([True, True])))
    for memory_targets in ("codes", "centers"):
        loss = LifelongLoss(16, 2, new_weight=0.0, old_weight=0.0, eta=0.0, center_weight=1.0, memory_targets=memory_targets)
        loss.set_old_database(old, torch.tensor([0, 0, 1]))
        codes = _fit_free_codes(loss, targets)
        expected = stored if memory_targets == "codes" else np.repeat(loss.centers[:1].numpy(), 2, axis=0)
        assert np.array_equal(codes.numpy(), expected), memory_targets


def test_with_stored_codes_checks_its_inputs():
    from hashlearn.losses.lifelong import with_stored_codes

    rows = with_stored_codes(np.array([[1, 0, 1]]), 3, np.array([[-1, 1]]), np.array([True]))
    assert rows.tolist() == [[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]] and rows.dtype == np.float32
    with pytest.raises(ValueError, match="has_code"):
        with_stored_codes(np.array([0, 1]), 2, np.ones((2, 4)), np.array([True]))
    with pytest.raises(ValueError, match="memory_targets"):
        LifelongLoss(8, 3, memory_targets="stored")
