import itertools

import numpy as np
import pytest
import torch

from hashlearn.attacks import ATTACKS, CMLATarget
from hashlearn.attacks.cmla_target import greedy_target_code, ranking_ap, target_code_value
from hashlearn.codes import codes_to_pm1, sign_to_codes


def slow_ap(code, references, relevant):
    """AP of Hamming ranking, one reference at a time, ties by ascending reference id."""
    distances = [sum(1 for a, b in zip(code, row) if a != b) for row in references]
    order = sorted(range(len(references)), key=lambda j: (distances[j], j))
    hits, total = 0, 0.0
    for rank, j in enumerate(order, start=1):
        if relevant[j]:
            hits += 1
            total += hits / rank
    return total / max(int(np.sum(relevant)), 1)


def slow_value(code, same, other, relevant, weight, cap=None):
    same_ap = slow_ap(code, same, relevant)
    return -slow_ap(code, other, relevant) + weight * (same_ap if cap is None else min(same_ap, cap))


def slow_greedy(code, same, other, relevant, weight, max_flips=None, frozen=None, cap=None):
    """The target-code step written out: try every allowed single flip, keep the first best, repeat."""
    code = list(code)
    allowed = [True] * len(code) if frozen is None else [not f for f in frozen]
    best, flips = slow_value(code, same, other, relevant, weight, cap), 0
    while any(allowed) and (max_flips is None or flips < max_flips):
        choice, choice_value = None, best
        for bit in range(len(code)):
            if not allowed[bit]:
                continue
            trial = code.copy()
            trial[bit] *= -1
            value = slow_value(trial, same, other, relevant, weight, cap)
            if value > choice_value + 1e-12:
                choice, choice_value = bit, value
        if choice is None:
            break
        code[choice] *= -1
        allowed[choice] = False
        best, flips = choice_value, flips + 1
    return np.array(code), best


def random_case(seed, n_bits=8, n_ref=12):
    rng = np.random.default_rng(seed)
    same = rng.choice([-1, 1], (n_ref, n_bits))
    other = np.where(rng.random((n_ref, n_bits)) < 0.8, same, -same)  # paired codes, mostly aligned
    code = same[0] * np.where(rng.random(n_bits) < 0.85, 1, -1)
    relevant = rng.random(n_ref) < 0.4
    relevant[0] = True
    return code, same, other, relevant


@pytest.mark.parametrize("seed", range(4))
def test_ranking_ap_matches_a_slow_loop(seed):
    code, same, _, relevant = random_case(seed)
    distances = ((len(code) - same @ code) // 2)[None]
    assert ranking_ap(distances, relevant)[0] == pytest.approx(slow_ap(code, same, relevant), abs=1e-12)
    assert ranking_ap(distances, np.zeros_like(relevant))[0] == 0.0


def test_ranking_ap_takes_one_relevance_row_per_distance_row():
    rows = [random_case(seed) for seed in range(5)]
    same = rows[0][1]
    distances = np.stack([(len(code) - same @ code) // 2 for code, *_ in rows])
    relevant = np.stack([case[3] for case in rows])
    relevant[2] = False  # a row with nothing relevant scores 0
    expected = [slow_ap(code, same, row) if row.any() else 0.0 for (code, *_), row in zip(rows, relevant)]
    np.testing.assert_allclose(ranking_ap(distances, relevant), expected, atol=1e-12)


@pytest.mark.parametrize("seed, weight, max_flips, frozen, cap", [(0, 1.0, None, None, None), (1, 4.0, None, None, None),
                                                                  (2, 1.0, 2, None, None), (3, 0.5, None, [True, False] * 4, None),
                                                                  (4, 0.0, None, None, None), (5, 4.0, None, None, 0.4), (6, 2.0, None, None, 0.6)])
def test_greedy_target_code_matches_a_slow_brute_force(seed, weight, max_flips, frozen, cap):
    code, same, other, relevant = random_case(seed)
    fast, fast_value = greedy_target_code(code, same, other, relevant, weight, max_flips, None if frozen is None else np.array(frozen),
                                          same_cap=cap)
    slow, slow_best = slow_greedy(code, same, other, relevant, weight, max_flips, frozen, cap)
    np.testing.assert_array_equal(fast, slow)
    assert fast_value == pytest.approx(slow_best, abs=1e-12)
    assert fast_value == pytest.approx(target_code_value(fast, same, other, relevant, weight, cap), abs=1e-12)
    assert fast_value >= target_code_value(code, same, other, relevant, weight, cap)
    if frozen is not None:
        assert (fast[np.array(frozen)] == code[np.array(frozen)]).all()
    if max_flips is not None:
        assert (fast != code).sum() <= max_flips


def test_greedy_first_flip_is_the_best_single_flip_and_below_the_exhaustive_optimum():
    code, same, other, relevant = random_case(7, n_bits=6, n_ref=10)
    one, one_value = greedy_target_code(code, same, other, relevant, 1.0, max_flips=1)
    singles = []
    for bit in range(6):
        trial = code.copy()
        trial[bit] *= -1
        singles.append(slow_value(trial, same, other, relevant, 1.0))
    assert one_value == pytest.approx(max(max(singles), slow_value(code, same, other, relevant, 1.0)), abs=1e-12)
    _, greedy_value = greedy_target_code(code, same, other, relevant, 1.0)
    exhaustive = max(slow_value(np.array(bits), same, other, relevant, 1.0) for bits in itertools.product([-1, 1], repeat=6))
    assert greedy_value <= exhaustive + 1e-12


def test_costs_filter_the_candidates():
    code, same, other, relevant = random_case(1)
    costs = np.linspace(0.1, 2.0, len(code))
    target, _ = greedy_target_code(code, same, other, relevant, 1.0, costs=costs, max_cost=0.8)
    assert (costs[target != code] <= 0.8).all()


@pytest.fixture()
def reference(trained_model, digits):
    x, y = digits
    # the attacker's references: clean codes of training items in the query's "modality" and of a second view
    same = trained_model.encode(x[:300])
    other = trained_model.encode(x[:300].roll(1, dims=1))  # a second view of the same items
    return same, other, y[:300].numpy()


def reference_value(attack, model, x, labels):
    with torch.no_grad():
        codes = np.where(model(x).numpy() > 0, 1, -1)
    relevant = attack.relevance(codes, torch.as_tensor(labels))
    return attack.values(codes, relevant)


@pytest.mark.parametrize("norm, eps, rounds, max_cost, options", [
    ("linf", 0.1, 1, None, {}), ("linf", 8 / 255, 2, 1.0, {"reach": "tanh"}), ("l2", 0.8, 3, 2.0, {"reach": "tanh"}),
    ("linf", 8 / 255, 3, 1.0, {"reach": "margin"}), ("l2", 0.8, 2, None, {"reach": "margin", "restarts": 2, "z_margin": 0.5}),
    ("linf", 0.1, 2, 1.0, {"reach": "tanh", "random_start": True})])
def test_budget_range_and_never_worse_on_the_references(trained_model, queries, reference, norm, eps, rounds, max_cost, options):
    x, y = queries
    attack = CMLATarget(trained_model, reference=reference, eps=eps, norm=norm, steps=12, rounds=rounds, max_cost=max_cost,
                        beta_start=0.1, beta_end=2.0, **options)
    result = attack.attack(x, labels=y)
    delta = (result.x_adv - x).flatten(1)
    bound = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(bound.max()) <= eps + 1e-5
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    before, after = reference_value(attack, trained_model, x, y), reference_value(attack, trained_model, result.x_adv, y)
    assert (after >= before - 1e-12).all()  # the attacker's own check keeps the clean input where nothing better was reached
    changed = bound.numpy() > 0
    assert (after[changed] > before[changed]).all()
    assert (result.records["bits_reached"] <= result.records["bits_planned"]).all()


def test_same_cap_gives_no_credit_above_the_clean_same_modality_ap(trained_model, queries, reference):
    x, y = queries
    attack = CMLATarget(trained_model, reference=reference, eps=0.15, steps=8, same_cap=1.0, same_weight=4.0, beta_start=0.1, beta_end=2.0)
    with torch.no_grad():
        clean = np.where(trained_model(x).numpy() > 0, 1, -1)
    relevant = attack.relevance(clean, torch.as_tensor(y))
    caps = attack.same_caps(clean, relevant)
    same = codes_to_pm1(reference[0], 16)
    for i in range(3):
        assert caps[i] == pytest.approx(slow_ap(clean[i], same, relevant[i]), abs=1e-12)
    attack._caps = caps
    capped = attack.values(clean, relevant)
    attack._caps = None
    uncapped = attack.values(clean, relevant)
    np.testing.assert_allclose(capped, uncapped)  # at the clean code the cap is the AP itself
    targets, values = attack.plan(clean, relevant)
    for i in range(5):
        assert values[i] == pytest.approx(slow_value(targets[i], same, codes_to_pm1(reference[1], 16), relevant[i], 4.0, None), abs=1e-12)
    result = attack.attack(x, labels=y)
    assert attack._caps is None and float((result.x_adv - x).abs().max()) <= 0.15 + 1e-6


def test_moves_the_code_the_planned_way(trained_model, queries, reference):
    x, y = queries
    attack = CMLATarget(trained_model, reference=reference, eps=0.15, steps=40, rounds=2, beta_start=0.1, beta_end=2.0)
    result = attack.attack(x, labels=y)
    assert result.records["bits_reached"].mean() >= 1
    assert reference_value(attack, trained_model, result.x_adv, y).mean() > reference_value(attack, trained_model, x, y).mean() + 0.05


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_margin_term_matches_an_explicit_loop(trained_model, reference, dtype):
    attack = CMLATarget(trained_model, reference=reference, intra_weight=0.7, z_margin=0.4)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(3, 16, generator=generator, dtype=dtype) * 2
    target = torch.where(torch.rand(3, 16, generator=generator) < 0.5, 1.0, -1.0).to(dtype)
    planned = (torch.rand(3, 16, generator=generator) < 0.3).to(dtype)
    loss = attack.margin_term(z, target, planned)
    assert loss.dtype == dtype
    for i in range(3):
        expected = sum((1.0 if planned[i, b] else 0.7) * max(0.0, 0.4 - float(target[i, b] * z[i, b])) for b in range(16))
        assert float(loss[i]) == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 1e-12)


def test_margin_reach_scores_at_least_as_well_as_the_tanh_reach(trained_model, queries, reference):
    """At the same steps the margin PGD's codes score at least as well on the references as the tanh hinge's."""
    x, y = queries
    results = {}
    for reach in ("tanh", "margin"):
        attack = CMLATarget(trained_model, reference=reference, eps=8 / 255, steps=40, rounds=4, reach=reach, z_margin=0.3,
                            beta_start=0.1, beta_end=2.0)
        result = attack.attack(x, labels=y)
        results[reach] = reference_value(attack, trained_model, result.x_adv, y).mean()
    assert results["margin"] >= results["tanh"] - 0.01


def test_random_start_and_restarts_are_used(trained_model, queries, reference):
    x, y = queries
    plain = CMLATarget(trained_model, reference=reference, eps=0.1, steps=6, rounds=2).attack(x[:8], labels=y[:8])
    random = CMLATarget(trained_model, reference=reference, eps=0.1, steps=6, rounds=2, random_start=True, seed=3).attack(x[:8], labels=y[:8])
    assert not torch.equal(plain.x_adv, random.x_adv)  # the start is drawn (it was silently ignored before)
    more = CMLATarget(trained_model, reference=reference, eps=0.1, steps=6, rounds=2, restarts=3, seed=3)
    again = more.attack(x[:8], labels=y[:8])
    assert torch.equal(again.x_adv, more.attack(x[:8], labels=y[:8]).x_adv)  # seeded
    before = reference_value(more, trained_model, x[:8], y[:8])
    assert (reference_value(more, trained_model, plain.x_adv, y[:8]) <= reference_value(more, trained_model, again.x_adv, y[:8]) + 1e-12).all()
    assert (reference_value(more, trained_model, again.x_adv, y[:8]) >= before - 1e-12).all()


def test_flip_costs_of_a_linear_tower_match_an_explicit_loop():
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 8)
    tower = torch.nn.Sequential(linear, torch.nn.Tanh())
    reference = (sign_to_codes(np.ones((3, 8))), sign_to_codes(-np.ones((3, 8))), np.arange(3))
    x = torch.rand(2, 5)
    for norm, eps in (("linf", 0.05), ("l2", 0.3)):
        attack = CMLATarget(tower, reference=reference, eps=eps, norm=norm, clip=(0.0, 1.0), steps=2, rounds=1)
        costs = attack.flip_costs(x, torch.zeros_like(x))
        W, b = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
        for i in range(2):
            point = x[i].double().numpy()
            for bit in range(8):
                z = W[bit] @ point + b[bit]
                toward = -np.sign(z) * W[bit]
                if norm == "linf":
                    low, high = np.maximum(-eps, -point), np.minimum(eps, 1 - point)
                    change = sum(t * (h if t > 0 else lo) for t, lo, h in zip(toward, low, high))
                else:
                    free = [(t > 0 and p < 1) or (t < 0 and p > 0) for t, p in zip(toward, point)]
                    change = eps * np.sqrt(sum(t * t for t, f in zip(toward, free) if f))
                assert costs[i, bit] == pytest.approx(abs(z) / change, rel=1e-4)


def test_pseudo_labels_need_no_query_labels(trained_model, queries, reference):
    x, y = queries
    attack = CMLATarget(trained_model, reference=reference, eps=0.1, steps=4, pseudo_k=3)
    with torch.no_grad():
        codes = np.where(trained_model(x[:5]).numpy() > 0, 1, -1)
    relevant = attack.relevance(codes)
    same = codes_to_pm1(reference[0], 16)
    for i in range(5):
        distances = (16 - same @ codes[i]) // 2
        nearest = sorted(range(len(same)), key=lambda j: (distances[j], j))[:3]
        np.testing.assert_array_equal(relevant[i], np.isin(reference[2], reference[2][nearest]))
    result = attack.attack(x[:5])
    assert result.x_adv.shape == x[:5].shape


def test_modes_restored_state_cleared_and_validation(trained_model, queries, reference):
    x, y = queries
    attack = CMLATarget(trained_model, reference=reference, eps=0.1, steps=2, rounds=2)
    trained_model.train()
    try:
        attack.attack(x[:4], labels=y[:4])
        assert trained_model.training and all(m.training for m in trained_model.modules())
    finally:
        trained_model.eval()
    assert attack._labels is None and attack._planned == [] and attack._cursor == 0
    with pytest.raises(ValueError, match="target_codes=None"):
        attack.attack(x[:4], sign_to_codes(np.ones((4, 16))))
    with pytest.raises(ValueError, match="one row per query"):
        attack.attack(x[:4], labels=y[:3])
    with pytest.raises(ValueError, match="reference labels' kind"):
        attack.attack(x[:4], labels=np.eye(10)[y[:4]])
    with pytest.raises(ValueError, match="rounds"):
        CMLATarget(trained_model, reference=reference, steps=2, rounds=3)
    assert CMLATarget(trained_model, reference=reference, steps=2).rounds == 2
    assert CMLATarget(trained_model, reference=reference).rounds == 10
    assert CMLATarget(trained_model, reference=reference, reach="tanh").rounds == 4
    with pytest.raises(ValueError, match="same_cap"):
        CMLATarget(trained_model, reference=reference, same_cap=-1.0)
    with pytest.raises(ValueError, match="margin"):
        CMLATarget(trained_model, reference=reference, margin=1.5)
    with pytest.raises(ValueError, match="reach"):
        CMLATarget(trained_model, reference=reference, reach="sign")
    with pytest.raises(ValueError, match="restarts"):
        CMLATarget(trained_model, reference=reference, restarts=0)
    with pytest.raises(ValueError, match="reference"):
        CMLATarget(trained_model, reference=(reference[0], reference[1]))
    with pytest.raises(ValueError, match="bits"):
        CMLATarget(trained_model, reference=(reference[0][:, :1], reference[1][:, :1], reference[2]), steps=2, rounds=1).attack(x[:2], labels=y[:2])
    assert "reference=<300 reference pairs>" in repr(attack)
    assert "cmla-target" not in ATTACKS  # cross-modal: reached as --attack cmla --cmla-form target
