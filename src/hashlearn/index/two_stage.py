"""Two-stage search: cheap candidates from short codes, re-ranked by long codes or float vectors.

The first stage is any :class:`~hashlearn.index.base.BinaryIndex` over short codes --
either the first ``n_first_bits`` bits of the long codes (``short_codes="prefix"``, the
default) or separate short codes the caller supplies (``short_codes="separate"``, e.g. a
32-bit model next to a 256-bit one). It proposes ``max(n_candidates, k)`` ids per query;
the second stage re-ranks them exactly:

- ``rerank="hamming"``: Hamming distance of the long codes -> :class:`~hashlearn.codes.SearchResult`.
- ``rerank="cosine"``: ``1 - cos(query_vector, vector)`` (in ``[0, 2]``; a zero vector has
  cosine 0, so distance 1) -> :class:`FloatSearchResult`.
- ``rerank="l2"``: squared Euclidean distance (as faiss reports it) -> :class:`FloatSearchResult`.
- ``rerank="asymmetric"``: minus the inner product of the float query vector with the long
  code read as ±1 (:mod:`hashlearn.index.asymmetric`; nothing but the codes is stored)
  -> :class:`FloatSearchResult`.

Cosine and L2 re-ranking need ``vectors=`` in :meth:`TwoStageIndex.add`; every float
re-ranking needs ``query_vectors=`` in :meth:`TwoStageIndex.search`. Ties are broken by ascending id; missing results have id -1
(and distance ``MISSING_DISTANCE``, or ``inf`` for float distances).

``range_search`` always uses the Hamming distance of the long codes. With prefix short
codes it is exact (a prefix's distance never exceeds the full distance, so the first
stage's range search over prefixes returns a superset); with separate short codes it can
only filter the k-NN candidates and may miss items.

>>> import numpy as np
>>> from hashlearn.index import FlatIndex
>>> codes = np.array([[0, 0], [0, 255], [1, 0], [1, 1]], dtype=np.uint8)
>>> index = TwoStageIndex(16, FlatIndex(8), n_candidates=2)   # candidates from the first byte
>>> index.add(codes)
>>> index.search(np.array([[1, 1]], dtype=np.uint8), k=2).ids.tolist()
[[3, 2]]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hashlearn._validation import check_features, check_positive_int
from hashlearn.codes import MISSING_DISTANCE, POPCOUNT_TABLE, SearchResult, validate_codes
from hashlearn.index.asymmetric import asymmetric_distances_rows, check_query_vectors
from hashlearn.index.base import BinaryIndex, RangeResult
from hashlearn.index.io import index_from_state, index_state, nest_arrays, unnest_arrays

RERANKS = ("hamming", "cosine", "l2", "asymmetric")
#: re-rankings that keep float vectors next to the codes
_STORES_VECTORS = ("cosine", "l2")
SHORT_CODES = ("prefix", "separate")


class FloatSearchResult(NamedTuple):
    """k-NN result re-ranked by float vectors: ``distances`` float32 ``(nq, k)`` (cosine
    distance or squared L2, see ``TwoStageIndex.rerank``), ``ids`` int64 ``(nq, k)``.
    Rows sorted by (distance, id); missing results have id -1 and distance ``inf``."""

    distances: np.ndarray
    ids: np.ndarray


class TwoStageIndex(BinaryIndex):
    """Candidates from a first-stage index over short codes, re-ranked exactly.

    Parameters
    ----------
    n_bits : bits of the long codes this index stores.
    first_stage : an empty :class:`BinaryIndex` over the short codes, or a factory string
        (``"Flat"``, ``"MIH"``, ...) built with ``n_first_bits`` bits.
    n_first_bits : bits of the short codes; default ``first_stage.n_bits`` for an index,
        else half of ``n_bits`` (rounded up to a whole byte).
    n_candidates : ids the first stage proposes per query (at least ``k`` are always asked for).
    rerank : ``"hamming"`` (long codes), ``"cosine"`` or ``"l2"`` (float vectors), or
        ``"asymmetric"`` (float query against the ±1 long codes).
    short_codes : ``"prefix"`` (the first ``n_first_bits`` bits of each code) or ``"separate"``.
    """

    kind = "two_stage"

    def __init__(self, n_bits: int, first_stage="Flat", *, n_first_bits: int | None = None, n_candidates: int = 100,
                 rerank: str = "hamming", short_codes: str = "prefix"):
        super().__init__(n_bits)
        self.n_candidates = check_positive_int(n_candidates, "n_candidates")
        self.rerank = _check_choice(rerank, "rerank", RERANKS)
        self.short_codes = _check_choice(short_codes, "short_codes", SHORT_CODES)
        self.first_stage = _build_first_stage(first_stage, n_bits, n_first_bits)
        if self.first_stage.ntotal:
            raise ValueError("first_stage must be empty: TwoStageIndex adds the short codes itself.")
        self.n_first_bits = self.first_stage.n_bits
        if self.short_codes == "prefix" and self.n_first_bits > self.n_bits:
            raise ValueError(f"a prefix first stage needs n_first_bits <= n_bits ({self.n_bits}), got {self.n_first_bits}.")
        self.codes = np.zeros((0, self.n_bytes), dtype=np.uint8)
        self.ids = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, 0), dtype=np.float32) if rerank in _STORES_VECTORS else None
        self._lookup = None  # (sorted ids, their rows), rebuilt lazily

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    # --- adding and removing ----------------------------------------------------------------
    def add(self, codes, ids=None, *, short_codes=None, vectors=None) -> None:
        """Add long ``codes`` (and ``short_codes`` / ``vectors`` where the index needs them)."""
        codes = self._check_codes(codes)
        n = len(codes)
        ids = np.arange(self.ntotal, self.ntotal + n, dtype=np.int64) if ids is None else self._check_ids(ids, n)
        if len(np.unique(ids)) != n or np.isin(ids, self.ids).any():
            raise ValueError("ids must be unique within the batch and not already in the index.")
        short = self._short(codes, short_codes, "short_codes")
        if self.vectors is not None:
            vectors = self._check_vectors(vectors, n, "vectors")
        self.first_stage.add(short, ids)
        self.codes = np.concatenate([self.codes, codes])
        self.ids = np.concatenate([self.ids, ids])
        if self.vectors is not None:
            self.vectors = np.concatenate([self.vectors.reshape(-1, vectors.shape[1]), vectors])
        self._lookup = None

    def remove_ids(self, ids) -> int:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        self.first_stage.remove_ids(ids)
        keep = ~np.isin(self.ids, ids)
        removed = int((~keep).sum())
        self.codes, self.ids = self.codes[keep], self.ids[keep]
        if self.vectors is not None:
            self.vectors = self.vectors[keep]
        self._lookup = None
        return removed

    def reconstruct(self, id_: int) -> np.ndarray:
        rows = self._rows(np.array([id_], dtype=np.int64))
        if rows[0] < 0:
            raise KeyError(f"id {id_} is not in the index.")
        return self.codes[rows[0]].copy()

    # --- searching -----------------------------------------------------------------------
    def search(self, queries, k: int, *, short_queries=None, query_vectors=None):
        """k nearest neighbours among the first stage's candidates, re-ranked exactly."""
        queries = self._check_codes(queries, "queries")
        k = self._check_k(k)
        if self.vectors is not None:
            query_vectors = self._check_vectors(query_vectors, len(queries), "query_vectors")
        elif self.rerank == "asymmetric":
            query_vectors = check_query_vectors(query_vectors, self.n_bits, len(queries))
        candidates = self.first_stage.search(self._short(queries, short_queries, "short_queries"), max(k, self.n_candidates)).ids
        rows = np.where(candidates >= 0, self._rows(candidates), -1)
        if self.rerank == "hamming":
            distances = _hamming_rows(queries, self.codes, rows)
            missing = MISSING_DISTANCE
        elif self.rerank == "asymmetric":
            distances = asymmetric_distances_rows(query_vectors, self.codes, rows)
            missing = np.float32(np.inf)
        else:
            distances = self._float_rows(query_vectors, rows)
            missing = np.float32(np.inf)
        distances[rows < 0] = missing
        ids = np.where(rows >= 0, candidates, -1)
        order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), distances), axis=1)[:, :k]
        out_d = np.take_along_axis(distances, order, axis=1)
        out_i = np.take_along_axis(ids, order, axis=1)
        if out_d.shape[1] < k:  # fewer candidates than k: pad
            pad = k - out_d.shape[1]
            out_d = np.pad(out_d, ((0, 0), (0, pad)), constant_values=missing)
            out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
        result = SearchResult if self.rerank == "hamming" else FloatSearchResult
        return result(out_d, out_i)

    def range_search(self, queries, radius: int, *, short_queries=None) -> RangeResult:
        """All items within Hamming distance ``radius`` of the long codes (exact for prefix short codes)."""
        queries = self._check_codes(queries, "queries")
        radius = self._check_radius(radius)
        short = self._short(queries, short_queries, "short_queries")
        if self.short_codes == "prefix":
            first = self.first_stage.range_search(short, radius)
            lims, cand_ids = first.lims, first.ids
        else:
            found = self.first_stage.search(short, self.n_candidates).ids
            lims = np.arange(len(queries) + 1, dtype=np.int64) * found.shape[1]
            cand_ids = found.ravel()
        counts = np.diff(lims)
        query_rows = np.repeat(np.arange(len(queries)), counts)
        valid = cand_ids >= 0
        rows = np.full(len(cand_ids), -1, dtype=np.int64)
        rows[valid] = self._rows(cand_ids[valid])
        valid &= rows >= 0
        query_rows, rows, cand_ids = query_rows[valid], rows[valid], cand_ids[valid]
        distances = POPCOUNT_TABLE[queries[query_rows] ^ self.codes[rows]].sum(axis=1, dtype=np.int32)
        hit = distances <= radius
        query_rows, distances, cand_ids = query_rows[hit], distances[hit], cand_ids[hit]
        order = np.lexsort((cand_ids, distances, query_rows))
        out_lims = np.zeros(len(queries) + 1, dtype=np.int64)
        np.cumsum(np.bincount(query_rows, minlength=len(queries)), out=out_lims[1:])
        return RangeResult(out_lims, distances[order].astype(np.int32), cand_ids[order].astype(np.int64))

    # --- persistence ------------------------------------------------------------------------
    def state(self):
        entry, first_arrays = index_state(self.first_stage)
        meta = {"n_bits": self.n_bits, "n_candidates": self.n_candidates, "rerank": self.rerank,
                "short_codes": self.short_codes, "first_stage": entry}
        arrays = {"codes": self.codes, "ids": self.ids, **nest_arrays("first_stage", first_arrays)}
        if self.vectors is not None:
            arrays["vectors"] = self.vectors
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        first_stage = index_from_state(meta["first_stage"], unnest_arrays("first_stage", arrays))
        index = cls.__new__(cls)
        BinaryIndex.__init__(index, meta["n_bits"])
        index.n_candidates = check_positive_int(meta["n_candidates"], "n_candidates")
        index.rerank = _check_choice(meta["rerank"], "rerank", RERANKS)
        index.short_codes = _check_choice(meta["short_codes"], "short_codes", SHORT_CODES)
        index.first_stage, index.n_first_bits = first_stage, first_stage.n_bits
        index.codes = validate_codes(np.asarray(arrays["codes"]), n_bits=index.n_bits, name="stored codes")
        index.ids = np.asarray(arrays["ids"])
        index.vectors = np.asarray(arrays["vectors"]) if index.rerank in _STORES_VECTORS else None
        if index.ids.ndim != 1 or index.ids.dtype != np.int64:
            raise ValueError(f"stored ids must be a 1-D int64 array, got {index.ids.dtype} {index.ids.shape}.")
        if len(index.ids) != len(index.codes) or first_stage.ntotal != len(index.ids):
            raise ValueError("stored codes, ids and first stage disagree on the number of items.")
        if index.vectors is not None and (index.vectors.ndim != 2 or index.vectors.dtype != np.float32
                                          or len(index.vectors) != len(index.ids)):
            raise ValueError(f"stored vectors must be float32 with one row per item, got {index.vectors.dtype} {index.vectors.shape}.")
        index._lookup = None
        return index

    # --- helpers ------------------------------------------------------------------------------
    def _short(self, codes: np.ndarray, short, name: str) -> np.ndarray:
        if self.short_codes == "prefix":
            if short is not None:
                raise ValueError(f"{name} is only used with short_codes='separate'; this index uses code prefixes.")
            return np.ascontiguousarray(codes[:, : self.n_first_bits // 8])
        if short is None:
            raise ValueError(f"{name} is required: this index was built with short_codes='separate'.")
        short = validate_codes(short, n_bits=self.n_first_bits, name=name)
        if len(short) != len(codes):
            raise ValueError(f"{name} must have one row per code ({len(codes)}), got {len(short)}.")
        return short

    def _check_vectors(self, vectors, n: int, name: str) -> np.ndarray:
        if vectors is None:
            raise ValueError(f"{name} is required: this index re-ranks by {self.rerank} distance of float vectors.")
        dim = self.vectors.shape[1] if self.ntotal else None
        vectors = check_features(vectors, name, n_features=dim, min_samples=0)
        if len(vectors) != n:
            raise ValueError(f"{name} must have one row per code ({n}), got {len(vectors)}.")
        if self.rerank == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1)
        return vectors

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in ``self.codes`` (-1 where unknown)."""
        if self._lookup is None:
            if np.array_equal(self.ids, np.arange(len(self.ids))):
                self._lookup = ("identity", None)  # the common case: ids are the row numbers
            else:
                order = np.argsort(self.ids, kind="stable")
                self._lookup = (self.ids[order], order)
        sorted_ids, order = self._lookup
        if order is None:
            return np.where((ids >= 0) & (ids < len(self.ids)), ids, -1)
        if not len(sorted_ids):
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        return np.where(sorted_ids[pos] == ids, order[pos], -1)

    def _float_rows(self, query_vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        stored = self.vectors[np.maximum(rows, 0)]  # (nq, c, d)
        if self.rerank == "cosine":
            return (1.0 - np.einsum("qd,qcd->qc", query_vectors, stored)).astype(np.float32)
        diff = stored - query_vectors[:, None, :]
        return np.einsum("qcd,qcd->qc", diff, diff).astype(np.float32)

    def __repr__(self) -> str:
        return (f"TwoStageIndex(n_bits={self.n_bits}, first_stage={self.first_stage!r}, n_candidates={self.n_candidates}, "
                f"rerank={self.rerank!r}, short_codes={self.short_codes!r}, ntotal={self.ntotal})")


def _hamming_rows(queries: np.ndarray, codes: np.ndarray, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``distances[q, c] = hamming(queries[q], codes[rows[q, c]])`` (rows < 0 give garbage, masked by the caller)."""
    out = np.empty(rows.shape, dtype=np.int32)
    safe = np.maximum(rows, 0)
    for start in range(0, len(queries), chunk):
        block = codes[safe[start : start + chunk]] ^ queries[start : start + chunk, None, :]
        out[start : start + chunk] = POPCOUNT_TABLE[block].sum(axis=2, dtype=np.int32)
    return out


def _check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def _build_first_stage(first_stage, n_bits: int, n_first_bits) -> BinaryIndex:
    if isinstance(first_stage, BinaryIndex):
        if n_first_bits is not None and n_first_bits != first_stage.n_bits:
            raise ValueError(f"n_first_bits={n_first_bits} disagrees with first_stage.n_bits={first_stage.n_bits}.")
        return first_stage
    if isinstance(first_stage, str):
        from hashlearn.index.factory import index_factory

        if n_first_bits is None:
            n_first_bits = max(8, -(-n_bits // 16) * 8)
        return index_factory(first_stage, n_first_bits)
    raise TypeError(f"first_stage must be a BinaryIndex or a factory string, got {type(first_stage).__name__}.")
