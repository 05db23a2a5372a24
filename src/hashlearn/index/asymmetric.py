"""Asymmetric search: a float query scored against ±1 database codes by inner product.

Binary-quantized embedding retrieval keeps only the sign code of every database
vector (1 bit per dimension) but leaves the query in float. The score of a code is

    score(query, code) = sum_i query[i] * (+1 if bit i of code is 1 else -1)

(the project's bit layout: bit ``i`` is ``(code[i // 8] >> (i % 8)) & 1``). It ranks
better than the Hamming distance between the two sign codes because it keeps the
query's magnitudes. Results are :class:`~hashlearn.index.two_stage.FloatSearchResult`
with ``distances = -score`` (float32; ascending = best first), ties broken by
ascending id, missing results id -1 and distance ``inf``.

Two ways to use it:

- :class:`AsymmetricIndex`: ``search(queries, k, query_vectors=...)`` scans every code
  exactly (``queries`` unused then, may be ``None``); without ``query_vectors`` it is a
  plain Hamming index over the codes.
- ``TwoStageIndex(..., rerank="asymmetric")``: the sign code of the query finds
  candidates by Hamming distance, which are re-scored asymmetrically (no float vectors
  stored: "binary quantization + rescoring").

Query vectors may have fewer dimensions ``d`` than the codes have bits: they are scored
against the first ``d`` bits (the rest being padding, e.g. 50-d GloVe in 56-bit codes).

>>> import numpy as np
>>> index = AsymmetricIndex(8)
>>> index.add(np.array([[0b0000_0011], [0b0000_0001], [0b1111_1111]], dtype=np.uint8))
>>> result = index.search(None, 2, query_vectors=np.array([[2.0, 1.0, 0, 0, 0, 0, 0, 0]]))
>>> result.ids.tolist(), result.distances.tolist()
([[0, 2]], [[-3.0, -3.0]])
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_features
from hashlearn.codes import unpack_bits, validate_codes
from hashlearn.index._stored import StoredCodesIndex

_ROWS_PER_BLOCK = 8192


def check_query_vectors(query_vectors, n_bits: int, n_queries: int | None = None, name: str = "query_vectors") -> np.ndarray:
    """Float64 ``(nq, d)`` with ``1 <= d <= n_bits`` (and ``nq == n_queries`` when given)."""
    if query_vectors is None:
        raise ValueError(f"{name} is required for asymmetric scoring (float query vectors, one per query).")
    checked = check_features(query_vectors, name, min_samples=0)  # shape and dtype checks (it returns float32)
    vectors = np.asarray(query_vectors, dtype=np.float64).reshape(checked.shape)
    if not 1 <= vectors.shape[1] <= n_bits:
        raise ValueError(f"{name} must have between 1 and {n_bits} dimensions (one per code bit), got {vectors.shape[1]}.")
    if n_queries is not None and len(vectors) != n_queries:
        raise ValueError(f"{name} must have one row per query ({n_queries}), got {len(vectors)}.")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{name} must be finite (no NaN or inf).")
    return np.asarray(vectors, dtype=np.float64)


def asymmetric_scores(query_vectors, codes) -> np.ndarray:
    """``(nq, n)`` float64 inner products of the query vectors with the codes read as ±1."""
    codes = validate_codes(codes)
    vectors = check_query_vectors(query_vectors, codes.shape[1] * 8)
    return vectors @ _pm1(codes, vectors.shape[1]).T


def asymmetric_distances_rows(query_vectors: np.ndarray, codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``distances[q, c] = -score(query_vectors[q], codes[rows[q, c]])`` as float32 (rows < 0: garbage, masked by the caller)."""
    n_dims = query_vectors.shape[1]
    out = np.empty(rows.shape, dtype=np.float32)
    safe = np.maximum(rows, 0)
    step = max(1, (1 << 22) // max(1, rows.shape[1] * n_dims))
    for start in range(0, len(rows), step):
        signs = _pm1(codes[safe[start : start + step]].reshape(-1, codes.shape[1]), n_dims)
        signs = signs.reshape(*safe[start : start + step].shape, n_dims)
        out[start : start + step] = -np.einsum("qd,qcd->qc", query_vectors[start : start + step], signs)
    return out


def _pm1(codes: np.ndarray, n_dims: int) -> np.ndarray:
    return unpack_bits(codes, codes.shape[1] * 8)[:, :n_dims].astype(np.float64) * 2 - 1


class AsymmetricIndex(StoredCodesIndex):
    """Codes searched by Hamming distance, or exactly by asymmetric score with ``query_vectors=``."""

    kind = "asymmetric"

    def search(self, queries, k: int, *, query_vectors=None):
        """Hamming k-NN of ``queries`` (codes), or with ``query_vectors`` the exact top-k by asymmetric score.

        With ``query_vectors`` the result is a ``FloatSearchResult`` (``distances = -score``)
        and ``queries`` may be ``None``.
        """
        if query_vectors is None:
            return self._flat.search(queries, k)
        from hashlearn.index.two_stage import FloatSearchResult

        k = self._check_k(k)
        vectors = check_query_vectors(query_vectors, self.n_bits)
        if queries is not None:
            queries = self._check_codes(queries, "queries")
            if len(queries) != len(vectors):
                raise ValueError(f"queries and query_vectors must have the same number of rows, got {len(queries)} and {len(vectors)}.")
        nq = len(vectors)
        best_d = np.full((nq, 0), np.inf, dtype=np.float32)
        best_i = np.zeros((nq, 0), dtype=np.int64)
        codes, ids = self._flat.codes, self._flat.ids
        for start in range(0, len(codes), _ROWS_PER_BLOCK):
            block_ids = ids[start : start + _ROWS_PER_BLOCK]
            distances = (-(vectors @ _pm1(codes[start : start + _ROWS_PER_BLOCK], vectors.shape[1]).T)).astype(np.float32)
            block_d, block_i = _top_k(distances, np.broadcast_to(block_ids, distances.shape), k)
            best_d, best_i = _top_k(np.concatenate([best_d, block_d], axis=1), np.concatenate([best_i, block_i], axis=1), k)
        if best_d.shape[1] < k:
            pad = k - best_d.shape[1]
            best_d = np.pad(best_d, ((0, 0), (0, pad)), constant_values=np.inf)
            best_i = np.pad(best_i, ((0, 0), (0, pad)), constant_values=-1)
        return FloatSearchResult(best_d, best_i)

    def range_search(self, queries, radius: int):
        """Hamming range search over the codes."""
        return self._flat.range_search(queries, radius)


def _top_k(distances: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest of each row by (distance, id), sorted. A row whose k-th distance is tied
    beyond the partition is redone by a full sort, so ties always go to the smaller id."""
    n = distances.shape[1]
    if n > 4 * k:
        part = np.argpartition(distances, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(distances, part, axis=1).max(axis=1)
        inside = (np.take_along_axis(distances, part, axis=1) == kth[:, None]).sum(axis=1)
        tied = np.flatnonzero((distances == kth[:, None]).sum(axis=1) != inside)
        sel_d, sel_i = np.take_along_axis(distances, part, axis=1), np.take_along_axis(ids, part, axis=1)
        for row in tied:  # rare: equal scores straddle the partition (e.g. duplicate codes)
            order = np.lexsort((ids[row], distances[row]))[:k]
            sel_d[row], sel_i[row] = distances[row, order], ids[row, order]
        distances, ids = sel_d, sel_i
    order = np.lexsort((ids, distances), axis=1)[:, :k]
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)
