import numpy as np
import pytest
import torch

from hashlearn.attacks import DHTA, FGSM, HAG, PGD
from hashlearn.attacks.evaluation import (
    complement_codes,
    evaluate_attack,
    model_codes,
    precision_per_query,
    targeted_success_rate,
    transfer_matrix,
    untargeted_success_rate,
)
from hashlearn.codes import hamming_distances, pack_bits, unpack_bits
from hashlearn.eval.metrics import mean_average_precision


def slow_precision(query_codes, db_codes, query_labels, db_labels, k):
    """Reference: stable sort by distance (ties keep ascending index), count matches."""
    distances = hamming_distances(query_codes, db_codes)
    out = []
    for row, label in zip(distances, query_labels):
        top = sorted(range(len(row)), key=lambda i: (row[i], i))[:k]
        out.append(sum(db_labels[i] == label for i in top) / len(top))
    return np.array(out)


def test_precision_per_query_against_a_loop():
    rng = np.random.default_rng(0)
    db = pack_bits(rng.integers(0, 2, (80, 16)))
    queries = pack_bits(rng.integers(0, 2, (9, 16)))
    db_labels, query_labels = rng.integers(0, 3, 80), rng.integers(0, 3, 9)
    for k in (1, 7, 80, 500):
        expected = slow_precision(queries, db, query_labels, db_labels, min(k, 80))
        np.testing.assert_allclose(precision_per_query(queries, db, query_labels, db_labels, k), expected)
    multi_hot = np.eye(3, dtype=np.uint8)
    np.testing.assert_allclose(
        precision_per_query(queries, db, multi_hot[query_labels], multi_hot[db_labels], 7),
        slow_precision(queries, db, query_labels, db_labels, 7),
    )


def test_complement_flips_every_bit():
    codes = pack_bits(np.random.default_rng(1).integers(0, 2, (5, 24)))
    assert (unpack_bits(complement_codes(codes)) == 1 - unpack_bits(codes)).all()
    assert (hamming_distances(codes, complement_codes(codes)).diagonal() == 24).all()


def test_success_rates():
    clean = np.array([1.0, 0.8, 0.0, 0.6])
    adv = np.array([0.4, 0.5, 0.0, 0.29])
    assert untargeted_success_rate(clean, adv) == pytest.approx(2 / 3)  # query 3 cannot degrade
    assert np.isnan(untargeted_success_rate(np.zeros(2), np.zeros(2)))
    assert targeted_success_rate(np.array([0.5, 0.49, 1.0])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same shape"):
        untargeted_success_rate(clean, adv[:2])


def test_evaluate_untargeted_attack(trained_model, queries, database, digits):
    x, y = queries
    db_codes, db_labels = database
    attack = HAG(trained_model, eps=0.2, steps=20)
    result = attack.attack(x)
    report = evaluate_attack(attack, x, y, db_codes, db_labels, k=100, result=result)
    clean_codes, adv_codes = trained_model.encode(x), model_codes(trained_model, result.x_adv)
    clean = mean_average_precision(clean_codes, db_codes, y, db_labels, k=100)
    assert report["clean_map"] == pytest.approx(clean)
    assert report["adv_map"] == pytest.approx(mean_average_precision(adv_codes, db_codes, y, db_labels, k=100))
    assert report["flipped_floor_map"] <= report["adv_map"] < report["clean_map"]
    assert report["linf_max"] == pytest.approx(float((result.x_adv - x).abs().max()), abs=1e-6) and report["linf_max"] <= 0.2 + 1e-6
    # success rate against a loop: queries with clean precision > 0 whose precision fell below half of it
    clean_p = slow_precision(clean_codes, db_codes, y, db_labels, 100)
    adv_p = slow_precision(adv_codes, db_codes, y, db_labels, 100)
    degraded = [a < 0.5 * c for c, a in zip(clean_p, adv_p) if c > 0]
    assert report["success_rate"] == pytest.approx(sum(degraded) / len(degraded))
    assert report["success_rate"] > 0.2  # eps=0.2 on [0, 1] digits breaks a good share of the queries
    flipped = (unpack_bits(clean_codes) != unpack_bits(adv_codes)).sum(axis=1)
    assert report["bits_flipped_mean"] == pytest.approx(flipped.mean()) and report["bits_flipped_mean"] > 0
    assert report["seconds_per_query"] > 0


def test_evaluate_targeted_attack(trained_model, queries, database):
    x, y = queries
    db_codes, db_labels = database
    targets = (y + 1) % 10
    attack = DHTA(trained_model, db_codes, db_labels, eps=0.2, steps=20)
    result = attack.attack(x, target_labels=targets)
    report = evaluate_attack(attack, x, y, db_codes, db_labels, target_labels=targets, k=100, result=result)
    assert report["adv_tmap"] > report["clean_tmap"]
    assert report["adv_map"] < report["clean_map"]
    # targeted success against a loop: at least half of the top 100 carry the target label
    adv_codes = model_codes(trained_model, result.x_adv)
    target_p = slow_precision(adv_codes, db_codes, targets, db_labels, 100)
    assert report["success_rate"] == pytest.approx(float(np.mean(target_p >= 0.5)))
    assert report["success_rate"] > 0.2  # the targeted attack does reach its target for many queries
    with pytest.raises(ValueError, match="target_labels"):
        evaluate_attack(attack, x, y, db_codes, db_labels)


def test_model_codes_restores_mode(trained_model, queries):
    x, _ = queries
    trained_model.train()
    codes = model_codes(trained_model, x)
    assert trained_model.training
    trained_model.eval()
    np.testing.assert_array_equal(codes, trained_model.encode(x))


def test_transfer_matrix(trained_model, train_model, digits, queries):
    x_all, y_all = digits
    x, y = queries
    other = train_model(x_all[:600], y_all[:600], epochs=3, seed=1)
    models = {"a": trained_model, "b": other}
    databases = {name: model.encode(x_all[:1200]) for name, model in models.items()}
    db_labels = y_all[:1200].numpy()
    matrix = transfer_matrix(models, lambda m: FGSM(m, eps=0.2), x, y, databases, db_labels, k=100)
    assert set(matrix) == {"clean", "a", "b"} and set(matrix["a"]) == {"a", "b"}
    x_adv = FGSM(trained_model, eps=0.2).attack(x).x_adv
    assert matrix["a"]["b"] == pytest.approx(mean_average_precision(other.encode(x_adv), databases["b"], y, db_labels, k=100))
    assert matrix["a"]["a"] < matrix["clean"]["a"]
    with pytest.raises(ValueError, match="databases"):
        transfer_matrix(models, PGD, x, y, {"a": databases["a"]}, db_labels)


def test_robustness_report(trained_model, queries, database):
    from hashlearn.attacks.evaluation import robustness_report

    x, y = queries
    db_codes, db_labels = database
    attacks = {"fgsm": FGSM(trained_model, eps=0.1), "dhta": DHTA(trained_model, db_codes, db_labels, eps=0.1, steps=3)}
    report = robustness_report(trained_model, attacks, x, y, db_codes, db_labels, target_labels=(y + 1) % 10, k=100)
    assert set(report) == {"clean", "fgsm", "dhta"}
    assert report["clean"]["map"] == pytest.approx(report["fgsm"]["clean_map"])
    assert "adv_tmap" in report["dhta"] and "adv_tmap" not in report["fgsm"]
    other = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    with pytest.raises(ValueError, match="different model"):
        robustness_report(trained_model, {"x": FGSM(other)}, x, y, db_codes, db_labels)
