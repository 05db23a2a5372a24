import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hashlearn.index.flat as flat_module
from hashlearn.codes import MISSING_DISTANCE
from hashlearn.index import FlatIndex


@pytest.mark.parametrize("n_bits", [8, 24, 64, 72, 128, 256, 1024])
def test_knn_matches_reference_on_random_codes(checks, rng, n_threads, n_bits):
    database = rng.integers(0, 256, size=(700, n_bits // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(9, n_bits // 8), dtype=np.uint8)
    index = FlatIndex(n_bits)
    index.add(database)
    for k in (1, 10, 700, 705):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    checks.assert_knn_equal(index.search(queries[:1], 5), queries[:1], database, 5)


@pytest.mark.parametrize("n_bits", [16, 64, 256])
def test_knn_and_range_on_clustered_codes_with_ties(checks, rng, n_threads, n_bits):
    database, centres = checks.make_clustered(rng, 900, n_bits, n_centres=3)
    database[::7] = database[3]  # exact duplicates: ties broken by ascending id
    queries, _ = checks.make_clustered(rng, 6, n_bits, centres=centres)
    queries = np.vstack([queries, database[3:4]])
    index = FlatIndex(n_bits)
    index.add(database)
    for k in (1, 20, 150):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    for radius in (0, 2, n_bits // 8, n_bits):
        checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)


def test_database_split_across_threads_for_one_query(checks, rng, monkeypatch):
    """Fewer queries than threads: the rows are split across threads and the heaps merged."""
    monkeypatch.setattr(flat_module, "_MIN_ROWS_PER_THREAD", 16)
    monkeypatch.setattr(flat_module, "get_num_threads", lambda: 3)
    database, centres = checks.make_clustered(rng, 500, 64, n_centres=2)
    queries, _ = checks.make_clustered(rng, 2, 64, centres=centres)
    index = FlatIndex(64)
    index.add(database)
    assert len(index._task_grid(2)[1]) == 3  # one database chunk per thread
    checks.assert_knn_equal(index.search(queries, 30), queries, database, 30)
    checks.assert_range_equal(index.range_search(queries, 6), queries, database, 6)


def test_empty_index_and_k_larger_than_ntotal(checks, rng):
    index = FlatIndex(32)
    queries = rng.integers(0, 256, size=(3, 4), dtype=np.uint8)
    result = index.search(queries, 4)
    assert (result.ids == -1).all() and (result.distances == MISSING_DISTANCE).all()
    empty = index.range_search(queries, 5)
    assert empty.lims.tolist() == [0, 0, 0, 0] and len(empty.ids) == 0
    index.add(queries[:2])
    result = index.search(queries, 4)
    assert (result.ids[:, 2:] == -1).all() and (result.distances[:, 2:] == MISSING_DISTANCE).all()
    checks.assert_knn_equal(result, queries, queries[:2], 4)
    assert index.search(queries[:0], 3).ids.shape == (0, 2)  # k is clamped to ntotal


def test_custom_ids_out_of_order_break_ties_by_id_value(checks, rng, n_threads):
    database = np.repeat(rng.integers(0, 256, size=(5, 8), dtype=np.uint8), 40, axis=0)
    ids = rng.permutation(10_000)[: len(database)]
    queries = database[::50].copy()
    index = FlatIndex(64)
    index.add(database, ids=ids)
    checks.assert_knn_equal(index.search(queries, 25), queries, database, 25, ids=ids)
    checks.assert_range_equal(index.range_search(queries, 3), queries, database, 3, ids=ids)


def test_add_in_batches_with_ascending_custom_ids_then_default_ids(checks, rng):
    first = rng.integers(0, 256, size=(50, 2), dtype=np.uint8)
    second = rng.integers(0, 256, size=(30, 2), dtype=np.uint8)
    index = FlatIndex(16)
    index.add(first, ids=np.arange(100, 150))
    index.add(second)  # default ids continue after the largest id
    all_ids = np.r_[np.arange(100, 150), np.arange(150, 180)]
    np.testing.assert_array_equal(index.ids, all_ids)
    database = np.vstack([first, second])
    checks.assert_knn_equal(index.search(database[:5], 12), database[:5], database, 12, ids=all_ids)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(first[:1], ids=[120])


def test_default_ids_store_no_id_array_and_memory_stays_near_raw_codes(rng):
    index = FlatIndex(64)
    for _ in range(40):
        index.add(rng.integers(0, 256, size=(1000, 8), dtype=np.uint8))
    assert index._ids is None
    assert index.nbytes <= 1.05 * index.ntotal * 8


def test_remove_ids_and_reconstruct(checks, rng, n_threads):
    database = rng.integers(0, 256, size=(300, 8), dtype=np.uint8)
    database[10:20] = database[5]
    index = FlatIndex(64)
    index.add(database)
    removed = np.r_[np.arange(0, 300, 3), [5, 999]]
    assert index.remove_ids(removed) == 101
    assert index.remove_ids([999]) == 0
    keep = np.setdiff1d(np.arange(300), removed)
    assert index.ntotal == len(keep)
    queries = database[:8]
    checks.assert_knn_equal(index.search(queries, 15), queries, database[keep], 15, ids=keep)
    checks.assert_range_equal(index.range_search(queries, 20), queries, database[keep], 20, ids=keep)
    np.testing.assert_array_equal(index.reconstruct(7), database[7])
    with pytest.raises(KeyError, match="id 3 is not in the index"):
        index.reconstruct(3)
    with pytest.raises(TypeError, match="id must be an integer"):
        index.reconstruct(1.5)


def test_removing_the_tail_keeps_implicit_ids(rng):
    index = FlatIndex(8)
    index.add(rng.integers(0, 256, size=(10, 1), dtype=np.uint8))
    assert index.remove_ids([8, 9]) == 2
    assert index._ids is None and index.ntotal == 8


def test_state_round_trip_with_read_only_arrays(rng):
    database = rng.integers(0, 256, size=(200, 4), dtype=np.uint8)
    ids = rng.permutation(1000)[:200]
    index = FlatIndex(32)
    index.add(database, ids=ids)
    meta, arrays = index.state()
    frozen = {name: array.copy() for name, array in arrays.items()}
    for array in frozen.values():
        array.flags.writeable = False  # like a read-only memory map
    loaded = FlatIndex.from_state(meta, frozen)
    queries = database[:7]
    for a, b in zip(loaded.search(queries, 9), index.search(queries, 9)):
        np.testing.assert_array_equal(a, b)
    assert loaded.remove_ids(ids[:3]) == 3
    loaded.add(database[:2], ids=[5000, 5001])
    assert loaded.ntotal == 199 and loaded.reconstruct(5001).tolist() == database[1].tolist()


def test_from_state_rejects_inconsistent_arrays(rng):
    meta, arrays = FlatIndex(16).state()
    arrays["codes"] = rng.integers(0, 256, size=(4, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="ntotal"):
        FlatIndex.from_state(meta, arrays)
    meta["ntotal"] = 4
    arrays["ids"] = np.array([1, 1, 2, 3])
    with pytest.raises(ValueError, match="unique"):
        FlatIndex.from_state(meta, arrays)


def test_bad_input_raises_typed_errors(rng):
    index = FlatIndex(64)
    good = rng.integers(0, 256, size=(4, 8), dtype=np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        index.add(good.astype(np.int64))
    with pytest.raises(ValueError, match="8 bytes per code"):
        index.add(good[:, :4])
    with pytest.raises(ValueError, match="one id per code"):
        index.add(good, ids=[1, 2])
    with pytest.raises(ValueError, match="unique"):
        index.add(good, ids=[1, 1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        index.add(good, ids=[-1, 1, 2, 3])
    with pytest.raises(TypeError, match="integers"):
        index.add(good, ids=[0.5, 1, 2, 3])
    index.add(good)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        index.search(good, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        index.search(good, 2.0)
    with pytest.raises(ValueError, match="radius must be an integer >= 0"):
        index.range_search(good, -1)
    with pytest.raises(TypeError, match="queries must have dtype uint8"):
        index.search(good.astype(np.float32), 1)
    with pytest.raises(ValueError, match="n_bits must be a multiple of 8"):
        FlatIndex(12)
    with pytest.raises(ValueError, match="at most 1024"):
        FlatIndex(2048)
    with pytest.raises(TypeError, match="1-D array of integers"):
        index.remove_ids(["a"])


def test_compiled_kernels_are_loaded_from_the_cache_by_a_new_process():
    """cache=True: a second process finds the machine code on disk instead of compiling."""
    script = (
        "import numpy as np\n"
        "from hashlearn.index import FlatIndex, _kernels\n"
        "index = FlatIndex(64); index.add(np.zeros((3, 8), np.uint8))\n"
        "index.search(np.zeros((1, 8), np.uint8), 2)\n"
        "print(sum(_kernels.flat_scans(8)[0].stats.cache_hits.values()))\n"
    )
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(flat_module.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    index = FlatIndex(64)  # compiles here (or loads) and so fills the cache
    index.add(np.zeros((3, 8), np.uint8))
    index.search(np.zeros((1, 8), np.uint8), 2)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert int(run.stdout.strip()) >= 1, run.stderr


@given(
    n=st.integers(0, 60),
    n_bytes=st.sampled_from([1, 3, 8, 11, 32]),
    k=st.integers(1, 70),
    radius=st.integers(0, 40),
    seed=st.integers(0, 2**16),
    shuffled_ids=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_property_matches_reference(n, n_bytes, k, radius, seed, shuffled_ids):
    """Any size, width, k, radius and id order: identical to the reference (few distinct codes, so many ties)."""
    from hashlearn.codes import hamming_distances, reference_search

    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(5, n_bytes), dtype=np.uint8)
    database = pool[rng.integers(0, 5, size=n)]
    queries = rng.integers(0, 256, size=(3, n_bytes), dtype=np.uint8)
    ids = rng.permutation(10 * n + 1)[:n] if shuffled_ids else None
    index = FlatIndex(8 * n_bytes)
    index.add(database, ids=ids)
    expected = reference_search(queries, database, k, ids=ids)
    result = index.search(queries, k)
    np.testing.assert_array_equal(result.distances, expected.distances)
    np.testing.assert_array_equal(result.ids, expected.ids)
    ranged = index.range_search(queries, radius)
    distances = hamming_distances(queries, database) if n else np.zeros((3, 0), np.int32)
    id_values = np.arange(n) if ids is None else ids
    for q in range(3):
        hit = np.flatnonzero(distances[q] <= radius)
        order = np.lexsort((id_values[hit], distances[q][hit]))
        np.testing.assert_array_equal(ranged.ids[ranged.lims[q] : ranged.lims[q + 1]], id_values[hit][order])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 17])
def test_strictly_ascending_matches_diff_at_block_edges(n):
    """Blocks of 8 (and 1) compared with the whole-array reference, a descent at every position."""
    ids = np.arange(n, dtype=np.int64) * 3
    for block in (1, 8):
        assert flat_module._strictly_ascending(ids, block) is True
        for i in range(1, n):
            broken = ids.copy()
            broken[i] = broken[i - 1]  # a tie is not ascending
            assert flat_module._strictly_ascending(broken, block) is bool(np.all(np.diff(broken) > 0)) is False


def test_loading_saved_ids_makes_no_sorted_copy(tmp_path):
    """Loading checked ascending ids with np.unique and np.diff (a sorted copy and two more of their size):
    a read-in Flat index with ids held 1.6x its file."""
    import tracemalloc

    from hashlearn.index.io import load_index, save_index

    codes = np.random.default_rng(4).integers(0, 256, size=(65_536, 16), dtype=np.uint8)
    index = FlatIndex(128)
    index.add(codes, ids=np.arange(len(codes), dtype=np.int64) * 2)
    path = save_index(index, tmp_path / "ids.hlx")
    load_index(path, mmap=False)  # warm up outside the measurement
    tracemalloc.start()
    try:
        loaded = load_index(path, mmap=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * path.stat().st_size, peak / path.stat().st_size
    np.testing.assert_array_equal(loaded.reconstruct(20), codes[10])
    shuffled = FlatIndex(128)
    shuffled.add(codes[:5], ids=np.array([9, 3, 7, 1, 5]))  # unsorted unique ids still load
    assert load_index(save_index(shuffled, tmp_path / "u.hlx"), mmap=False).search(codes[:1], 1).ids[0, 0] == 9


def test_loading_shuffled_ids_checks_them_without_a_hash_set():
    """np.unique of int64 ids builds a hash set: a fresh process's first load of 512 KiB of shuffled
    ids grew its resident memory by about 3.2 MiB (malloc, unseen by tracemalloc; later calls reuse
    the freed heap, so only a fresh process shows it). The sorted copy costs the ids' size once."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the resident high-water mark")
    script = (
        "import numpy as np\n"
        "from hashlearn.index.flat import FlatIndex\n"
        "def status(key):\n"
        "    with open('/proc/self/status') as lines:\n"
        "        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key + ':'))\n"
        "rng = np.random.default_rng(0)\n"
        "codes = rng.integers(0, 256, size=(65_536, 16), dtype=np.uint8)\n"
        "shuffled = rng.permutation(65_536).astype(np.int64) * 2\n"
        "meta = {'kind': 'flat', 'n_bits': 128, 'ntotal': 65_536}\n"
        "FlatIndex.from_state(meta, {'codes': codes, 'ids': np.sort(shuffled)})  # warm up on ascending ids\n"
        "with open('/proc/self/clear_refs', 'w') as handle:\n"
        "    handle.write('5')\n"
        "before = status('VmRSS')\n"
        "index = FlatIndex.from_state(meta, {'codes': codes, 'ids': shuffled})\n"
        "print(status('VmHWM') - before, shuffled.nbytes, index.search(codes[:1], 1).ids[0, 0] == shuffled[0])\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_MMAP_THRESHOLD_"}
    src = os.path.dirname(os.path.dirname(flat_module.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for threshold in (None, "131072"):  # the heap reused, and every buffer over 128 KiB mapped (as the fuzzer runs)
        if threshold is not None:
            env["MALLOC_MMAP_THRESHOLD_"] = threshold
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        grown, ids_nbytes, found = run.stdout.split()
        assert found == "True", run.stdout
        assert int(grown) < 2 * int(ids_nbytes), (threshold, int(grown) / int(ids_nbytes))


def test_has_duplicates_finds_a_repeated_id_in_any_order():
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 9, 300):
        ids = rng.permutation(4 * n + 1)[:n].astype(np.int64)
        assert flat_module._has_duplicates(ids) is False
        assert flat_module._has_duplicates(np.sort(ids)) is False
        if n >= 2:
            first, second = rng.choice(n, size=2, replace=False)
            twice = ids.copy()
            twice[first] = twice[second]
            assert flat_module._has_duplicates(twice) is True
            assert flat_module._has_duplicates(np.sort(twice)) is True
