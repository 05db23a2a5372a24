"""An index split into shards that live on dask.distributed workers.

Each shard is an ordinary :class:`~hashlearn.index.base.BinaryIndex` held by a dask
*actor* on one worker; the :class:`ShardedIndex` in the client process keeps no codes.
Two ways to place codes:

- ``partition="round_robin"`` (the default): each batch is dealt out round-robin;
  ``search`` and ``range_search`` fan the queries out to every shard at once.
- ``partition="substring"``: a code's shard is a function of a substring of its bits
  (:class:`~hashlearn.index.partition.SubstringPartition`, fitted on the first batch
  added). The substring distance is a lower bound on the full distance, so each query
  visits shards in ascending order of its bound and stops once the bound exceeds its
  current k-th distance (range search: visits only shards whose bound is within the
  radius). Results stay exact; on structured codes far fewer shards are visited, on
  uniformly random codes nearly all of them (no bound can prune there).

Either way the per-shard results are merged with the global rule: sort by (distance, id).
Default ids continue after the largest id the index has ever held, so they never repeat
one (also after ``remove_ids``).

The cluster is either one you pass (``client=`` or ``address=`` of a running scheduler)
or a ``LocalCluster`` the index starts and owns; then :meth:`ShardedIndex.close` (or a
``with`` block) shuts it down. A cluster the index starts listens on 127.0.0.1 only
(scheduler, workers and their HTTP endpoints) and runs no dashboard unless
``dashboard=`` asks for one. Saving gathers every shard's state into one file; loading
starts a fresh in-process ``LocalCluster`` unless a client is given.

Needs the ``distributed`` extra: ``pip install 'hashlearn[distributed]'``.
"""

from __future__ import annotations

import functools

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.codes import MISSING_DISTANCE, SearchResult
from hashlearn.errors import MissingDependencyError
from hashlearn.index.base import BinaryIndex, RangeResult
from hashlearn.index.io import index_from_state, index_state, nest_arrays, unnest_arrays
from hashlearn.index.partition import MAX_KEY_BITS, SubstringPartition

PARTITIONS = ("round_robin", "substring")
ROUTINGS = ("sequential", "two_round")
LOOPBACK = "127.0.0.1"
WORKER_WAIT_S = 30.0  # how long a new index waits for a cluster that has no worker yet


def _distributed():
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError("distributed", "ShardedIndex", "pip install 'hashlearn[distributed]'") from error
    return distributed


@functools.cache
def _loopback_worker_class():
    """An in-process dask Worker whose HTTP endpoint (health, metrics) binds to 127.0.0.1.

    A ``LocalCluster`` with ``processes=False`` talks ``inproc://`` and has no host to bind
    the workers' HTTP servers to, so they would listen on every interface."""
    distributed = _distributed()

    class LoopbackWorker(distributed.Worker):
        def __init__(self, *args, dashboard_address=None, **kwargs):
            super().__init__(*args, dashboard_address=dashboard_address or f"{LOOPBACK}:0", **kwargs)

    return LoopbackWorker


def _dashboard_address(dashboard) -> str | None:
    """``False`` -> no dashboard; ``True`` -> one on 127.0.0.1 at a free port; a string -> that address."""
    if dashboard is False or dashboard is None:
        return None
    if dashboard is True:
        address = f"{LOOPBACK}:0"
    elif isinstance(dashboard, str) and dashboard:
        address = dashboard
    else:
        raise TypeError(f"dashboard must be True, False or an address such as '127.0.0.1:8787', got {dashboard!r}.")
    try:
        import bokeh  # noqa: F401  (the dask dashboard is a bokeh application)
    except ImportError as error:
        raise MissingDependencyError("bokeh", "the dask dashboard (dashboard=)", "pip install bokeh") from error
    return address


def start_local_cluster(n_workers: int, *, processes: bool = False, dashboard=False):
    """A dask ``LocalCluster`` whose every listener is on 127.0.0.1; a dashboard only if asked.

    ``processes=False`` keeps the workers in this process (``inproc://`` transport);
    ``processes=True`` starts worker processes that talk TCP on 127.0.0.1.
    """
    distributed = _distributed()
    dashboard_address = _dashboard_address(dashboard)
    # the scheduler always runs an HTTP server (health, metrics); bind it to loopback
    scheduler_kwargs = {"dashboard": dashboard_address is not None, "dashboard_address": dashboard_address or f"{LOOPBACK}:0"}
    options = dict(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=dashboard_address,
                   scheduler_kwargs=scheduler_kwargs)
    if processes:
        options.update(host=LOOPBACK, protocol="tcp")
    else:
        options.update(worker_class=_loopback_worker_class())
    return distributed.LocalCluster(**options)


class ShardActor:
    """Holds one shard on a worker; every method runs there (dask actors serialise the calls)."""

    def __init__(self, entry: dict, arrays: dict):
        self.index = index_from_state(entry, arrays)

    def add(self, codes, ids) -> int:
        self.index.add(codes, ids)
        return self.index.ntotal

    def search(self, queries, k):
        return tuple(self.index.search(queries, k))

    def range_search(self, queries, radius):
        return tuple(self.index.range_search(queries, radius))

    def remove_ids(self, ids) -> int:
        return self.index.remove_ids(ids)

    def reconstruct(self, id_):
        try:
            return self.index.reconstruct(id_)
        except (KeyError, IndexError, ValueError):
            return None

    def stored_ids(self):
        """The ids this shard holds, or ``None`` if its index kind does not expose them."""
        ids = getattr(self.index, "ids", None)
        return None if ids is None else np.asarray(ids, dtype=np.int64)

    def contains(self, ids):
        """Which of ``ids`` this shard holds (bool array)."""
        stored = self.stored_ids()
        if stored is None:
            found = np.zeros(len(ids), dtype=bool)
            for i, id_ in enumerate(ids):
                found[i] = self.reconstruct(int(id_)) is not None
            return found
        return np.isin(ids, stored)

    def ntotal(self) -> int:
        return self.index.ntotal

    def state(self):
        return index_state(self.index)


class ShardedIndex(BinaryIndex):
    """``n_shards`` indexes built by ``shard_factory`` on dask workers, searched as one.

    Parameters
    ----------
    n_bits : code length in bits.
    n_shards : number of shards (placed round-robin on the cluster's workers).
    shard_factory : factory string for each shard (``"Flat"``, ``"MIH"``, ...) or a
        callable ``n_bits -> BinaryIndex``.
    partition : ``"round_robin"`` (default) or ``"substring"`` (hash partitioning by a code
        substring, with lower-bound routing; see the module docstring).
    partition_bits : with ``"substring"``: the key that places a code, an int ``s`` (the
        first ``s`` bits, at most 16; default ``min(16, n_bits)``) or up to 16 bit positions.
    bound_bits : with ``"substring"``: leading bits the routing bound reads, in 16-bit chunks
        (a multiple of 8; default ``min(n_bits, 64)``; more is tighter and costs more per query).
    routing : with ``"substring"``: ``"sequential"`` (default; each round every open query visits
        its next shard: fewest visits) or ``"two_round"`` (the best shard, then all shards still
        within reach at once: at most two rounds of calls).
    client : a ``distributed.Client`` to use (not closed by :meth:`close`).
    address : a scheduler address to connect to (the connection is closed by :meth:`close`).
    n_workers : workers of the ``LocalCluster`` started when neither is given.
    processes : run that cluster's workers in separate processes (default: threads of this process).
    dashboard : start that cluster's dask dashboard: ``True`` (127.0.0.1, a free port) or an
        address; default ``False``. Everything the index starts listens on 127.0.0.1 only.
    """

    kind = "sharded"
    keeps_mapped_arrays = False  # the shards live on the workers as copies: load_index reads the file

    def __init__(self, n_bits: int, n_shards: int = 2, shard_factory="Flat", *, partition: str = "round_robin",
                 partition_bits=None, bound_bits: int | None = None, routing: str = "sequential", client=None, address: str | None = None, n_workers: int | None = None,
                 processes: bool = False, dashboard=False):
        super().__init__(n_bits)
        self.n_shards = check_positive_int(n_shards, "n_shards")
        self.shard_factory = shard_factory
        self.partition = _check_partition(partition)
        self.routing = _check_routing(routing)
        if (partition_bits is not None or bound_bits is not None) and self.partition != "substring":
            raise ValueError("partition_bits and bound_bits need partition='substring'.")
        self._partition = None
        if self.partition == "substring":
            bits = min(MAX_KEY_BITS, self.n_bits) if partition_bits is None else partition_bits
            self._partition = SubstringPartition(self.n_bits, self.n_shards, bits, bound_bits)
        shards = [_make_shard(shard_factory, self.n_bits) for _ in range(self.n_shards)]
        self._next_id = 0
        self._connect(client, address, n_workers, processes, dashboard)
        self._start_shards([index_state(shard) for shard in shards])

    # --- cluster ------------------------------------------------------------------------------
    def _connect(self, client, address, n_workers, processes=False, dashboard=False) -> None:
        distributed = _distributed()
        self._cluster, self._owns_client = None, False
        self.last_shards_visited = np.zeros(0, dtype=np.int64)
        if client is not None and address is not None:
            raise ValueError("pass either client or address, not both.")
        if not isinstance(processes, bool):
            raise TypeError(f"processes must be True or False, got {processes!r}.")
        if client is None:
            if address is None:
                n_workers = check_positive_int(n_workers or min(self.n_shards, 4), "n_workers")
                self._cluster = start_local_cluster(n_workers, processes=processes, dashboard=dashboard)
                address = self._cluster
            elif dashboard is not False:
                raise ValueError("dashboard= applies to a cluster the index starts, not to one at address=.")
            client = distributed.Client(address, set_as_default=False)
            self._owns_client = True
        elif not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}.")
        self.client = client

    def _start_shards(self, states: list[tuple[dict, dict]]) -> None:
        # ask the scheduler itself: Client.scheduler_info() returns a cache that the client's periodic
        # refresh overwrites with an empty worker list, so it can read "no workers" on a live cluster
        workers = sorted(self.client.nthreads())
        if not workers:
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise RuntimeError(f"the dask cluster has no workers after {WORKER_WAIT_S:g} s.") from None
            workers = sorted(self.client.nthreads())
        futures = [
            self.client.submit(ShardActor, entry, arrays, actor=True, pure=False, workers=[workers[i % len(workers)]])
            for i, (entry, arrays) in enumerate(states)
        ]
        self._actor_futures = futures  # the actors live only as long as their futures are referenced
        with self.client.as_current():  # the actor handles bind to this client, default or not
            self.shards = [future.result() for future in futures]
        self._shard_sizes = np.array(self._gather(shard.ntotal() for shard in self.shards), dtype=np.int64)
        self._ntotal = int(self._shard_sizes.sum())
        self._next_shard = self._ntotal % len(self.shards)

    def close(self) -> None:
        """Drop the shards and shut down the client and cluster this index started."""
        self.shards, self._actor_futures = [], []
        if self._owns_client and self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self.client, self._cluster = None, None

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self):
        if not getattr(self, "shards", None):
            raise RuntimeError("this ShardedIndex is closed.")
        return self.shards

    @staticmethod
    def _gather(actor_futures):
        return [future.result() for future in list(actor_futures)]

    # --- BinaryIndex ------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def shard_sizes(self) -> np.ndarray:
        """Codes held by each shard."""
        return self._shard_sizes.copy()

    def fit_partition(self, codes) -> None:
        """Place the substring partition's shards from a sample of ``codes`` (before anything is added).

        Without this call the first non-empty :meth:`add` fits the partition on its own batch.
        """
        if self._partition is None:
            raise ValueError("fit_partition needs partition='substring'.")
        if self._ntotal or self._partition.holds_codes:
            raise ValueError("fit_partition must come before the first add: the shards already hold codes.")
        self._partition.fit(self._check_codes(codes))

    def add(self, codes, ids=None) -> None:
        """Add codes with global ids (default: continuing after the largest id ever held)."""
        shards = self._live()
        codes = self._check_codes(codes)
        n = len(codes)
        if n == 0:
            return
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            ids = self._check_new_ids(ids, n)
        if self._partition is None:
            owner = (np.arange(n) + self._next_shard) % len(shards)
            self._next_shard = (self._next_shard + n) % len(shards)
        else:
            if not self._partition.fitted:
                self._partition.fit(codes)
            owner = self._partition.part_of(codes)
        calls = {s: shards[s].add(codes[owner == s], ids[owner == s]) for s in range(len(shards)) if (owner == s).any()}
        for s, size in zip(calls, self._gather(calls.values())):
            self._shard_sizes[s] = size
        if self._partition is not None:
            self._partition.record(codes)
        self._ntotal += n
        self._next_id = max(self._next_id, int(ids.max()) + 1)

    def _check_new_ids(self, ids, n: int) -> np.ndarray:
        ids = self._check_ids(ids, n)
        if len(np.unique(ids)) != n:
            raise ValueError("ids must be unique; the ids passed to add() contain duplicates.")
        if self._ntotal and ids.min() < self._next_id:  # ids above every id ever held cannot clash
            found = np.logical_or.reduce(self._gather([shard.contains(ids) for shard in self.shards]))
            if found.any():
                raise ValueError(f"ids must be unique; id {int(ids[found][0])} is already in the index.")
        return ids

    def search(self, queries, k: int) -> SearchResult:
        """Exact k nearest neighbours: fan-out (round-robin) or lower-bound routing (substring)."""
        queries, k = self._check_codes(queries, "queries"), self._check_k(k)
        if self._partition is None or not self._partition.fitted:
            shards = self._live()
            self.last_shards_visited = np.full(len(queries), len(shards), dtype=np.int64)
            parts = self._gather([shard.search(queries, k) for shard in shards])
            return merge_search_results([SearchResult(*part) for part in parts], k)
        return self._routed_search(queries, k)

    def _routed_search(self, queries: np.ndarray, k: int) -> SearchResult:
        """Visit shards in ascending lower-bound order; a query stops when its next bound exceeds its k-th distance.

        ``routing="sequential"``: each round, every open query visits its next shard (the visits
        of a round run at once) -- the fewest visits. ``routing="two_round"``: the best shard
        first, then at once every further shard whose bound is within the k-th distance found
        -- at most two rounds of dask calls, a few more visits."""
        shards = self._live()
        nq, n_shards = len(queries), len(shards)
        bounds = self._partition.lower_bounds(queries)
        order = np.argsort(bounds, axis=1, kind="stable")
        sorted_bounds = np.take_along_axis(bounds, order, axis=1)
        best = SearchResult(np.full((nq, k), MISSING_DISTANCE, dtype=np.int32), np.full((nq, k), -1, dtype=np.int64))
        rank = np.zeros(nq, dtype=np.int64)  # shards visited so far (a prefix of each query's order)
        rows = np.arange(nq)
        first_round = True
        while True:
            has_next = rank < n_shards
            next_bound = np.where(has_next, sorted_bounds[rows, np.minimum(rank, n_shards - 1)], np.iinfo(np.int64).max)
            kth = best.distances[:, k - 1].astype(np.int64)  # MISSING_DISTANCE while fewer than k found
            open_rows = np.flatnonzero(has_next & (next_bound <= kth))
            if not len(open_rows):
                break
            if self.routing == "two_round" and not first_round:  # every remaining shard within the k-th distance
                take = (sorted_bounds[open_rows] <= kth[open_rows, None]) & (np.arange(n_shards) >= rank[open_rows, None])
                counts = take.sum(axis=1)
            else:
                counts = np.ones(len(open_rows), dtype=np.int64)
            pair_rows = np.repeat(open_rows, counts)
            pair_ranks = np.repeat(rank[open_rows], counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
            target = order[pair_rows, pair_ranks]
            groups = {s: pair_rows[target == s] for s in np.unique(target)}
            parts = self._gather([shards[s].search(queries[group], k) for s, group in groups.items()])
            for group, part in zip(groups.values(), parts):
                merged = merge_search_results([SearchResult(best.distances[group], best.ids[group]), SearchResult(*part)], k)
                best.distances[group], best.ids[group] = merged
            rank[open_rows] += counts
            first_round = False
        self.last_shards_visited = rank
        return best

    def range_search(self, queries, radius: int) -> RangeResult:
        """All items within ``radius``: every shard (round-robin), or only shards whose bound is within it."""
        queries, radius = self._check_codes(queries, "queries"), self._check_radius(radius)
        shards = self._live()
        if self._partition is None or not self._partition.fitted:
            self.last_shards_visited = np.full(len(queries), len(shards), dtype=np.int64)
            parts = self._gather([shard.range_search(queries, radius) for shard in shards])
            return merge_range_results([RangeResult(*part) for part in parts])
        within = self._partition.lower_bounds(queries) <= radius
        self.last_shards_visited = within.sum(axis=1)
        groups = {s: np.flatnonzero(within[:, s]) for s in range(len(shards)) if within[:, s].any()}
        parts = self._gather([shards[s].range_search(queries[group], radius) for s, group in groups.items()])
        empty = RangeResult(np.zeros(len(queries) + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64))
        expanded = [_spread_range(RangeResult(*part), group, len(queries)) for group, part in zip(groups.values(), parts)]
        return merge_range_results(expanded or [empty])

    def remove_ids(self, ids) -> int:
        """Remove these ids from every shard. The routing bounds keep covering the removed
        codes (results stay exact; the bounds may be a little less tight)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        removed = self._gather([shard.remove_ids(ids) for shard in self._live()])
        self._shard_sizes -= np.asarray(removed, dtype=np.int64)
        self._ntotal -= sum(removed)
        return sum(removed)

    def reconstruct(self, id_: int) -> np.ndarray:
        for code in self._gather([shard.reconstruct(id_) for shard in self._live()]):
            if code is not None:
                return np.asarray(code)
        raise KeyError(f"id {id_} is not in the index.")

    # --- persistence ------------------------------------------------------------------------
    def state(self):
        states = self._gather([shard.state() for shard in self._live()])
        arrays = {}
        for i, (_, shard_arrays) in enumerate(states):
            arrays.update(nest_arrays(f"shard{i}", shard_arrays))
        meta = {"n_bits": self.n_bits, "n_shards": len(states), "next_shard": self._next_shard, "next_id": self._next_id,
                "partition": self.partition, "routing": self.routing, "shards": [entry for entry, _ in states]}
        if self._partition is not None:
            partition_meta, partition_arrays = self._partition.state()
            meta["substring"] = partition_meta
            arrays.update(nest_arrays("partition", partition_arrays))
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays, *, client=None, address=None, n_workers=None, processes=False, dashboard=False):
        """Rebuild the shards on ``client`` / ``address``, or on a new LocalCluster (127.0.0.1 only).

        The stored state is checked before any cluster is started or joined (a file names
        its shards, their kinds and counters; a damaged one must not start workers), and a
        cluster started here is shut down again if a shard cannot be rebuilt.
        """
        index = cls.__new__(cls)
        BinaryIndex.__init__(index, meta["n_bits"])
        shard_entries = meta["shards"]
        if not isinstance(shard_entries, list) or not shard_entries:
            raise ValueError(f"a sharded index stores a non-empty list of shards, got {shard_entries!r:.80}.")
        for entry in shard_entries:
            if not isinstance(entry, dict) or entry.get("kind") == cls.kind:
                raise ValueError(f"each stored shard must be a non-sharded index entry, got {entry!r:.80}.")
        index.n_shards, index.shard_factory = int(meta["n_shards"]), None
        if index.n_shards != len(shard_entries):
            raise ValueError(f"the stored n_shards ({index.n_shards}) differs from the {len(shard_entries)} stored shards.")
        next_shard, next_id = int(meta["next_shard"]), int(meta.get("next_id", 0))
        if next_id < 0:
            raise ValueError(f"the stored next_id must be >= 0, got {next_id}.")
        index.partition = _check_partition(meta.get("partition", "round_robin"))
        index.routing = _check_routing(meta.get("routing", "sequential"))
        index._partition = None
        if index.partition == "substring":
            index._partition = SubstringPartition.from_state(index.n_bits, index.n_shards, meta["substring"],
                                                             unnest_arrays("partition", arrays))
        states = [(entry, unnest_arrays(f"shard{i}", arrays)) for i, entry in enumerate(shard_entries)]
        # memory-mapped arrays become real copies for the workers; arrays read into memory are handed over as they
        # are (views of the one loaded buffer: copying them held every shard twice)
        states = [(entry, {name: np.array(value) if isinstance(value, np.memmap) else value
                           for name, value in shard_arrays.items()}) for entry, shard_arrays in states]
        index._connect(client, address, n_workers, processes, dashboard)
        try:
            index._start_shards(states)
            index._next_shard = next_shard % max(1, index.n_shards)
            if "next_id" in meta:
                index._next_id = next_id
            else:  # files written before next_id was stored: continue after the largest id held
                stored = index._gather([shard.stored_ids() for shard in index.shards])
                held = [int(ids.max()) + 1 for ids in stored if ids is not None and len(ids)]
                index._next_id = max(held, default=index._ntotal)
        except BaseException:
            index.close()  # no workers or actors left behind by a file that failed to load
            raise
        return index

    def __repr__(self) -> str:
        return f"ShardedIndex(n_bits={self.n_bits}, n_shards={self.n_shards}, partition={self.partition!r}, ntotal={self._ntotal})"


def _check_routing(routing) -> str:
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {list(ROUTINGS)}, got {routing!r}.")
    return routing


def _check_partition(partition) -> str:
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {list(PARTITIONS)}, got {partition!r}.")
    return partition


def _spread_range(part: RangeResult, rows: np.ndarray, n_queries: int) -> RangeResult:
    """A range result for the queries ``rows`` as one for all ``n_queries`` (the others found nothing)."""
    counts = np.zeros(n_queries, dtype=np.int64)
    counts[rows] = np.diff(part.lims)
    lims = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    return RangeResult(lims, part.distances, part.ids)


def _make_shard(shard_factory, n_bits: int) -> BinaryIndex:
    if isinstance(shard_factory, str):
        from hashlearn.index.factory import index_factory

        shard = index_factory(shard_factory, n_bits)
    elif callable(shard_factory):
        shard = shard_factory(n_bits)
    else:
        raise TypeError(f"shard_factory must be a factory string or a callable, got {type(shard_factory).__name__}.")
    if not isinstance(shard, BinaryIndex) or shard.n_bits != n_bits:
        raise TypeError(f"shard_factory must build a BinaryIndex of {n_bits} bits, got {shard!r}.")
    if isinstance(shard, ShardedIndex):
        raise ValueError("shards cannot themselves be sharded.")
    return shard


def merge_search_results(parts: list[SearchResult], k: int) -> SearchResult:
    """Merge per-shard top-k lists into the global top-k, sorted by (distance, id)."""
    distances = np.concatenate([part.distances for part in parts], axis=1)
    ids = np.concatenate([part.ids for part in parts], axis=1)
    order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), distances), axis=1)[:, :k]
    return SearchResult(np.take_along_axis(distances, order, axis=1).astype(np.int32),
                        np.take_along_axis(ids, order, axis=1).astype(np.int64))


def merge_range_results(parts: list[RangeResult]) -> RangeResult:
    """Merge per-shard CSR range results, each query's hits sorted by (distance, id)."""
    n_queries = len(parts[0].lims) - 1
    query_rows = np.concatenate([np.repeat(np.arange(n_queries), np.diff(part.lims)) for part in parts])
    distances = np.concatenate([part.distances for part in parts]).astype(np.int32)
    ids = np.concatenate([part.ids for part in parts]).astype(np.int64)
    order = np.lexsort((ids, distances, query_rows))
    lims = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(np.bincount(query_rows, minlength=n_queries), out=lims[1:])
    return RangeResult(lims, distances[order], ids[order])
