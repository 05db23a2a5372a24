import numpy as np
import pytest

from hashlearn.codes import pack_bits
from hashlearn.eval.crossmodal import crossmodal_map, crossmodal_pr_curves, crossmodal_table, evaluate_crossmodal


def reference_ap(query_bits, db_bits, query_labels, db_labels, k):
    """Plain loops: Hamming distances, a stable sort by (distance, id), AP over the top k."""
    out = []
    for q, ql in zip(query_bits, query_labels):
        distances = [int(sum(a != b for a, b in zip(q, d))) for d in db_bits]
        order = sorted(range(len(db_bits)), key=lambda i: (distances[i], i))[:k]
        hits, total = 0, 0.0
        for rank, i in enumerate(order, start=1):
            if any(a and b for a, b in zip(ql, db_labels[i])):
                hits += 1
                total += hits / rank
        out.append(total / hits if hits else 0.0)
    return float(np.mean(out))


def reference_precision(query_bits, db_bits, query_labels, db_labels, k):
    values = []
    for q, ql in zip(query_bits, query_labels):
        distances = [int(sum(a != b for a, b in zip(q, d))) for d in db_bits]
        order = sorted(range(len(db_bits)), key=lambda i: (distances[i], i))[:k]
        values.append(sum(any(a and b for a, b in zip(ql, db_labels[i])) for i in order) / len(order))
    return float(np.mean(values))


@pytest.fixture
def codes():
    rng = np.random.default_rng(0)
    n_q, n_db, n_bits = 7, 25, 16
    bits = {name: rng.integers(0, 2, size=(n, n_bits)) for name, n in (("qi", n_q), ("qt", n_q), ("di", n_db), ("dt", n_db))}
    labels = {"q": (rng.random((n_q, 4)) < 0.4).astype(np.uint8), "d": (rng.random((n_db, 4)) < 0.4).astype(np.uint8)}
    return bits, labels


@pytest.mark.parametrize("k", [None, 5, 100])
def test_every_direction_against_the_reference(codes, k):
    bits, labels = codes
    packed = {name: pack_bits(b) for name, b in bits.items()}
    result = crossmodal_map(packed["qi"], packed["qt"], packed["di"], packed["dt"], labels["q"], labels["d"], k=k)
    kk = 25 if k is None else min(k, 25)
    pairs = {"I->T": ("qi", "dt"), "T->I": ("qt", "di"), "I->I": ("qi", "di"), "T->T": ("qt", "dt")}
    for direction, (query, database) in pairs.items():
        expected = reference_ap(bits[query], bits[database], labels["q"], labels["d"], kk)
        assert result[direction] == pytest.approx(expected, abs=1e-12), direction


def test_evaluate_rows_precision_and_pr_curves(codes):
    bits, labels = codes
    packed = {name: pack_bits(b) for name, b in bits.items()}
    report = evaluate_crossmodal(packed["qi"], packed["qt"], packed["di"], packed["dt"], labels["q"], labels["d"], k=10, with_pr_curve=True)
    assert set(report) == {"I->T", "T->I", "I->I", "T->T", "cross_mean"}
    expected = reference_precision(bits["qt"], bits["di"], labels["q"], labels["d"], 10)
    assert report["T->I"]["P@10"] == pytest.approx(expected)
    assert report["cross_mean"] == pytest.approx((report["I->T"]["mAP@all"] + report["T->I"]["mAP@all"]) / 2)
    curve = report["I->T"]["pr_curve"]
    assert len(curve["radius"]) == 17 and curve["recall"][-1] == pytest.approx(
        np.mean([1.0 if (labels["d"] @ q).any() else 0.0 for q in labels["q"]]))
    curves = crossmodal_pr_curves(packed["qi"], packed["qt"], packed["di"], packed["dt"], labels["q"], labels["d"], directions=["T->T"])
    assert list(curves) == ["T->T"]


def test_unknown_direction():
    with pytest.raises(ValueError, match="directions"):
        crossmodal_map(*(pack_bits(np.zeros((1, 8), int)),) * 4, np.ones((1, 1)), np.ones((1, 1)), directions=["I->A"])


def test_report_table_lists_every_direction(codes):
    bits, labels = codes
    packed = {name: pack_bits(b) for name, b in bits.items()}
    report = evaluate_crossmodal(packed["qi"], packed["qt"], packed["di"], packed["dt"], labels["q"], labels["d"], k=10, with_pr_curve=True)
    table = crossmodal_table(report).splitlines()
    assert table[0] == "| direction | mAP@all | mAP@10 | P@10 |" and len(table) == 6
    assert table[2].startswith("| I->T | ") and f"{report['T->T']['P@10']:.4f}" in table[5]
    with pytest.raises(ValueError, match="no direction"):
        crossmodal_table({"cross_mean": 0.5})
