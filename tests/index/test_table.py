import numpy as np
import pytest

from hashlearn.index import HashTableIndex


@pytest.mark.parametrize("n_bits", [8, 16, 24, 32])
def test_knn_and_range_match_reference(checks, rng, n_threads, n_bits):
    database, centres = checks.make_clustered(rng, 800, n_bits, n_centres=4, flip_probability=0.1)
    database[::5] = database[1]
    queries = np.vstack([checks.make_clustered(rng, 4, n_bits, centres=centres)[0], rng.integers(0, 256, size=(3, n_bits // 8), dtype=np.uint8)])
    index = HashTableIndex(n_bits)
    index.add(database)
    assert index.n_buckets == len(np.unique(database, axis=0))
    for k in (1, 9, 300, 805):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    for radius in range(0, n_bits + 1, max(1, n_bits // 6)):  # small radii enumerate, large ones scan buckets
        checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)


def test_custom_ids_removal_and_persistence(checks, rng):
    database = rng.integers(0, 256, size=(400, 2), dtype=np.uint8)
    ids = rng.permutation(2000)[:400]
    index = HashTableIndex(16)
    index.add(database, ids=ids)
    queries = database[:6]
    checks.assert_knn_equal(index.search(queries, 11), queries, database, 11, ids=ids)
    assert index.remove_ids(ids[:100]) == 100
    checks.assert_knn_equal(index.search(queries, 11), queries, database[100:], 11, ids=ids[100:])
    checks.assert_range_equal(index.range_search(queries, 4), queries, database[100:], 4, ids=ids[100:])
    loaded = HashTableIndex.from_state(*index.state())
    for a, b in zip(loaded.search(queries, 11), index.search(queries, 11)):
        np.testing.assert_array_equal(a, b)


def test_empty_index(rng):
    index = HashTableIndex(16)
    queries = rng.integers(0, 256, size=(2, 2), dtype=np.uint8)
    assert (index.search(queries, 2).ids == -1).all()
    assert index.range_search(queries, 3).lims.tolist() == [0, 0, 0]


def test_long_codes_are_refused_with_a_pointer_to_mih():
    with pytest.raises(ValueError, match="at most 32 bits.*MultiIndexHashing"):
        HashTableIndex(64)


def test_from_state_refuses_another_kind(rng):
    index = HashTableIndex(16)
    index.add(rng.integers(0, 256, size=(5, 2), dtype=np.uint8))
    meta, arrays = index.state()
    meta["kind"] = "flat"
    with pytest.raises(ValueError, match="expected 'table'"):
        HashTableIndex.from_state(meta, arrays)
