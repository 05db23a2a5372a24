"""Exact Hamming search by scanning every code (the baseline every index must match).

>>> import numpy as np
>>> from hashlearn.index import FlatIndex
>>> index = FlatIndex(n_bits=16)
>>> index.add(np.array([[0, 0], [255, 0], [1, 0]], dtype=np.uint8))
>>> result = index.search(np.array([[0, 0]], dtype=np.uint8), k=2)
>>> result.distances.tolist(), result.ids.tolist()
([[0, 1]], [[0, 2]])
"""

from __future__ import annotations

import numpy as np

from hashlearn.codes import MISSING_DISTANCE, SearchResult
from hashlearn.index import _kernels as kernels
from hashlearn.index._threads import get_num_threads, run_tasks
from hashlearn.index.base import BinaryIndex, RangeResult

#: a database is split across threads for one query only above this many rows per thread
_MIN_ROWS_PER_THREAD = 1 << 16
#: queries per task when a batch is split across threads
_QUERIES_PER_TASK = 64
#: spare capacity kept when the buffer grows (1/32 = 3% above the raw codes)
_GROWTH_DIVISOR = 32


class FlatIndex(BinaryIndex):
    """Exact k-NN and range search over packed codes by a compiled XOR + popcount scan.

    Memory: the codes themselves (plus at most 3% spare capacity after repeated
    :meth:`add` calls) and, only when ids are not ``0..ntotal-1``, one ``int64``
    id per code. Threads: :func:`hashlearn.index.set_num_threads`.
    """

    kind = "flat"

    def __init__(self, n_bits: int):
        super().__init__(n_bits)
        self._buffer = np.empty((0, self.n_bytes), dtype=np.uint8)
        self._n = 0
        self._ids: np.ndarray | None = None  # None: the id of row i is i
        self._ids_ascending = True  # ids grow with the row, so ties by row are ties by id

    # --- storage --------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self._n

    @property
    def codes(self) -> np.ndarray:
        """The stored codes ``(ntotal, n_bytes)`` (a read-only view)."""
        view = self._buffer[: self._n]
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """The id of every stored code, in storage order."""
        return np.arange(self._n, dtype=np.int64) if self._ids is None else self._ids

    @property
    def nbytes(self) -> int:
        """Bytes held: the code buffer (with spare capacity) and the ids, if stored."""
        return self._buffer.nbytes + (0 if self._ids is None else self._ids.nbytes)

    def add(self, codes, ids=None) -> None:
        """Append codes; ``ids`` must be unique non-negative integers.

        Without ``ids`` the new codes get ``ntotal, ntotal + 1, ...`` (after custom ids
        or :meth:`remove_ids`: the next integers after the largest id).
        """
        codes = self._check_codes(codes)
        n_new = codes.shape[0]
        new_ids = None if ids is None else self._check_new_ids(ids, n_new)
        if n_new == 0:
            return
        self._append_ids(new_ids, n_new)
        self._reserve(self._n + n_new)
        self._buffer[self._n : self._n + n_new] = codes
        self._n += n_new

    def _check_new_ids(self, ids, n_new: int) -> np.ndarray:
        new_ids = self._check_ids(ids, n_new)
        if _has_duplicates(new_ids):
            raise ValueError("ids must be unique; the ids passed to add() contain duplicates.")
        if self._n and not (self._ids_ascending and n_new and new_ids.min() > self._max_id()):
            clash = np.isin(new_ids, self.ids)
            if clash.any():
                raise ValueError(f"ids must be unique; id {int(new_ids[clash][0])} is already in the index.")
        return new_ids

    def _max_id(self) -> int:
        if self._n == 0:
            return -1
        if self._ids is None:
            return self._n - 1
        return int(self._ids[-1]) if self._ids_ascending else int(self._ids.max())

    def _append_ids(self, new_ids: np.ndarray | None, n_new: int) -> None:
        if new_ids is None:
            start = self._max_id() + 1
            if self._ids is None:
                return
            new_ids = np.arange(start, start + n_new, dtype=np.int64)
        elif self._ids is None and new_ids[0] == self._n and np.array_equal(new_ids, np.arange(self._n, self._n + n_new)):
            return
        ascending = bool(np.all(np.diff(new_ids) > 0)) and (self._n == 0 or new_ids[0] > self._max_id())
        self._ids_ascending = self._ids_ascending and ascending
        self._ids = np.concatenate([self.ids, new_ids])

    def _reserve(self, n_rows: int) -> None:
        """Make room for ``n_rows`` rows, growing by at most 1/32 beyond what is asked."""
        if n_rows <= self._buffer.shape[0] and self._buffer.flags.writeable:
            return
        capacity = n_rows if self._n == 0 else max(n_rows, self._n + self._n // _GROWTH_DIVISOR)
        buffer = np.empty((capacity, self.n_bytes), dtype=np.uint8)
        buffer[: self._n] = self._buffer[: self._n]
        self._buffer = buffer

    def remove_ids(self, ids) -> int:
        """Remove the codes with these ids (unknown ids are ignored); return how many were removed."""
        ids = np.atleast_1d(np.asarray(ids))
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise TypeError(f"ids must be a 1-D array of integers, got dtype {ids.dtype} and shape {ids.shape}.")
        keep = ~np.isin(self.ids, ids)
        n_removed = int(self._n - keep.sum())
        if n_removed == 0:
            return 0
        if not self._buffer.flags.writeable:
            self._buffer = self._buffer[: self._n].copy()
        kept_ids = self.ids[keep]
        self._n = kernels.compact_rows(self._buffer.reshape(-1), self.n_bytes, keep)
        is_range = self._n == 0 or kept_ids[-1] == self._n - 1  # ascending unique ids ending at n-1 are 0..n-1
        self._ids = None if (self._ids_ascending and is_range) else kept_ids
        return n_removed

    def reconstruct(self, id_: int) -> np.ndarray:
        """The stored code of ``id_`` (a copy); ``KeyError`` if it is not in the index."""
        row = self._row_of(id_)
        return self._buffer[row].copy()

    def _row_of(self, id_) -> int:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
            raise TypeError(f"id must be an integer, got {type(id_).__name__} {id_!r}.")
        if self._ids is None:
            row = int(id_) if 0 <= id_ < self._n else -1
        elif self._ids_ascending:
            row = int(np.searchsorted(self._ids, id_))
            row = row if row < self._n and self._ids[row] == id_ else -1
        else:
            hits = np.flatnonzero(self._ids == id_)
            row = int(hits[0]) if len(hits) else -1
        if row < 0:
            raise KeyError(f"id {id_} is not in the index.")
        return row

    # --- search ---------------------------------------------------------------------
    def search(self, queries, k: int) -> SearchResult:
        queries = self._check_codes(queries, "queries")
        k = self._check_k(k)
        return self._search(queries, k)

    def _task_grid(self, nq: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Query chunks and database chunks: queries split across threads, or, for fewer
        queries than threads, the database split across threads."""
        n_threads = get_num_threads()
        # one database chunk per thread: each extra chunk costs its own top-k heap and a larger
        # merge (measured: 4 chunks per thread gave 1,466 q/s, 1 chunk 2,272 q/s, for k=100 on
        # 1M 64-bit codes with 2 threads); a chunk a late thread has not started goes to the caller
        n_parts = n_threads if (nq < n_threads and self._n >= n_threads * _MIN_ROWS_PER_THREAD) else 1
        edges = [self._n * part // n_parts for part in range(n_parts + 1)]
        db_chunks = list(zip(edges[:-1], edges[1:]))
        per_task = max(1, min(_QUERIES_PER_TASK, -(-nq // (4 * n_threads)) if n_threads > 1 else nq))
        query_chunks = [(start, min(start + per_task, nq)) for start in range(0, nq, per_task)]
        return query_chunks, db_chunks

    def _kernel_args(self):
        """``(db, by_position, ids)``: the flat code buffer; whether heap keys are rows
        (ids grow with the row) or ids; the custom ids (empty when ids are rows)."""
        ids = np.empty(0, dtype=np.int64) if self._ids is None else self._ids
        return self._buffer.reshape(-1), self._ids_ascending, ids

    def _search(self, queries: np.ndarray, k: int) -> SearchResult:
        nq = queries.shape[0]
        k_kept = min(k, self._n)
        if k_kept == 0 or nq == 0:
            return SearchResult(np.full((nq, k), MISSING_DISTANCE, dtype=np.int32), np.full((nq, k), -1, dtype=np.int64))
        query_chunks, db_chunks = self._task_grid(nq)
        qwords = kernels.query_words(queries)
        db, by_position, ids = self._kernel_args()
        n_parts = len(db_chunks)
        heap_d = np.full((n_parts, nq, k_kept), kernels.SENTINEL_DISTANCE, dtype=np.int32)
        heap_k = np.full((n_parts, nq, k_kept), kernels.SENTINEL_KEY, dtype=np.int64)
        tasks = [(q0, q1, p, start, stop) for q0, q1 in query_chunks for p, (start, stop) in enumerate(db_chunks)]
        knn_scan = kernels.flat_scans(self.n_bytes)[0]

        def task(q0, q1, part, start, stop):
            knn_scan(qwords[q0:q1], db, self.n_bytes, start, stop, ids, by_position, heap_d[part, q0:q1], heap_k[part, q0:q1], n_parts == 1)

        run_tasks(task, tasks)
        if n_parts == 1:
            out_d, out_i = heap_d[0], heap_k[0]
        else:
            out_d = np.full((nq, k_kept), kernels.SENTINEL_DISTANCE, dtype=np.int32)
            out_i = np.full((nq, k_kept), kernels.SENTINEL_KEY, dtype=np.int64)
            kernels.merge_heaps(heap_d, heap_k, out_d, out_i, ids, by_position)
        return pad_result(out_d, out_i, k)

    def range_search(self, queries, radius: int) -> RangeResult:
        queries = self._check_codes(queries, "queries")
        radius = min(self._check_radius(radius), self.n_bits)
        return self._range_search(queries, radius)

    def _range_search(self, queries: np.ndarray, radius: int) -> RangeResult:
        nq = queries.shape[0]
        if nq == 0 or self._n == 0:
            return RangeResult(np.zeros(nq + 1, dtype=np.int64), np.empty(0, np.int32), np.empty(0, np.int64))
        query_chunks, db_chunks = self._task_grid(nq)
        qwords = kernels.query_words(queries)
        db = self._buffer.reshape(-1)
        range_scan = kernels.flat_scans(self.n_bytes)[1]

        def task(q0, q1, start, stop):
            return range_scan(qwords[q0:q1], db, self.n_bytes, start, stop, radius)

        parts = run_tasks(task, [(q0, q1, start, stop) for q0, q1 in query_chunks for start, stop in db_chunks])
        counts, distances, rows = stitch_parts(parts, len(db_chunks))
        return self._finish_range(counts, distances, rows, radius)

    def _finish_range(self, counts, distances, rows, radius) -> RangeResult:
        """Rows grouped by query -> CSR result sorted by (distance, id)."""
        lims = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=lims[1:])
        ids = rows if self._ids is None else self._ids[rows]
        kernels.sort_segments(lims, distances, ids, radius)
        return RangeResult(lims, distances, ids)

    # --- persistence ----------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"kind": self.kind, "n_bits": self.n_bits, "ntotal": self._n}
        arrays = {"codes": self._buffer[: self._n]}
        if self._ids is not None:
            arrays["ids"] = self._ids
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "FlatIndex":
        if meta.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"FlatIndex.from_state got the state of a {meta['kind']!r} index, expected 'flat'.")
        index = cls(meta["n_bits"])
        index._load_storage(meta, arrays)
        return index

    def _load_storage(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Adopt saved codes (without copying: they may be memory-mapped) and ids."""
        codes = self._check_codes(arrays["codes"], "arrays['codes']")
        if codes.shape[0] != meta.get("ntotal", codes.shape[0]):
            raise ValueError(f"meta says ntotal={meta['ntotal']} but arrays['codes'] holds {codes.shape[0]} codes.")
        if "ids" in arrays:
            ids = self._check_ids(arrays["ids"], codes.shape[0])
            self._ids_ascending = _strictly_ascending(ids)
            if not self._ids_ascending and _has_duplicates(ids, ascending=False):  # ascending ids are unique: no sorted copy
                raise ValueError("arrays['ids'] must be unique; the saved ids contain duplicates.")
            is_range = len(ids) == 0 or ids[-1] == len(ids) - 1
            self._ids = None if (self._ids_ascending and is_range) else ids
        self._buffer = codes
        self._n = codes.shape[0]


def _strictly_ascending(ids: np.ndarray, block: int = 1 << 16) -> bool:
    """Whether ``ids`` strictly ascend, compared a block at a time (``np.diff`` of a loaded
    index's ids would allocate their size twice more)."""
    for start in range(0, len(ids) - 1, block):
        chunk = ids[start : start + block + 1]
        if not np.all(chunk[1:] > chunk[:-1]):
            return False
    return True


def _has_duplicates(ids: np.ndarray, ascending: bool | None = None) -> bool:
    """Whether ``ids`` hold a value twice: ascending ids are checked in place, others by one
    sorted copy (``ascending``: whether ``ids`` are strictly ascending, when the caller knows).
    (``np.unique`` of int64 builds a hash set first: about 6x the ids' size in resident memory,
    which ``tracemalloc`` does not see.)"""
    if ascending is None:
        ascending = _strictly_ascending(ids)
    return not ascending and not _strictly_ascending(np.sort(ids))


def pad_result(distances: np.ndarray, ids: np.ndarray, k: int) -> SearchResult:
    """Widen ``(nq, k_kept)`` finished results to ``k`` columns of missing results."""
    if distances.shape[1] == k:
        return SearchResult(distances, ids)
    out_d = np.full((len(distances), k), MISSING_DISTANCE, dtype=np.int32)
    out_i = np.full((len(distances), k), -1, dtype=np.int64)
    out_d[:, : distances.shape[1]] = distances
    out_i[:, : distances.shape[1]] = ids
    return SearchResult(out_d, out_i)


def stitch_parts(parts: list, n_db_parts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join per-task ``(counts, distances, rows)`` (tasks ordered query chunk major, then
    database chunk) into one grouping by query."""
    if n_db_parts == 1:
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )
    counts, distances, rows = [], [], []
    for chunk in range(0, len(parts), n_db_parts):
        group = parts[chunk : chunk + n_db_parts]
        starts = [np.concatenate([[0], np.cumsum(p[0])]) for p in group]
        for q in range(len(group[0][0])):
            counts.append(sum(int(p[0][q]) for p in group))
            for p, s in zip(group, starts):
                distances.append(p[1][s[q] : s[q + 1]])
                rows.append(p[2][s[q] : s[q + 1]])
    return np.array(counts, dtype=np.int64), np.concatenate(distances), np.concatenate(rows)
