"""Multi-index hashing: exact Hamming search that reads a small part of the database.

Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index
hashing", CVPR 2012. Each code is cut into ``m`` disjoint substrings and every
substring gets a table (value -> rows). By the pigeonhole principle, a code
within distance ``r`` of the query agrees with it within ``r // m`` bits in at
least one substring, so probing each table around the query's substring finds
every candidate; exact distances on the full codes then settle the result,
which is identical to :class:`~hashlearn.index.flat.FlatIndex` (ties by id).

Layout: the tables index *entries*, the distinct codes (a code held by 15 rows is
one entry with an ascending list of 15 rows), so trained-model codes, which repeat
a lot, cost one candidate per distinct code. Each table keeps a copy of its
entries' codes in bucket order, so a probed bucket is verified from contiguous
memory, and a bitmap of its non-empty buckets, so an empty probe reads one
cached word.

When the tables would cost more than a scan (uniformly random codes in a small
database, large radii, large k) the index answers by the flat scan itself.

>>> import numpy as np
>>> from hashlearn.index import MultiIndexHashing
>>> codes = np.random.default_rng(0).integers(0, 256, size=(1000, 8), dtype=np.uint8)
>>> index = MultiIndexHashing(n_bits=64)
>>> index.add(codes)
>>> index.search(codes[:2], k=1).ids.tolist()
[[0], [1]]
"""

from __future__ import annotations

import math

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.codes import SearchResult
from hashlearn.index import _kernels as kernels
from hashlearn.index._threads import get_num_threads, run_tasks
from hashlearn.index._stored import StoredCodesIndex
from hashlearn.index.base import RangeResult
from hashlearn.index.flat import pad_result, stitch_parts

#: longest substring a table indexes (a table has 2**bits + 1 offsets)
MAX_SUBSTRING_BITS = 24
#: one candidate read at random costs about this many rows of a sequential scan (64-bit rows)
CANDIDATE_COST_IN_ROWS = 128.0
#: one table probe costs about this many candidate reads
PROBE_COST = 1.0


#: pending (added but not yet indexed) rows are scanned until they pass this many ...
MERGE_MIN_ROWS = 4096
#: ... or this fraction of the indexed rows; then they are merged into the tables
MERGE_FRACTION = 1 / 8
#: sample of the database the substring count is chosen on: queries, and rows whose
#: substrings stand in for the tables' bucket sizes
CHOICE_QUERIES = 64
CHOICE_SAMPLE_ROWS = 8192
#: the k the substring count is tuned for
CHOICE_K = 10


def default_n_tables(n_bits: int, ntotal: int) -> int:
    """Tables so each substring has about ``log2(ntotal)`` bits (the paper's choice),
    with substrings of at most :data:`MAX_SUBSTRING_BITS` bits. Used when there is no
    data to choose from (see :func:`choose_n_tables`)."""
    substring_bits = min(MAX_SUBSTRING_BITS, max(4, round(math.log2(max(ntotal, 2)))))
    n_tables = max(1, round(n_bits / substring_bits), -(-n_bits // MAX_SUBSTRING_BITS))
    return min(n_tables, n_bits)


def substring_layout(n_bits: int, n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of ``n_tables`` near-equal substrings covering ``n_bits`` bits."""
    lengths = np.full(n_tables, n_bits // n_tables, dtype=np.int64)
    lengths[: n_bits % n_tables] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths


def candidate_n_tables(n_bits: int, ntotal: int) -> range:
    """Substring counts worth estimating: from the fewest whose tables stay within about
    4 offsets per row (and :data:`MAX_SUBSTRING_BITS`) to eight more."""
    longest = min(MAX_SUBSTRING_BITS, max(4, math.ceil(math.log2(max(ntotal, 2))) + 2))
    fewest = max(1, -(-n_bits // longest))
    return range(fewest, min(n_bits, fewest + 8) + 1)


def estimate_costs(entries: np.ndarray, kth: np.ndarray, queries: np.ndarray, n_bits: int, seed: int = 0,
                   n_entries: float | None = None) -> dict[int, float]:
    """Estimated work per query (in candidate reads) of MIH with each candidate substring
    count, from the data: ``queries`` with k-th neighbour distances ``kth``, and a sample
    of the distinct codes ``entries`` for the bucket sizes, of which the tables hold
    ``n_entries`` (default ``len(entries)``; see :func:`hashlearn.index._kernels.mih_cost_estimate`)."""
    n = len(entries)
    n_entries = float(n if n_entries is None else n_entries)
    rng = np.random.default_rng(seed)
    sample = entries if n <= CHOICE_SAMPLE_ROWS else entries[np.sort(rng.choice(n, CHOICE_SAMPLE_ROWS, replace=False))]
    sample = np.ascontiguousarray(sample).reshape(-1)
    n_sample = len(sample) // entries.shape[1]
    binomials = np.array([[math.comb(a, b) for b in range(MAX_SUBSTRING_BITS + 1)] for a in range(MAX_SUBSTRING_BITS + 1)], dtype=np.float64)
    costs = {}
    for m in candidate_n_tables(n_bits, int(n_entries)):
        starts, lengths = substring_layout(n_bits, m)
        probes, candidates = kernels.mih_cost_estimate(
            queries, kth.astype(np.int64), sample, entries.shape[1], starts, lengths, binomials, n_entries / max(1, n_sample)
        )
        costs[m] = probes * PROBE_COST + candidates
    return costs


def group_identical(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by identical code: ``(rows, offsets)`` with group ``g`` the rows
    ``rows[offsets[g]:offsets[g + 1]]`` (ascending), groups in lexicographic order of
    their code's 64-bit words."""
    n = len(codes)
    if n == 0:
        return np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    words = kernels.query_words(codes)
    rows = np.argsort(words[:, 0], kind="stable") if words.shape[1] == 1 else np.lexsort(words.T[::-1])
    ordered = words[rows]
    new_group = np.ones(n, dtype=np.bool_)
    new_group[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    offsets = np.append(np.flatnonzero(new_group), n).astype(np.int64)
    return rows.astype(np.int64), offsets


class MultiIndexHashing(StoredCodesIndex):
    """Exact k-NN and range search by multi-index hashing over a flat code store.

    Parameters
    ----------
    n_bits : int
        Code length (a multiple of 8, at most 1024).
    n_tables : int or None
        Number of substring tables ``m``; ``None`` chooses it from the data when the
        tables are built: the count whose estimated work per 10-NN query is least, on
        a sample of database codes searched as queries (their neighbour distances) and
        a sample of rows standing in for the bucket sizes (:func:`estimate_costs`).
    max_cost_fraction : float
        A query may spend this fraction of a flat scan's cost in the tables before it
        is answered by the scan instead (0 always scans, ``inf`` never does).

    The tables are built on the first search and are not saved by :meth:`state` (they
    are rebuilt from the codes, so a tampered file cannot point the compiled kernels
    out of bounds). Codes added later are scanned until they pass
    :data:`MERGE_MIN_ROWS` rows or :data:`MERGE_FRACTION` of the indexed ones, then
    appended to the existing tables in one linear pass; only :meth:`remove_ids` (rows
    move) and a database grown fourfold since the substring count was chosen rebuild
    them.
    """

    kind = "mih"

    def __init__(self, n_bits: int, n_tables: int | None = None, max_cost_fraction: float = 0.25):
        super().__init__(n_bits)
        self.n_tables = check_positive_int(n_tables, "n_tables", allow_none=True)
        if self.n_tables is not None and self.n_tables > self.n_bits:
            raise ValueError(f"n_tables must be at most n_bits={self.n_bits} (one bit per table), got {self.n_tables}.")
        if self.n_tables is not None and -(-self.n_bits // self.n_tables) > MAX_SUBSTRING_BITS:
            raise ValueError(
                f"n_tables={self.n_tables} gives substrings longer than {MAX_SUBSTRING_BITS} bits for n_bits={self.n_bits}; "
                f"use at least {-(-self.n_bits // MAX_SUBSTRING_BITS)} tables."
            )
        try:  # "inf" is accepted so the value survives a round trip through strict JSON
            fraction = float(max_cost_fraction) if not isinstance(max_cost_fraction, bool) else math.nan
        except (TypeError, ValueError):
            fraction = math.nan
        if not fraction >= 0:
            raise ValueError(f"max_cost_fraction must be a number >= 0 (or 'inf'), got {max_cost_fraction!r}.")
        self.max_cost_fraction = fraction
        self._tables: dict | None = None
        self._n_indexed = 0  # rows [0, _n_indexed) are in the tables, later ones are scanned
        self._chosen_at = 0  # ntotal when the substring count was last chosen
        #: the substring counts estimated by the last choice: {m: work per query in candidate reads}
        self.cost_estimates: dict[int, float] = {}
        self._scan_rate = 0.0  # running share of queries the tables handed to the scan
        self._calls = 0
        #: diagnostics of the last k-NN search through the tables: (probes, candidates) per query
        self.last_work: np.ndarray | None = None

    def _params(self) -> dict:
        fraction = self.max_cost_fraction if math.isfinite(self.max_cost_fraction) else "inf"
        return {"n_tables": self.n_tables, "max_cost_fraction": fraction}

    @property
    def nbytes(self) -> int:
        """Bytes held: the codes, ids and (once built) the tables."""
        tables = 0 if self._tables is None else sum(v.nbytes for v in self._tables.values())
        return self._flat.nbytes + tables

    # --- tables ----------------------------------------------------------------------
    def _build(self) -> None:
        """Group identical codes into entries and build the substring tables over the
        entries (one counting sort per table, tables in parallel)."""
        n = self.ntotal
        m = self.n_tables or self._choose_n_tables()
        starts, lengths = substring_layout(self.n_bits, m)
        rows, entry_offsets = group_identical(self._flat._buffer[:n])
        entry_codes = np.ascontiguousarray(self._flat._buffer[rows[entry_offsets[:-1]]]).reshape(-1)
        self._tables = self._new_tables(starts, lengths, len(entry_offsets) - 1)
        tables = self._tables
        tables.update(entry_offsets=entry_offsets, entry_rows=rows.astype(np.int32 if n < 2**31 else np.int64))

        def task(j):
            kernels.build_entry_table(entry_codes, self.n_bytes, starts[j], lengths[j], *self._table_views(tables, j))

        run_tasks(task, [(j,) for j in range(m)])
        self._n_indexed = n

    def _new_tables(self, starts, lengths, n_entries: int) -> dict:
        """Empty arrays for ``len(starts)`` tables over ``n_entries`` entries."""
        m = len(starts)
        offset_base = np.concatenate([[0], np.cumsum((1 << lengths) + 1)]).astype(np.int64)
        bitmap_base = np.concatenate([[0], np.cumsum(-(-(1 << lengths) // 64))]).astype(np.int64)
        return dict(
            starts=starts, lengths=lengths, offset_base=offset_base, bitmap_base=bitmap_base,
            offsets=np.zeros(offset_base[-1], dtype=np.uint32 if n_entries < 2**32 else np.int64),
            bitmap=np.zeros(bitmap_base[-1], dtype=np.uint64),
            slots=np.empty((m, n_entries), dtype=np.int32 if n_entries < 2**31 else np.int64),
            slot_codes=np.empty((m, n_entries * self.n_bytes), dtype=np.uint8),
        )  # fmt: skip

    @staticmethod
    def _table_views(tables: dict, j: int) -> tuple:
        """``(offsets, slots, slot_codes, bitmap)`` of table ``j``."""
        ob, bb = tables["offset_base"], tables["bitmap_base"]
        return (tables["offsets"][ob[j] : ob[j + 1]], tables["slots"][j], tables["slot_codes"][j], tables["bitmap"][bb[j] : bb[j + 1]])

    @property
    def n_entries(self) -> int:
        """Entries in the tables: distinct codes (a code added again later may form a second entry)."""
        return 0 if self._tables is None else self._tables["slots"].shape[1]

    def _choose_n_tables(self) -> int:
        """The substring count with the least estimated 10-NN work on this data."""
        n = self.ntotal
        self._chosen_at = n
        if n < 2:
            return default_n_tables(self.n_bits, n)
        rng = np.random.default_rng(n)
        rows = np.sort(rng.choice(n, min(n, CHOICE_QUERIES), replace=False))
        queries = self._flat._buffer[rows]
        k = min(CHOICE_K + 1, n)  # the query itself is among its own neighbours
        kth = self._flat._search(queries, k).distances[:, k - 1]
        sample = self._flat._buffer[np.sort(rng.choice(n, min(n, CHOICE_SAMPLE_ROWS * 4), replace=False))]
        entries = np.unique(sample.view(f"V{self.n_bytes}").ravel()).view(np.uint8).reshape(-1, self.n_bytes)
        distinct_share = len(entries) / len(sample)  # the tables hold distinct codes: about n * share entries
        self.cost_estimates = estimate_costs(entries, kth, queries, self.n_bits, seed=n, n_entries=max(1.0, n * distinct_share))
        best = min(self.cost_estimates, key=self.cost_estimates.get)
        if self.cost_estimates[best] > self._max_cost():  # e.g. uniformly random codes: start with the scan
            self._scan_rate = 1.0
        return best

    def _extend(self) -> None:
        """Append the pending rows to every table (one linear pass each, no sort): their
        distinct codes become new entries."""
        n, first = self.ntotal, self._n_indexed
        old = self._tables
        rows, new_offsets = group_identical(self._flat._buffer[first:n])
        rows += first
        new_codes = np.ascontiguousarray(self._flat._buffer[rows[new_offsets[:-1]]]).reshape(-1)
        first_entry = old["slots"].shape[1]
        n_entries = first_entry + len(new_offsets) - 1
        tables = self._new_tables(old["starts"], old["lengths"], n_entries)
        old_rows = old["entry_rows"]
        entry_rows = np.concatenate([old_rows, rows.astype(old_rows.dtype if n < 2**31 else np.int64)])
        entry_offsets = np.concatenate([old["entry_offsets"], new_offsets[1:] + old["entry_offsets"][-1]])
        tables.update(entry_offsets=entry_offsets, entry_rows=entry_rows)

        def task(j):
            old_offsets, old_slots, old_slot_codes, _ = self._table_views(old, j)
            kernels.extend_entry_table(
                new_codes, self.n_bytes, first_entry, old["starts"][j], old["lengths"][j], old_offsets, old_slots,
                old_slot_codes, *self._table_views(tables, j),
            )  # fmt: skip

        run_tasks(task, [(j,) for j in range(len(old["lengths"]))])
        self._tables = tables
        self._n_indexed = n

    def add(self, codes, ids=None) -> None:
        """Append codes (see :meth:`FlatIndex.add`); the tables are extended, not rebuilt."""
        self._flat.add(codes, ids)

    def remove_ids(self, ids) -> int:
        removed = self._flat.remove_ids(ids)
        if removed:  # rows moved: the tables are rebuilt on the next search
            self._built = False
        return removed

    def _ensure_tables(self) -> dict:
        self._ensure_built()
        n = self.ntotal
        pending = n - self._n_indexed
        if pending > max(MERGE_MIN_ROWS, self._n_indexed * MERGE_FRACTION):
            with self._build_lock:
                if self.n_tables is None and n > 4 * self._chosen_at:
                    self._build()  # the data outgrew the substring count chosen for it
                elif n - self._n_indexed > max(MERGE_MIN_ROWS, self._n_indexed * MERGE_FRACTION):
                    self._extend()
        return self._tables

    @property
    def n_pending(self) -> int:
        """Rows added since the tables were last built or extended (searched by a scan)."""
        return self.ntotal - self._n_indexed if self._built else self.ntotal

    def _max_cost(self) -> float:
        """Per-query budget in candidate reads: a fraction of one flat scan."""
        scan_cost = self.ntotal * max(1.0, self.n_bytes / 8) / CANDIDATE_COST_IN_ROWS
        return self.max_cost_fraction * scan_cost

    def _use_tables(self, nq: int) -> bool:
        """Skip the tables while recent queries kept falling back to the scan, but
        retry them every 16th call so a change in the queries is noticed."""
        self._calls += 1
        return self._scan_rate < 0.5 or self._calls % 16 == 0

    def _record(self, n_scanned: int, nq: int) -> None:
        self.last_scanned_queries = n_scanned
        if nq:
            self._scan_rate = 0.5 * self._scan_rate + 0.5 * (n_scanned / nq)

    # --- search ---------------------------------------------------------------------
    def search(self, queries, k: int) -> SearchResult:
        queries = self._check_codes(queries, "queries")
        k = self._check_k(k)
        nq, n = queries.shape[0], self.ntotal
        if n == 0 or nq == 0 or self.max_cost_fraction == 0 or not self._use_tables(nq):
            self.last_scanned_queries = nq
            return self._flat._search(queries, k)
        tables = self._ensure_tables()
        k_kept = min(k, n)
        heap_d = np.full((nq, k_kept), kernels.SENTINEL_DISTANCE, dtype=np.int32)
        heap_k = np.full((nq, k_kept), kernels.SENTINEL_KEY, dtype=np.int64)
        aborted = np.zeros(nq, dtype=np.bool_)
        work = np.zeros((nq, 2), dtype=np.int64)
        qwords = kernels.query_words(queries)
        db, by_position, ids = self._flat._kernel_args()
        max_cost = self._max_cost()

        n_indexed = self._n_indexed
        knn_scan = kernels.flat_scans(self.n_bytes)[0]

        def task(q0, q1):
            kernels.mih_knn(
                queries[q0:q1], qwords[q0:q1], self.n_bytes, *_table_args(tables), ids, by_position,
                max_cost, PROBE_COST, heap_d[q0:q1], heap_k[q0:q1], aborted[q0:q1], work[q0:q1],
            )  # fmt: skip
            # rows added since the tables were built: scanned (their positions follow every indexed row)
            knn_scan(qwords[q0:q1], db, self.n_bytes, n_indexed, n, ids, by_position, heap_d[q0:q1], heap_k[q0:q1], True)

        run_tasks(task, _query_chunks(nq))
        out_d, out_i = pad_result(heap_d, heap_k, k)
        if aborted.any():
            scanned = self._flat._search(queries[aborted], k)
            out_d[aborted], out_i[aborted] = scanned.distances, scanned.ids
        self._record(int(aborted.sum()), nq)
        self.last_work = work
        return SearchResult(out_d, out_i)

    def range_search(self, queries, radius: int) -> RangeResult:
        queries = self._check_codes(queries, "queries")
        radius = min(self._check_radius(radius), self.n_bits)
        nq = queries.shape[0]
        if self.ntotal == 0 or nq == 0 or self.max_cost_fraction == 0 or not self._use_tables(nq):
            self.last_scanned_queries = nq
            return self._flat._range_search(queries, radius)
        tables = self._ensure_tables()
        aborted = np.zeros(nq, dtype=np.bool_)
        qwords = kernels.query_words(queries)
        db = self._flat._buffer.reshape(-1)
        max_cost = self._max_cost()

        def task(q0, q1):
            return kernels.mih_range(
                queries[q0:q1], qwords[q0:q1], self.n_bytes, *_table_args(tables), radius, max_cost, PROBE_COST, aborted[q0:q1],
            )  # fmt: skip

        parts = run_tasks(task, _query_chunks(nq))
        indexed = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
        if self._n_indexed < self.ntotal:  # rows added since the tables were built: scanned
            pending = kernels.flat_scans(self.n_bytes)[1](qwords, db, self.n_bytes, self._n_indexed, self.ntotal, radius)
            indexed = stitch_parts([indexed, pending], 2)
        result = self._flat._finish_range(*indexed, radius)
        self._record(int(aborted.sum()), nq)
        if aborted.any():
            result = _splice_range(result, aborted, self._flat._range_search(queries[aborted], radius))
        return result

def _table_args(tables: dict) -> tuple:
    """The table arrays in the order the kernels take them."""
    names = ("starts", "lengths", "offsets", "offset_base", "bitmap", "bitmap_base", "slots", "slot_codes", "entry_offsets", "entry_rows")
    return tuple(tables[name] for name in names)


def _query_chunks(nq: int) -> list[tuple[int, int]]:
    """Small query chunks, so threads stay balanced when some queries cost more."""
    per_task = max(1, min(16, -(-nq // (4 * get_num_threads()))))
    return [(start, min(start + per_task, nq)) for start in range(0, nq, per_task)]


def _splice_range(result: RangeResult, replaced: np.ndarray, other: RangeResult) -> RangeResult:
    """``result`` with the rows of the ``replaced`` queries taken from ``other`` (in order)."""
    counts = np.diff(result.lims)
    counts[replaced] = np.diff(other.lims)
    pieces_d, pieces_i = [], []
    other_rows = iter(range(len(other.lims) - 1))
    for q in range(len(counts)):
        source, row = (other, next(other_rows)) if replaced[q] else (result, q)
        lo, hi = source.lims[row], source.lims[row + 1]
        pieces_d.append(source.distances[lo:hi])
        pieces_i.append(source.ids[lo:hi])
    lims = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    return RangeResult(lims, np.concatenate(pieces_d), np.concatenate(pieces_i))
