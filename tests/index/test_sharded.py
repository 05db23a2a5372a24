"""ShardedIndex on a real dask.distributed cluster: results equal one unsharded index."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from hashlearn.codes import hamming_distances, reference_search  # noqa: E402
from hashlearn.errors import MissingDependencyError  # noqa: E402
from hashlearn.index import FlatIndex  # noqa: E402
from hashlearn.index.base import RangeResult  # noqa: E402
from hashlearn.index.io import index_from_bytes, index_to_bytes, load_index, save_index  # noqa: E402
from hashlearn.index.sharded import ShardedIndex, start_local_cluster  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = start_local_cluster(2)
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
    with pytest.raises(ValueError, match="routing must be one of"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, routing="fast")
    with pytest.raises(ValueError, match="partition must be one of"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, partition="hash")
    with pytest.raises(ValueError, match="partition_bits and bound_bits need partition='substring'"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, partition_bits=8)
    with pytest.raises(ValueError, match="bound_bits must be a multiple of 8 between 8 and 32"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, partition="substring", bound_bits=12)
    with pytest.raises(ValueError, match="partition_bits must be between 1 and 16"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client, partition="substring", partition_bits=20)
    with pytest.raises(ValueError, match="fit_partition needs partition='substring'"):
        ShardedIndex(32, shard_factory=bruteforce_cls, client=client).fit_partition(codes)
    with pytest.raises(ValueError, match="dashboard= applies to a cluster the index starts"):
        ShardedIndex(32, shard_factory=bruteforce_cls, address="tcp://127.0.0.1:1", dashboard=True)
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


def test_loading_holds_the_shards_once(client, tmp_path):
    """A file read into memory hands its shards over as views: from_state copied every shard array and the Flat
    shards checked their ids with sorted copies (2.4x the file; now about 1.06x)."""
    import tracemalloc

    codes = np.random.default_rng(3).integers(0, 256, size=(65_536, 16), dtype=np.uint8)
    with ShardedIndex(128, 2, "Flat", client=client) as index:
        index.add(codes)
        path = save_index(index, tmp_path / "big.hlx")
    file_nbytes = path.stat().st_size
    load_index(path, mmap=False, client=client).close()  # warm up outside the measurement
    for mmap in (False, True):
        tracemalloc.start()
        try:
            loaded = load_index(path, mmap=mmap, client=client)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        try:
            assert loaded.ntotal == len(codes)
            for id_ in (0, 1, 65_535):
                np.testing.assert_array_equal(loaded.reconstruct(id_), codes[id_])
        finally:
            loaded.close()
        assert peak < 1.4 * file_nbytes, (mmap, peak / file_nbytes)  # the file once (+ the copy of a mapped one)


def test_a_sharded_file_is_read_even_with_mmap(client, tmp_path, monkeypatch):
    """The shards live on the workers as copies, so a mapped sharded file held its pages (resident,
    unseen by tracemalloc) and the copies at once: 2x the file's resident cost for mmap=True loads.
    load_index reads it instead; a Flat file is still mapped."""
    import hashlearn.index.io as io_module

    mapped = []

    class RecordingMemmap(np.memmap):
        def __new__(cls, *args, **kwargs):
            mapped.append(args[0])
            return super().__new__(cls, *args, **kwargs)

    codes = np.random.default_rng(6).integers(0, 256, size=(4096, 16), dtype=np.uint8)
    with ShardedIndex(128, 2, "Flat", client=client) as index:
        index.add(codes)
        sharded_path = save_index(index, tmp_path / "sharded.hlx")
        expected = index.search(codes[:4], 3)
    flat = FlatIndex(128)
    flat.add(codes)
    flat_path = save_index(flat, tmp_path / "flat.hlx")
    monkeypatch.setattr(io_module.np, "memmap", RecordingMemmap)
    for verify in (True, False):
        with load_index(sharded_path, mmap=True, verify=verify, client=client) as loaded:
            check_equal(loaded.search(codes[:4], 3), expected)
    assert mapped == []
    load_index(flat_path, mmap=True)
    assert mapped and all(os.fspath(path) == os.fspath(flat_path) for path in mapped)


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


# --- default ids ------------------------------------------------------------------------------
@pytest.mark.parametrize("partition", ["round_robin", "substring"])
def test_default_ids_never_repeat_after_remove(client, bruteforce_cls, make_codes, partition):
    codes = make_codes(40, 32, seed=21)
    index = ShardedIndex(32, n_shards=3, shard_factory=bruteforce_cls, client=client, partition=partition)
    index.add(codes[:20])
    index.remove_ids([3, 7, 19])  # 19 is the largest id: it is not handed out again either
    index.add(codes[20:30])
    index.add(codes[30:], ids=np.arange(100, 110))
    index.add(codes[:2])
    found = index.search(codes[:1], index.ntotal).ids[0]
    assert len(found) == index.ntotal == 39 and len(np.unique(found)) == 39
    expected = sorted(set(range(20)) - {3, 7, 19} | set(range(20, 30)) | set(range(100, 112)))
    assert sorted(found.tolist()) == expected
    np.testing.assert_array_equal(index.reconstruct(110), codes[0])
    with pytest.raises(ValueError, match="id 25 is already in the index"):  # explicit ids are checked on every shard
        index.add(codes[:2], ids=[500, 25])
    with pytest.raises(ValueError, match="contain duplicates"):
        index.add(codes[:2], ids=[600, 600])
    assert index.ntotal == 39
    loaded = ShardedIndex.from_state(*index.state(), client=client)
    loaded.add(codes[:1])
    assert loaded.search(codes[:1], 1).ids[0, 0] in (0, 112) and loaded.reconstruct(112) is not None


# --- hash partitioning --------------------------------------------------------------------------
@pytest.fixture
def clustered(checks):
    rng = np.random.default_rng(31)
    codes, centres = checks.make_clustered(rng, 3000, 64, n_centres=12, flip_probability=0.03)
    queries, _ = checks.make_clustered(rng, 60, 64, centres=centres, flip_probability=0.03)
    return codes, queries


@pytest.mark.parametrize("n_shards, partition_bits, routing", [(4, None, "sequential"), (5, 10, "two_round"),
                                                               (3, [60, 2, 33, 41, 8, 17, 25, 50], "sequential")])
def test_partitioned_search_equals_flat(client, checks, clustered, n_shards, partition_bits, routing):
    codes, queries = clustered
    ids = np.random.default_rng(32).permutation(20_000)[: len(codes)]
    flat = FlatIndex(64)
    flat.add(codes, ids)
    index = ShardedIndex(64, n_shards=n_shards, shard_factory="Flat", client=client, partition="substring",
                         partition_bits=partition_bits, routing=routing)
    index.add(codes[:1000], ids[:1000])  # the first batch places the shards; later batches follow the table
    index.add(codes[1000:], ids[1000:])
    assert index.ntotal == len(codes) and index.shard_sizes.sum() == len(codes)
    for k in (1, 10, 100, 4000):  # k > ntotal pads with -1
        got, want = index.search(queries, k), flat.search(queries, k)
        check_equal(got, want)
        checks.assert_knn_equal(got, queries, codes, k, ids=ids)
        if k == 10:  # clustered codes: the bounds prune most shards
            assert index.last_shards_visited.mean() < n_shards * 0.75
    for radius in (0, 3, 8, 20):
        got = index.range_search(queries, radius)
        check_equal(got, flat.range_search(queries, radius))
        checks.assert_range_equal(got, queries, codes, radius, ids=ids)
    assert index.last_shards_visited.max() <= n_shards
    removed = ids[::3]
    assert index.remove_ids(removed) == len(removed) and flat.remove_ids(removed) == len(removed)
    check_equal(index.search(queries, 10), flat.search(queries, 10))
    check_equal(index.range_search(queries, 6), flat.range_search(queries, 6))


def test_partitioned_search_is_exact_on_uniform_codes(client, checks, make_codes):
    codes, queries = make_codes(2000, 32, seed=41), make_codes(40, 32, seed=42)
    index = ShardedIndex(32, n_shards=4, client=client, partition="substring", partition_bits=8)
    index.add(codes)
    for k in (1, 7, 50):
        checks.assert_knn_equal(index.search(queries, k), queries, codes, k)
    checks.assert_range_equal(index.range_search(queries, 9), queries, codes, 9)


def test_partition_persists_and_fit_partition(client, clustered, tmp_path):
    codes, queries = clustered
    index = ShardedIndex(64, n_shards=4, client=client, partition="substring")
    index.fit_partition(codes[::10])
    index.add(codes[:2000])
    sizes = index.shard_sizes
    assert sizes.min() > 0 and sizes.max() < 2 * sizes.mean()
    want = index.search(queries, 10)
    visited = index.last_shards_visited.copy()
    loaded = ShardedIndex.from_state(*index.state(), client=client)
    assert loaded.partition == "substring"
    check_equal(loaded.search(queries, 10), want)
    np.testing.assert_array_equal(loaded.last_shards_visited, visited)
    loaded.add(codes[2000:])
    index.add(codes[2000:])
    np.testing.assert_array_equal(loaded.shard_sizes, index.shard_sizes)  # the same table places new codes
    with load_index(save_index(index, tmp_path / "p.hlx")) as from_file:
        check_equal(from_file.search(queries, 10), index.search(queries, 10))
    with pytest.raises(ValueError, match="before the first add"):
        index.fit_partition(codes)


# --- listening addresses ------------------------------------------------------------------------
def _listening(process):
    return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_own_cluster_listens_on_loopback_only_without_dashboard(bruteforce_cls, make_codes):
    me = psutil.Process()
    before = _listening(me)
    with ShardedIndex(32, n_shards=2, shard_factory=bruteforce_cls) as index:
        opened = _listening(me) - before
        assert opened, "the scheduler and workers run HTTP endpoints; some listener was expected"
        assert {ip for ip, _ in opened} == {"127.0.0.1"}, opened
        assert index._cluster.scheduler.address.startswith("inproc://")
        ports = {port for _, port in opened}
        health = [port for port in ports if _http_status(port, "/health") == 200]
        assert health, "no scheduler/worker health endpoint answered on 127.0.0.1"
        for port in ports:  # no dashboard page anywhere (distributed serves a "needs bokeh" notice process-wide
            status, body = _http_get(port, "/status")  # once any cluster in the process asked for a dashboard)
            assert status == 404 or (status == 200 and b"needs bokeh" in body), (port, status, body[:200])
        index.add(make_codes(10, 32))
    assert not (_listening(me) - before)
    with pytest.raises(MissingDependencyError if _no_bokeh() else RuntimeError, match="bokeh"):
        if not _no_bokeh():
            raise RuntimeError("bokeh is installed: the dashboard would start")
        ShardedIndex(32, n_shards=1, dashboard=True)
    with pytest.raises(TypeError, match="dashboard must be"):
        ShardedIndex(32, n_shards=1, dashboard="")


@pytest.mark.slow
def test_worker_processes_listen_on_loopback_only(data):
    codes, queries = data
    cluster = start_local_cluster(1, processes=True)
    try:
        processes = [psutil.Process()] + psutil.Process().children(recursive=True)
        opened = set().union(*(_listening(process) for process in processes))
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert opened and {ip for ip, _ in opened} == {"127.0.0.1"}, opened
        with ShardedIndex(32, n_shards=2, address=cluster.scheduler_address) as index:
            index.add(codes)
            check_equal(index.search(queries, 4), reference_search(queries, codes, 4))
    finally:
        cluster.close()


def _http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return -1, b""


def _http_status(port: int, path: str) -> int:
    return _http_get(port, path)[0]


def _no_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return True
    return False


def test_workers_come_from_the_scheduler_not_the_clients_cache(client, make_codes, monkeypatch):
    # the client's periodic refresh can leave scheduler_info() with an empty worker list on a live
    # cluster (a CI run failed that way); the index must ask the scheduler instead
    monkeypatch.setattr(client, "scheduler_info", lambda *a, **k: {"workers": {}})
    codes = make_codes(200, 64, seed=5)
    with ShardedIndex(64, n_shards=3, shard_factory="Flat", client=client) as index:
        index.add(codes)
        check = reference_search(codes[:7], codes, 4)
        np.testing.assert_array_equal(index.search(codes[:7], 4).distances, check.distances)
