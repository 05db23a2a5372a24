"""ShardedIndex on a real dask.distributed cluster: results equal one unsharded index."""

from __future__ import annotations

import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from hashlearn.codes import hamming_distances, reference_search  # noqa: E402
from hashlearn.index.base import RangeResult  # noqa: E402
from hashlearn.index.io import index_from_bytes, index_to_bytes, load_index, save_index  # noqa: E402
from hashlearn.index.sharded import ShardedIndex  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def data(make_codes):
    codes = make_codes(500, 32, seed=11, clustered=True)  # many distance ties across shards
    queries = make_codes(30, 32, seed=12, clustered=True)
    return codes, queries


def check_equal(got, want):
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, y)


def test_search_equals_single_index(client, bruteforce_cls, data):
    codes, queries = data
    index = ShardedIndex(32, n_shards=3, shard_factory=bruteforce_cls, client=client)
    for start in range(0, len(codes), 170):  # several adds: ids stay global
        index.add(codes[start : start + 170])
    assert index.ntotal == len(codes)
    for k in (1, 10, 600):
        check_equal(index.search(queries, k), reference_search(queries, codes, k))
    single = bruteforce_cls(32)
    single.add(codes)
    for radius in (0, 6, 12):
        check_equal(index.range_search(queries, radius), single.range_search(queries, radius))
    index.close()
    assert not client.status == "closed"  # a client we passed is left open


def test_explicit_ids_remove_and_reconstruct(client, bruteforce_cls, data):
    codes, queries = data
    ids = np.random.default_rng(0).permutation(50_000)[: len(codes)]
    index = ShardedIndex(32, n_shards=4, shard_factory=bruteforce_cls, client=client)
    index.add(codes, ids)
    np.testing.assert_array_equal(index.reconstruct(int(ids[42])), codes[42])
    assert index.remove_ids(ids[:200]) == 200 and index.ntotal == 300
    with pytest.raises(KeyError):
        index.reconstruct(int(ids[0]))
    check_equal(index.search(queries, 7), reference_search(queries, codes[200:], 7, ids=ids[200:]))


def test_save_and_load_rebuild_shards(client, bruteforce_cls, data, tmp_path):
    codes, queries = data
    index = ShardedIndex(32, n_shards=2, shard_factory=bruteforce_cls, client=client)
    index.add(codes)
    want = index.search(queries, 5)
    loaded = ShardedIndex.from_state(*index.state(), client=client)
    check_equal(loaded.search(queries, 5), want)
    loaded.add(codes[:3])  # round-robin continues where it stopped
    assert loaded.ntotal == len(codes) + 3
    with load_index(save_index(index, tmp_path / "s.hlx")) as from_file:  # its own LocalCluster
        assert from_file.n_shards == 2 and from_file._cluster is not None
        check_equal(from_file.search(queries, 5), want)
    assert from_file._cluster is None
    with index_from_bytes(index_to_bytes(index)) as from_bytes:
        check_equal(from_bytes.search(queries, 5), want)


def test_own_cluster_and_scheduler_address(bruteforce_cls, data):
    codes, queries = data
    with ShardedIndex(32, n_shards=2, shard_factory=bruteforce_cls) as index:
        cluster = index._cluster
        index.add(codes)
        check_equal(index.search(queries, 3), reference_search(queries, codes, 3))
    assert cluster.status.name == "closed"
    with pytest.raises(RuntimeError, match="closed"):
        index.search(queries, 3)

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    try:
        with ShardedIndex(32, n_shards=2, shard_factory=bruteforce_cls, address=cluster.scheduler_address) as index:
            index.add(codes[:50])
            d = hamming_distances(queries, codes[:50]).min(axis=1)
            np.testing.assert_array_equal(index.search(queries, 1).distances[:, 0], d)
    finally:
        cluster.close()


def test_validation(client, bruteforce_cls, data):
    codes, queries = data
    with pytest.raises(ValueError, match="either client or address"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, address="tcp://x:1")
    with pytest.raises(TypeError, match="client must be"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client="tcp://x:1")
    with pytest.raises(TypeError, match="shard_factory must build a BinaryIndex of 32 bits"):
        ShardedIndex(32, shard_factory=lambda n_bits: bruteforce_cls(64), client=client)
    with pytest.raises(ValueError, match="n_shards"):
        ShardedIndex(32, n_shards=0, shard_factory=bruteforce_cls, client=client)
    with ShardedIndex(32, shard_factory=bruteforce_cls, client=client) as index:
        with pytest.raises(ValueError, match="4 bytes per code"):
            index.add(codes[:, :2])


@pytest.mark.slow
def test_process_cluster_with_flat_shards(data, tmp_path):
    """Shards in separate worker processes (real serialisation), built by a factory string."""
    codes, queries = data
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            index = ShardedIndex(32, n_shards=2, shard_factory="Flat", client=client)
            index.add(codes)
            assert os.getpid() not in set(client.run(os.getpid).values())  # shards really live elsewhere
            check_equal(index.search(queries, 9), reference_search(queries, codes, 9))
            path = save_index(index, tmp_path / "p.hlx")
            loaded = ShardedIndex.from_state(*index.state(), client=client)
            check_equal(loaded.search(queries, 9), index.search(queries, 9))
            assert load_index(path, mmap=False).close() is None
    finally:
        cluster.close()


def test_merge_equals_global_sort(make_codes):
    """Merging per-shard top-k lists of any split (ties across shards included) is the global top-k."""
    from hashlearn.index.sharded import merge_range_results, merge_search_results

    codes, queries = make_codes(300, 16, seed=13, clustered=True), make_codes(20, 16, seed=14, clustered=True)
    rng = np.random.default_rng(15)
    ids = rng.permutation(10_000)[:300]
    for n_shards in (1, 2, 5):
        owner = rng.integers(0, n_shards, size=300)
        for k in (1, 4, 70):
            parts = [reference_search(queries, codes[owner == s], k, ids=ids[owner == s]) for s in range(n_shards)]
            check_equal(merge_search_results(parts, k), reference_search(queries, codes, k, ids=ids))
        full = hamming_distances(queries, codes)
        parts = []
        for s in range(n_shards):
            mask = owner == s
            hits = [np.flatnonzero(row <= 3) for row in full[:, mask]]
            orders = [np.lexsort((ids[mask][h], row[h])) for row, h in zip(full[:, mask], hits)]
            lims = np.r_[0, np.cumsum([len(h) for h in hits])]
            d = np.concatenate([row[h][o] for row, h, o in zip(full[:, mask], hits, orders)]).astype(np.int32)
            i = np.concatenate([ids[mask][h][o] for h, o in zip(hits, orders)]).astype(np.int64)
            parts.append((lims, d, i))
        merged = merge_range_results([RangeResult(*part) for part in parts])
        for q in range(len(queries)):
            hit = np.flatnonzero(full[q] <= 3)
            order = np.lexsort((ids[hit], full[q, hit]))
            np.testing.assert_array_equal(merged.ids[merged.lims[q] : merged.lims[q + 1]], ids[hit][order])
