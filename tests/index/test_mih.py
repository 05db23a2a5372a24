import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlearn.index import FlatIndex, MultiIndexHashing
from hashlearn.index.mih import MAX_SUBSTRING_BITS, default_n_tables

BUDGETS = [math.inf, 0.25, 0.0]  # never scan, default, always scan


@pytest.mark.parametrize("n_bits", [16, 64, 72, 256])
@pytest.mark.parametrize("max_cost_fraction", BUDGETS)
def test_knn_and_range_match_reference_on_clustered_codes(checks, rng, n_threads, n_bits, max_cost_fraction):
    database, centres = checks.make_clustered(rng, 1500, n_bits, n_centres=5)
    database[::11] = database[4]
    queries, _ = checks.make_clustered(rng, 8, n_bits, centres=centres)
    index = MultiIndexHashing(n_bits, max_cost_fraction=max_cost_fraction)
    index.add(database)
    for k in (1, 10, 200):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    for radius in (0, 3, n_bits // 4):
        checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)


@pytest.mark.parametrize("n_tables", [1, 2, 3, 5, 8])
def test_any_number_of_tables_is_exact_on_random_codes(checks, rng, n_tables):
    database = rng.integers(0, 256, size=(800, 8), dtype=np.uint8)
    queries = np.vstack([rng.integers(0, 256, size=(4, 8), dtype=np.uint8), database[:2]])
    index = MultiIndexHashing(64, n_tables=n_tables, max_cost_fraction=math.inf) if n_tables > 2 else None
    if index is None:  # 1-2 tables of 64 bits would need substrings over MAX_SUBSTRING_BITS
        with pytest.raises(ValueError, match="longer than"):
            MultiIndexHashing(64, n_tables=n_tables)
        index = MultiIndexHashing(24, n_tables=n_tables, max_cost_fraction=math.inf)
        database, queries = database[:, :3].copy(), queries[:, :3].copy()
    index.add(database)
    checks.assert_knn_equal(index.search(queries, 15), queries, database, 15)
    radius = 12 if index.n_bits == 64 else 5  # one 24-bit table: the ball of radius 12 has 10M codes
    checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)
    assert index.last_scanned_queries == 0


def test_falls_back_to_the_scan_when_tables_cost_too_much(checks, rng):
    database = rng.integers(0, 256, size=(2000, 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(5, 8), dtype=np.uint8)
    index = MultiIndexHashing(64, max_cost_fraction=1e-6)
    index.add(database)
    checks.assert_knn_equal(index.search(queries, 7), queries, database, 7)
    assert index.last_scanned_queries == 5
    checks.assert_range_equal(index.range_search(queries, 20), queries, database, 20)
    assert index.last_scanned_queries == 5


def test_mixed_batch_some_queries_scanned(checks, rng):
    """Near queries stay in the tables, far ones go to the scan; results are spliced in order."""
    database, centres = checks.make_clustered(rng, 3000, 64, n_centres=4, flip_probability=0.02)
    near, _ = checks.make_clustered(rng, 4, 64, centres=centres, flip_probability=0.02)
    far = rng.integers(0, 256, size=(4, 8), dtype=np.uint8)
    queries = np.vstack([near[:2], far[:2], near[2:], far[2:]])
    index = MultiIndexHashing(64, max_cost_fraction=80.0)
    index.add(database)
    checks.assert_knn_equal(index.search(queries, 5), queries, database, 5)
    assert 0 < index.last_scanned_queries < len(queries)
    checks.assert_range_equal(index.range_search(queries, 18), queries, database, 18)


def test_stops_trying_tables_that_keep_falling_back_but_retries_them(rng):
    database = rng.integers(0, 256, size=(2000, 8), dtype=np.uint8)
    index = MultiIndexHashing(64, max_cost_fraction=1e-6)
    index.add(database)
    tried = []
    for _ in range(32):
        index.search(database[:3], 2)
        tried.append(index._calls % 16 == 0 or index._scan_rate < 0.5)
    assert index._scan_rate > 0.5
    assert index._use_tables(3) is False and sum(tried) < 10


def test_custom_ids_removal_and_rebuild_after_add(checks, rng, n_threads):
    database, centres = checks.make_clustered(rng, 600, 64, n_centres=3)
    ids = rng.permutation(5000)[:600]
    index = MultiIndexHashing(64, max_cost_fraction=math.inf)
    index.add(database, ids=ids)
    queries, _ = checks.make_clustered(rng, 5, 64, centres=centres)
    checks.assert_knn_equal(index.search(queries, 12), queries, database, 12, ids=ids)
    assert index.remove_ids(ids[::2]) == 300
    extra = rng.integers(0, 256, size=(50, 8), dtype=np.uint8)
    index.add(extra, ids=np.arange(6000, 6050))
    all_codes = np.vstack([database[1::2], extra])
    all_ids = np.r_[ids[1::2], np.arange(6000, 6050)]
    checks.assert_knn_equal(index.search(queries, 40), queries, all_codes, 40, ids=all_ids)
    checks.assert_range_equal(index.range_search(queries, 9), queries, all_codes, 9, ids=all_ids)
    np.testing.assert_array_equal(index.reconstruct(6003), extra[3])


def test_empty_and_tiny_indexes(checks, rng):
    index = MultiIndexHashing(32)
    queries = rng.integers(0, 256, size=(2, 4), dtype=np.uint8)
    assert (index.search(queries, 3).ids == -1).all()
    assert index.range_search(queries, 4).lims.tolist() == [0, 0, 0]
    index.add(queries[:1])
    checks.assert_knn_equal(index.search(queries, 3), queries, queries[:1], 3)


def test_state_round_trip_rebuilds_tables(checks, rng):
    database, centres = checks.make_clustered(rng, 500, 128, n_centres=3)
    index = MultiIndexHashing(128, n_tables=9, max_cost_fraction=3.0)
    index.add(database)
    meta, arrays = index.state()
    assert meta["kind"] == "mih" and meta["n_tables"] == 9 and set(arrays) == {"codes"}
    loaded = MultiIndexHashing.from_state(meta, arrays)
    assert loaded.n_tables == 9 and loaded.max_cost_fraction == 3.0
    queries, _ = checks.make_clustered(rng, 4, 128, centres=centres)
    for a, b in zip(loaded.search(queries, 6), index.search(queries, 6)):
        np.testing.assert_array_equal(a, b)


def test_results_identical_to_flat_index(rng):
    database = rng.integers(0, 256, size=(3000, 4), dtype=np.uint8)
    database[1000:1100] = database[0]
    flat, mih = FlatIndex(32), MultiIndexHashing(32, max_cost_fraction=math.inf)
    flat.add(database)
    mih.add(database)
    queries = database[::300]
    for a, b in zip(flat.search(queries, 50), mih.search(queries, 50)):
        np.testing.assert_array_equal(a, b)


def test_meta_is_strict_json_even_without_a_budget(rng):
    import json

    index = MultiIndexHashing(32, max_cost_fraction=math.inf)
    index.add(rng.integers(0, 256, size=(10, 4), dtype=np.uint8))
    meta, arrays = index.state()
    meta = json.loads(json.dumps(meta, allow_nan=False))
    assert MultiIndexHashing.from_state(meta, arrays).max_cost_fraction == math.inf


def test_default_n_tables_follows_log2_ntotal():
    assert default_n_tables(64, 1_000_000) == 3
    assert default_n_tables(64, 10_000_000) == 3
    assert default_n_tables(256, 1_000_000) == 13
    assert default_n_tables(1024, 10) == 256
    assert default_n_tables(8, 10) == 2
    for n_bits, ntotal in [(64, 2**30), (1024, 2**30), (32, 1)]:
        m = default_n_tables(n_bits, ntotal)
        assert -(-n_bits // m) <= MAX_SUBSTRING_BITS and 1 <= m <= n_bits


def test_bad_parameters_raise_typed_errors():
    with pytest.raises(ValueError, match="at most n_bits"):
        MultiIndexHashing(16, n_tables=17)
    with pytest.raises(TypeError, match="n_tables"):
        MultiIndexHashing(16, n_tables=2.5)
    with pytest.raises(ValueError, match="max_cost_fraction"):
        MultiIndexHashing(16, max_cost_fraction=-1)
    with pytest.raises(ValueError, match="max_cost_fraction"):
        MultiIndexHashing(16, max_cost_fraction="a lot")
    with pytest.raises(TypeError, match="queries must have dtype uint8"):
        MultiIndexHashing(16).search(np.zeros((1, 2), np.int8), 1)
    with pytest.raises(ValueError, match="radius"):
        MultiIndexHashing(16).range_search(np.zeros((1, 2), np.uint8), -2)


@given(
    n=st.integers(0, 80),
    n_bits=st.sampled_from([16, 40, 64]),
    n_tables=st.integers(3, 6),
    k=st.integers(1, 90),
    radius=st.integers(0, 20),
    budget=st.sampled_from([math.inf, 1.0, 0.0]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_property_identical_to_flat(n, n_bits, n_tables, k, radius, budget, seed):
    """Any table count, budget, k and radius: the same results as FlatIndex, ties included."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(6, n_bits // 8), dtype=np.uint8)
    database = pool[rng.integers(0, 6, size=n)] ^ (rng.random((n, n_bits // 8)) < 0.05).astype(np.uint8)
    queries = np.vstack([pool[:2], rng.integers(0, 256, size=(2, n_bits // 8), dtype=np.uint8)])
    ids = rng.permutation(3 * n + 1)[:n]
    flat, mih = FlatIndex(n_bits), MultiIndexHashing(n_bits, n_tables=n_tables, max_cost_fraction=budget)
    flat.add(database, ids=ids)
    mih.add(database, ids=ids)
    for a, b in zip(flat.search(queries, k), mih.search(queries, k)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(flat.range_search(queries, radius), mih.range_search(queries, radius)):
        np.testing.assert_array_equal(a, b)


WIDTHS = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024]


@pytest.mark.parametrize("n_bits", WIDTHS)
def test_every_width_with_duplicates_ties_and_k_over_ntotal(checks, rng, n_bits):
    """Duplicated codes become one table entry with many rows; results stay those of the
    popcount reference (ties by ascending id), k larger than the index included."""
    database, centres = checks.make_clustered(rng, 300, n_bits, n_centres=4)
    database[::7] = database[3]  # one code held by 43 rows
    queries = np.vstack([database[3:4], checks.make_clustered(rng, 4, n_bits, centres=centres)[0]])
    index = MultiIndexHashing(n_bits, max_cost_fraction=math.inf)
    index.add(database)
    assert index.search(queries[:1], 1).ids.tolist() == [[0]]  # row 0 holds the code too (0 = 7 * 0)
    assert index.n_entries < len(database)
    for k in (1, 10, 400):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    for radius in (0, n_bits // 8):
        checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)
    assert index.last_scanned_queries == 0


@pytest.mark.parametrize("custom_ids", [False, True])
def test_add_extends_the_tables_and_stays_exact(checks, rng, custom_ids):
    """Rows added after the build are scanned while few, then merged into the tables
    (new entries, also for codes already present); removal rebuilds."""
    from hashlearn.index.mih import MERGE_MIN_ROWS

    database, centres = checks.make_clustered(rng, 6000, 64, n_centres=20)
    extra, _ = checks.make_clustered(rng, MERGE_MIN_ROWS + 500, 64, centres=centres)
    extra[:300] = database[:300]  # codes already in the tables
    ids = rng.permutation(50_000)[: len(database) + len(extra)] if custom_ids else None
    index = MultiIndexHashing(64, max_cost_fraction=math.inf)
    index.add(database, ids=None if ids is None else ids[: len(database)])
    index.build()
    entries_before = index.n_entries
    index.add(extra[:100], ids=None if ids is None else ids[len(database) : len(database) + 100])
    queries, _ = checks.make_clustered(rng, 6, 64, centres=centres)
    everything = np.vstack([database, extra])
    checks.assert_knn_equal(index.search(queries, 25), queries, everything[:6100], 25, ids=None if ids is None else ids[:6100])
    assert index.n_pending == 100 and index.n_entries == entries_before
    index.add(extra[100:], ids=None if ids is None else ids[len(database) + 100 :])
    checks.assert_knn_equal(index.search(queries, 25), queries, everything, 25, ids=ids)
    assert index.n_pending == 0 and index.n_entries > entries_before  # extended, not rebuilt from scratch
    checks.assert_range_equal(index.range_search(queries, 6), queries, everything, 6, ids=ids)
    removed = np.arange(0, len(everything), 3) if ids is None else ids[::3]
    assert index.remove_ids(removed) == len(removed)
    keep = np.ones(len(everything), dtype=bool)
    keep[::3] = False
    left_ids = np.flatnonzero(keep) if ids is None else ids[keep]
    checks.assert_knn_equal(index.search(queries, 25), queries, everything[keep], 25, ids=left_ids)


def test_group_identical_groups_rows_ascending(rng):
    from hashlearn.index.mih import group_identical

    for n_bytes in (1, 8, 9, 24):
        codes = rng.integers(0, 3, size=(500, n_bytes), dtype=np.uint8)
        rows, offsets = group_identical(codes)
        assert sorted(rows.tolist()) == list(range(500)) and offsets[0] == 0 and offsets[-1] == 500
        seen = set()
        for g in range(len(offsets) - 1):
            members = rows[offsets[g] : offsets[g + 1]]
            assert np.all(np.diff(members) > 0) and (codes[members] == codes[members[0]]).all()
            seen.add(codes[members[0]].tobytes())
        assert len(seen) == len(offsets) - 1 == len({c.tobytes() for c in codes})


def test_range_search_also_stops_trying_tables_that_keep_falling_back(checks, rng, monkeypatch):
    # a radius the tables cannot afford made every call pay the aborted probes and then the scan
    # (0.8x the scan on uniform 64-bit codes); range search now skips them like k-NN does
    from hashlearn.index import mih as mih_module

    database = rng.integers(0, 256, size=(2000, 8), dtype=np.uint8)
    index = MultiIndexHashing(64, max_cost_fraction=1e-6)
    index.add(database)
    probed = []
    real = mih_module.kernels.mih_range
    monkeypatch.setattr(mih_module.kernels, "mih_range", lambda *a: probed.append(1) or real(*a))
    for _ in range(32):
        checks.assert_range_equal(index.range_search(database[:3], 20), database[:3], database, 20)
    assert 0 < len(probed) < 10  # tried at first and on every 16th call, not on all 32
