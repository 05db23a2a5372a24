"""Hash table over whole short codes: search by probing every code within a radius.

For short codes (at most 32 bits) the ball of radius ``r`` around a query has
``sum(comb(n_bits, i) for i <= r)`` codes, few enough to look each one up
among the buckets of identical codes. k-NN probes radius 0, 1, ... and stops
once the k-th distance lies within the radius. When a ball holds more codes
than there are buckets, comparing the query with every bucket is cheaper and
just as exact, so the index does that instead.

>>> import numpy as np
>>> from hashlearn.index import HashTableIndex
>>> index = HashTableIndex(n_bits=16)
>>> index.add(np.array([[0, 0], [3, 0], [0, 0]], dtype=np.uint8))
>>> result = index.range_search(np.array([[1, 0]], dtype=np.uint8), radius=1)
>>> result.ids.tolist(), result.distances.tolist()
([0, 1, 2], [1, 1, 1])
"""

from __future__ import annotations

import math

import numpy as np

from hashlearn.codes import SearchResult
from hashlearn.index import _kernels as kernels
from hashlearn.index._stored import StoredCodesIndex
from hashlearn.index._threads import run_tasks
from hashlearn.index.base import RangeResult
from hashlearn.index.flat import pad_result
from hashlearn.index.mih import _query_chunks

#: longest code the table indexes: the whole code is the bucket key
MAX_TABLE_BITS = 32


class HashTableIndex(StoredCodesIndex):
    """Exact search by bucket lookup for codes of at most 32 bits.

    Longer codes make the balls to probe too large (``comb(64, 4)`` is already
    635,376 probes); use :class:`~hashlearn.index.mih.MultiIndexHashing`, which
    splits long codes into short substrings, or :class:`~hashlearn.index.flat.FlatIndex`.
    """

    kind = "table"

    def __init__(self, n_bits: int):
        super().__init__(n_bits)
        if self.n_bits > MAX_TABLE_BITS:
            raise ValueError(
                f"HashTableIndex indexes codes of at most {MAX_TABLE_BITS} bits, got n_bits={self.n_bits}: "
                "enumerating Hamming balls of longer codes is too slow. Use MultiIndexHashing or FlatIndex."
            )
        self._n_probes = np.array([math.comb(self.n_bits, r) for r in range(self.n_bits + 1)], dtype=np.int64)
        self._keys = self._bucket_offsets = self._positions = None

    @property
    def n_buckets(self) -> int:
        """Distinct codes stored."""
        self._ensure_built()
        return len(self._keys)

    def _build(self) -> None:
        """Group the rows into buckets of identical codes (sorted keys + CSR rows)."""
        codes = self._flat.codes
        padded = np.zeros((len(codes), 8), dtype=np.uint8)
        padded[:, : self.n_bytes] = codes
        all_keys = padded.view(np.int64)[:, 0]
        order = np.argsort(all_keys, kind="stable")
        sorted_keys = all_keys[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(codes) else np.empty(0, np.int64)
        self._keys = sorted_keys[first]
        self._bucket_offsets = np.r_[first, len(codes)].astype(np.int64)
        self._positions = order.astype(np.int32 if len(codes) < 2**31 else np.int64)

    def search(self, queries, k: int) -> SearchResult:
        queries = self._check_codes(queries, "queries")
        k = self._check_k(k)
        nq, k_kept = queries.shape[0], min(k, self.ntotal)
        if nq == 0 or k_kept == 0:
            return self._flat._search(queries, k)
        self._ensure_built()
        heap_d = np.full((nq, k_kept), kernels.SENTINEL_DISTANCE, dtype=np.int32)
        heap_k = np.full((nq, k_kept), kernels.SENTINEL_KEY, dtype=np.int64)
        _, by_position, ids = self._flat._kernel_args()

        def task(q0, q1):
            kernels.table_knn(
                queries[q0:q1], self.n_bits, self._keys, self._bucket_offsets, self._positions, self._n_probes,
                ids, by_position, heap_d[q0:q1], heap_k[q0:q1],
            )  # fmt: skip
            kernels.finish_heaps(heap_d[q0:q1], heap_k[q0:q1], ids, by_position)

        run_tasks(task, _query_chunks(nq))
        return pad_result(heap_d, heap_k, k)

    def range_search(self, queries, radius: int) -> RangeResult:
        queries = self._check_codes(queries, "queries")
        radius = min(self._check_radius(radius), self.n_bits)
        if queries.shape[0] == 0 or self.ntotal == 0:
            return self._flat._range_search(queries, radius)
        self._ensure_built()
        enumerate_codes = bool(self._n_probes[: radius + 1].sum() <= len(self._keys))

        def task(q0, q1):
            return kernels.table_range(
                queries[q0:q1], self.n_bits, self._keys, self._bucket_offsets, self._positions, radius, enumerate_codes
            )

        parts = run_tasks(task, _query_chunks(queries.shape[0]))
        counts, distances, rows = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return self._flat._finish_range(counts, distances, rows, radius)
