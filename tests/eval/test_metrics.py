"""Metrics against slow, obviously correct references (explicit loops, sorted by (distance, id))."""

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, pack_bits
from hashlearn.eval import metrics


def ranked(query, database):
    dist = hamming_distances(query[None], database)[0]
    return sorted(range(len(database)), key=lambda i: (dist[i], i)), dist


def is_relevant(q_label, db_label):
    if np.ndim(q_label) == 0:
        return q_label == db_label
    return bool(np.any(np.logical_and(q_label, db_label)))


def ref_map(qc, dbc, ql, dbl, k):
    aps = []
    for q in range(len(qc)):
        order, _ = ranked(qc[q], dbc)
        order = order[: (k or len(dbc))]
        hits, total = 0, 0.0
        for i, item in enumerate(order, start=1):
            if is_relevant(ql[q], dbl[item]):
                hits += 1
                total += hits / i
        aps.append(total / hits if hits else 0.0)
    return float(np.mean(aps))


def ref_precision_at_k(qc, dbc, ql, dbl, k):
    values = []
    for q in range(len(qc)):
        order, _ = ranked(qc[q], dbc)
        top = order[:k]
        values.append(sum(is_relevant(ql[q], dbl[i]) for i in top) / len(top))
    return float(np.mean(values))


def ref_radius(qc, dbc, ql, dbl, r):
    precisions, recalls = [], []
    for q in range(len(qc)):
        _, dist = ranked(qc[q], dbc)
        inside = [i for i in range(len(dbc)) if dist[i] <= r]
        relevant = [i for i in range(len(dbc)) if is_relevant(ql[q], dbl[i])]
        hits = len(set(inside) & set(relevant))
        precisions.append(hits / len(inside) if inside else 0.0)
        recalls.append(hits / len(relevant) if relevant else 0.0)
    return float(np.mean(precisions)), float(np.mean(recalls))


def make_data(seed, n_q=6, n_db=40, n_bits=16, n_classes=3, multi=False, tie_heavy=False):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n_db, n_bits))
    if tie_heavy:  # few distinct codes: many ties in distance
        bits = bits[rng.integers(0, 4, size=n_db)]
    q_bits = rng.integers(0, 2, size=(n_q, n_bits))
    if multi:
        ql = rng.integers(0, 2, size=(n_q, n_classes)).astype(np.uint8)
        dbl = rng.integers(0, 2, size=(n_db, n_classes)).astype(np.uint8)
    else:
        ql = rng.integers(0, n_classes, size=n_q)
        dbl = rng.integers(0, n_classes, size=n_db)
    return pack_bits(q_bits), pack_bits(bits), ql, dbl


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("tie_heavy", [False, True])
@pytest.mark.parametrize("k", [1, 5, 40, 100, None])
def test_map_and_precision_match_reference(multi, tie_heavy, k):
    qc, dbc, ql, dbl = make_data(3, multi=multi, tie_heavy=tie_heavy)
    assert metrics.mean_average_precision(qc, dbc, ql, dbl, k=k) == pytest.approx(ref_map(qc, dbc, ql, dbl, k))
    kk = k or len(dbc)
    assert metrics.precision_at_k(qc, dbc, ql, dbl, k=kk) == pytest.approx(ref_precision_at_k(qc, dbc, ql, dbl, kk))


@pytest.mark.parametrize("n_classes", [1, 8, 63, 64, 65, 130])
def test_multi_hot_labels_of_every_word_count_match_the_reference(n_classes):
    """Multi-hot labels are compared as packed 64-bit words: one, two and three words, and their edges."""
    qc, dbc, ql, dbl = make_data(7, n_q=9, n_db=50, multi=True, n_classes=n_classes, tie_heavy=True)
    if n_classes > 1:  # sparse labels, so that some pairs share none: relevance depends on the last word too
        rng = np.random.default_rng(1)
        ql, dbl = ql * (rng.random(ql.shape) < 0.05), dbl * (rng.random(dbl.shape) < 0.05)
        ql[0], dbl[:3] = 0, 0
        ql[1, -1], dbl[4, -1] = 1, 1
    for k in (7, None):
        assert metrics.mean_average_precision(qc, dbc, ql, dbl, k=k) == pytest.approx(ref_map(qc, dbc, ql, dbl, k))
    assert metrics.precision_at_k(qc, dbc, ql, dbl, k=12) == pytest.approx(ref_precision_at_k(qc, dbc, ql, dbl, 12))
    for r in (0, 5, 16):
        assert metrics.precision_recall_at_radius(qc, dbc, ql, dbl, r) == pytest.approx(ref_radius(qc, dbc, ql, dbl, r))


def test_ties_are_broken_by_ascending_database_index():
    # all database codes identical: the ranking is the database order
    dbc = pack_bits(np.zeros((4, 8), dtype=int))
    qc = pack_bits(np.zeros((1, 8), dtype=int))
    # relevant item last: AP@4 = 1/4; relevant item first: AP@4 = 1
    assert metrics.mean_average_precision(qc, dbc, np.array([1]), np.array([0, 0, 0, 1]), k=4) == pytest.approx(0.25)
    assert metrics.mean_average_precision(qc, dbc, np.array([1]), np.array([1, 0, 0, 0]), k=4) == pytest.approx(1.0)
    np.testing.assert_array_equal(metrics.rank_by_hamming(np.zeros((1, 4), np.int32), 3), [[0, 1, 2]])


def test_query_without_relevant_item_scores_zero():
    qc, dbc, _, dbl = make_data(1)
    ql = np.full(len(qc), 99)
    assert metrics.mean_average_precision(qc, dbc, ql, dbl, k=10) == 0.0
    assert metrics.precision_recall_at_radius(qc, dbc, ql, dbl, 2) == (0.0, 0.0)


@pytest.mark.parametrize("multi", [False, True])
def test_radius_and_pr_curve_match_reference(multi):
    qc, dbc, ql, dbl = make_data(5, multi=multi, tie_heavy=True)
    curve = metrics.pr_curve(qc, dbc, ql, dbl)
    assert len(curve.radii) == 17
    for r in (0, 3, 8, 16):
        expected = ref_radius(qc, dbc, ql, dbl, r)
        assert (curve.precision[r], curve.recall[r]) == pytest.approx(expected)
        assert metrics.precision_recall_at_radius(qc, dbc, ql, dbl, r) == pytest.approx(expected)
    assert curve.recall[-1] == pytest.approx(np.mean([any(is_relevant(l, d) for d in dbl) for l in ql]))


def test_hamming_matrix_matches_popcount_reference():
    qc, dbc, _, _ = make_data(7, n_bits=72)
    np.testing.assert_array_equal(metrics.hamming_distance_matrix(qc, dbc), hamming_distances(qc, dbc))


def test_float_knn_and_recall():
    rng = np.random.default_rng(0)
    database = rng.normal(size=(50, 5))
    queries = database[:3] + 1e-3
    truth = metrics.float_knn(queries, database, k=1)
    np.testing.assert_array_equal(truth[:, 0], [0, 1, 2])
    brute = np.argsort(((queries[:, None] - database[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(metrics.float_knn(queries, database, k=4), brute)
    codes = pack_bits((database[:, :1] > 0).repeat(8, axis=1).astype(int))
    assert metrics.recall_at_k(codes[:3], codes, truth, k=50) == 1.0
    # perfect codes: every database item has its own code and each query carries the code of its
    # true nearest neighbour, so the top-1 by Hamming distance is the true neighbour: recall 1.0
    unique = pack_bits(((np.arange(50)[:, None] >> np.arange(8)) & 1).astype(int))
    assert metrics.recall_at_k(unique[truth[:, 0]], unique, truth, k=1) == 1.0
    # and codes that point every query at a wrong item give recall 0
    assert metrics.recall_at_k(unique[(truth[:, 0] + 25) % 50], unique, truth, k=1) == 0.0


def test_k_larger_than_database_uses_whole_database():
    qc, dbc, ql, dbl = make_data(2, n_db=10)
    assert metrics.mean_average_precision(qc, dbc, ql, dbl, k=1000) == metrics.mean_average_precision(qc, dbc, ql, dbl)
    assert metrics.precision_at_k(qc, dbc, ql, dbl, k=1000) == pytest.approx(ref_precision_at_k(qc, dbc, ql, dbl, 10))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(k=0), ValueError, "k must be"),
        (dict(k=2.5), TypeError, "k must be"),
        (dict(query_labels=np.zeros(2)), ValueError, "query_labels has 2 rows"),
        (dict(query_codes=np.zeros((6, 2), np.int32)), TypeError, "uint8"),
        (dict(query_codes=np.zeros((6, 3), np.uint8)), ValueError, "same number of bits"),
        (dict(db_labels=np.zeros((40, 3), np.uint8)), ValueError, "same kind"),
    ],
)
def test_bad_input_raises_typed_errors(kwargs, error, match):
    qc, dbc, ql, dbl = make_data(0)
    args = dict(query_codes=qc, db_codes=dbc, query_labels=ql, db_labels=dbl, k=5)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        metrics.mean_average_precision(**args)


def test_empty_database_is_an_error():
    qc, _, ql, _ = make_data(0)
    with pytest.raises(ValueError, match="empty"):
        metrics.mean_average_precision(qc, np.zeros((0, 2), np.uint8), ql, np.zeros(0, int), k=5)


def test_precision_at_k_curve_matches_precision_at_k_loop():
    qc, dbc, ql, dbl = make_data(11, n_db=60)
    ks = [1, 2, 5, 10, 60, 500]
    curve = metrics.precision_at_k_curve(qc, dbc, ql, dbl, ks)
    expected = [ref_precision_at_k(qc, dbc, ql, dbl, min(k, 60)) for k in ks]
    np.testing.assert_allclose(curve, expected)
    assert metrics.default_curve_ks(60, 1000) == [1, 2, 5, 10, 20, 50, 60]
    assert metrics.default_curve_ks(5000, 1000) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    with pytest.raises(ValueError, match="at least one k"):
        metrics.precision_at_k_curve(qc, dbc, ql, dbl, [])
    with pytest.raises(ValueError, match="ks"):
        metrics.precision_at_k_curve(qc, dbc, ql, dbl, [0])


def _float_map_slow(queries, database, query_labels, db_labels, k):
    """AP@k by sorting each query's L2 distances (ties by ascending id) and walking the list."""
    aps = []
    for q, label in zip(queries, query_labels):
        distances = [(float(((q.astype(np.float64) - d) ** 2).sum()), i) for i, d in enumerate(database)]
        ranked = [i for _, i in sorted(distances)][:k]
        hits, total = 0, 0.0
        for position, i in enumerate(ranked, start=1):
            if db_labels[i] == label:
                hits += 1
                total += hits / position
        aps.append(total / hits if hits else 0.0)
    return float(np.mean(aps))


@pytest.mark.parametrize("k", [1, 7, None])
def test_float_mean_average_precision_matches_a_slow_reference(k):
    from hashlearn.eval.metrics import float_mean_average_precision

    rng = np.random.default_rng(3)
    database = rng.integers(0, 3, size=(40, 4)).astype(np.float32)  # many exact ties
    queries = rng.integers(0, 3, size=(9, 4)).astype(np.float32)
    db_labels, query_labels = rng.integers(0, 3, 40), rng.integers(0, 3, 9)
    expected = _float_map_slow(queries, database, query_labels, db_labels, k or 40)
    assert float_mean_average_precision(queries, database, query_labels, db_labels, k=k) == pytest.approx(expected)
    with pytest.raises(ValueError, match="features"):
        float_mean_average_precision(queries[:, :3], database, query_labels, db_labels, k=k)


def test_float_knn_breaks_ties_at_the_cut_off_by_ascending_id():
    rng = np.random.default_rng(5)
    database = rng.integers(0, 2, size=(30, 3)).astype(np.float32)  # 8 distinct points: ties everywhere
    queries = rng.integers(0, 2, size=(6, 3)).astype(np.float32)
    for k in (1, 4, 11, 30):
        ids = metrics.float_knn(queries, database, k=k)
        for q, row in zip(queries, ids):
            d = ((database - q) ** 2).sum(axis=1)
            assert row.tolist() == sorted(range(30), key=lambda i: (d[i], i))[:k]


@pytest.mark.parametrize("seed, multi, tie_heavy", [(0, False, False), (3, False, True), (5, True, True)])
def test_ranking_metrics_from_one_ranking_match_the_separate_calls(seed, multi, tie_heavy):
    qc, dbc, ql, dbl = make_data(seed, n_db=60, multi=multi, tie_heavy=tie_heavy)
    out = metrics.ranking_metrics(qc, dbc, ql, dbl, map_ks=[None, 50, 7, 500], precision_ks=[1, 7, 500])
    for k in (50, 7):
        assert out[f"mAP@{k}"] == pytest.approx(ref_map(qc, dbc, ql, dbl, k))
    assert out["mAP@500"] == pytest.approx(ref_map(qc, dbc, ql, dbl, 60))
    assert out["mAP@all"] == pytest.approx(metrics.mean_average_precision(qc, dbc, ql, dbl, k=None))
    for k in (1, 7, 500):
        assert out[f"P@{k}"] == pytest.approx(ref_precision_at_k(qc, dbc, ql, dbl, min(k, 60)))
    with pytest.raises(ValueError, match="at least one k"):
        metrics.ranking_metrics(qc, dbc, ql, dbl)
    with pytest.raises(ValueError, match="map_ks"):
        metrics.ranking_metrics(qc, dbc, ql, dbl, map_ks=[0])


def test_evaluators_name_their_own_k_in_errors():
    """evaluate_codes / evaluate_crossmodal rank once through ranking_metrics but still name the argument the caller passed."""
    from hashlearn.eval.crossmodal import evaluate_crossmodal
    from hashlearn.eval.evaluator import evaluate_codes

    qc, dbc, ql, dbl = make_data(0)
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1, got 0"):
        evaluate_codes(qc, dbc, ql, dbl, k=0)
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1, got 0"):
        evaluate_crossmodal(qc, qc, dbc, dbc, ql, dbl, k=0)
    assert evaluate_codes(qc, dbc, ql, dbl, k=5)["mAP@5"] == pytest.approx(ref_map(qc, dbc, ql, dbl, 5))


@pytest.mark.parametrize("unpack_bytes", [metrics.DB_UNPACK_BYTES, 0])  # the database unpacked once / per block
def test_distance_blocks_match_explicit_distances(monkeypatch, unpack_bytes):
    monkeypatch.setattr(metrics, "DB_UNPACK_BYTES", unpack_bytes)
    rng = np.random.default_rng(3)
    query, database = pack_bits(rng.integers(0, 2, (150, 24))), pack_bits(rng.integers(0, 2, (70, 24)))
    seen = []
    for rows, distances in metrics.hamming_distance_blocks(query, database, block=64):
        seen.append((rows.start, rows.stop))
        np.testing.assert_array_equal(distances, hamming_distances(query[rows], database))
    assert seen == [(0, 64), (64, 128), (128, 150)]
    labels = rng.integers(0, 3, 150)
    assert metrics.mean_average_precision(query, database, labels, labels[:70], k=20) == pytest.approx(
        ref_map(query, database, labels, labels[:70], 20))


def test_distance_blocks_refuse_mismatched_widths():
    with pytest.raises(ValueError, match="same number of bits"):
        next(metrics.hamming_distance_blocks(np.zeros((2, 2), np.uint8), np.zeros((3, 4), np.uint8)))


@pytest.mark.parametrize("top", [3, 255, 256, 2**16 - 1, 2**16, 2**20])  # uint8 / uint16 radix sorts, int64 keys
@pytest.mark.parametrize("k", [1, 7, 40])
def test_rank_by_hamming_orders_by_distance_then_index(top, k):
    rng = np.random.default_rng(top + k)
    distances = rng.integers(0, top + 1, (5, 40)).astype(np.int32)
    distances[:, :3] = top  # the largest value present in every row, so that each key width is exercised
    ranked = metrics.rank_by_hamming(distances, k)
    for row, order in zip(distances, ranked):
        assert order.tolist() == sorted(range(len(row)), key=lambda i: (row[i], i))[:k]


@pytest.mark.parametrize("n_bits", [8, 16, 24, 32, 64, 128])  # one-word codes: XOR + popcount; others: the ±1 product
def test_hamming_distance_matrix_matches_a_bit_loop(monkeypatch, n_bits):
    monkeypatch.setattr(metrics, "_XOR_CHUNK", 7)  # several database chunks, the last one short
    rng = np.random.default_rng(n_bits)
    bits_q, bits_db = rng.integers(0, 2, (9, n_bits)), rng.integers(0, 2, (30, n_bits))
    bits_db[0] = 1 - bits_q[0]  # the largest distance, n_bits
    expected = np.array([[int(np.sum(a != b)) for b in bits_db] for a in bits_q])
    got = metrics.hamming_distance_matrix(pack_bits(bits_q), pack_bits(bits_db))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert metrics.hamming_distance_matrix(pack_bits(bits_q[:0]), pack_bits(bits_db)).shape == (0, 30)
