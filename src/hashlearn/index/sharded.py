"""An index split into shards that live on dask.distributed workers.

Each shard is an ordinary :class:`~hashlearn.index.base.BinaryIndex` held by a dask
*actor* on one worker; the :class:`ShardedIndex` in the client process keeps no codes.
``add`` deals each batch out round-robin with global ids, ``search`` and
``range_search`` fan the queries out to every shard at once and merge the partial
results with the global rule: sort by (distance, id).

The cluster is either one you pass (``client=`` or ``address=`` of a running scheduler)
or a ``LocalCluster`` the index starts and owns; then :meth:`ShardedIndex.close` (or a
``with`` block) shuts it down. Saving gathers every shard's state into one file; loading
starts a fresh in-process ``LocalCluster`` unless a client is given.

Needs the ``distributed`` extra: ``pip install 'hashlearn[distributed]'``.
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.codes import SearchResult
from hashlearn.errors import MissingDependencyError
from hashlearn.index.base import BinaryIndex, RangeResult
from hashlearn.index.io import index_from_state, index_state, nest_arrays, unnest_arrays


def _distributed():
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError("distributed", "ShardedIndex", "pip install 'hashlearn[distributed]'") from error
    return distributed


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
    client : a ``distributed.Client`` to use (not closed by :meth:`close`).
    address : a scheduler address to connect to (the connection is closed by :meth:`close`).
    n_workers : workers of the in-process ``LocalCluster`` started when neither is given.
    """

    kind = "sharded"

    def __init__(self, n_bits: int, n_shards: int = 2, shard_factory="Flat", *, client=None, address: str | None = None,
                 n_workers: int | None = None):
        super().__init__(n_bits)
        self.n_shards = check_positive_int(n_shards, "n_shards")
        self.shard_factory = shard_factory
        shards = [_make_shard(shard_factory, self.n_bits) for _ in range(self.n_shards)]
        self._connect(client, address, n_workers)
        self._start_shards([index_state(shard) for shard in shards])

    # --- cluster ------------------------------------------------------------------------------
    def _connect(self, client, address, n_workers) -> None:
        distributed = _distributed()
        self._cluster, self._owns_client = None, False
        if client is not None and address is not None:
            raise ValueError("pass either client or address, not both.")
        if client is None:
            if address is None:
                n_workers = check_positive_int(n_workers or min(self.n_shards, 4), "n_workers")
                self._cluster = distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=":0"
                )
                address = self._cluster
            client = distributed.Client(address, set_as_default=False)
            self._owns_client = True
        elif not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}.")
        self.client = client

    def _start_shards(self, states: list[tuple[dict, dict]]) -> None:
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("the dask cluster has no workers.")
        futures = [
            self.client.submit(ShardActor, entry, arrays, actor=True, pure=False, workers=[workers[i % len(workers)]])
            for i, (entry, arrays) in enumerate(states)
        ]
        self._actor_futures = futures  # the actors live only as long as their futures are referenced
        with self.client.as_current():  # the actor handles bind to this client, default or not
            self.shards = [future.result() for future in futures]
        self._ntotal = sum(self._gather(shard.ntotal() for shard in self.shards))
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

    def add(self, codes, ids=None) -> None:
        """Add codes with global ids, dealt round-robin over the shards."""
        shards = self._live()
        codes = self._check_codes(codes)
        n = len(codes)
        ids = np.arange(self._ntotal, self._ntotal + n, dtype=np.int64) if ids is None else self._check_ids(ids, n)
        owner = (np.arange(n) + self._next_shard) % len(shards)
        calls = [shards[s].add(codes[owner == s], ids[owner == s]) for s in range(len(shards)) if (owner == s).any()]
        self._gather(calls)
        self._ntotal += n
        self._next_shard = (self._next_shard + n) % len(shards)

    def search(self, queries, k: int) -> SearchResult:
        queries, k = self._check_codes(queries, "queries"), self._check_k(k)
        parts = self._gather([shard.search(queries, k) for shard in self._live()])
        return merge_search_results([SearchResult(*part) for part in parts], k)

    def range_search(self, queries, radius: int) -> RangeResult:
        queries, radius = self._check_codes(queries, "queries"), self._check_radius(radius)
        parts = self._gather([shard.range_search(queries, radius) for shard in self._live()])
        return merge_range_results([RangeResult(*part) for part in parts])

    def remove_ids(self, ids) -> int:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        removed = sum(self._gather([shard.remove_ids(ids) for shard in self._live()]))
        self._ntotal -= removed
        return removed

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
        meta = {"n_bits": self.n_bits, "n_shards": len(states), "next_shard": self._next_shard,
                "shards": [entry for entry, _ in states]}
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays, *, client=None, address=None, n_workers=None):
        """Rebuild the shards on ``client`` / ``address``, or on a new in-process LocalCluster."""
        index = cls.__new__(cls)
        BinaryIndex.__init__(index, meta["n_bits"])
        index.n_shards, index.shard_factory = int(meta["n_shards"]), None
        states = [(entry, unnest_arrays(f"shard{i}", arrays)) for i, entry in enumerate(meta["shards"])]
        # arrays may be memory-mapped: hand the workers real copies
        states = [(entry, {name: np.array(value) for name, value in shard_arrays.items()}) for entry, shard_arrays in states]
        index._connect(client, address, n_workers)
        index._start_shards(states)
        index._next_shard = int(meta["next_shard"]) % max(1, index.n_shards)
        return index

    def __repr__(self) -> str:
        return f"ShardedIndex(n_bits={self.n_bits}, n_shards={self.n_shards}, ntotal={self._ntotal})"


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
