"""How well a Hamming ranking reproduces a scorer's ranking (score-distillation hashing).

The teacher is an exhaustive ranking of the database by a scoring function
``f(q, x)`` (``teacher_scores (n_queries, n_db)``, higher = better; ties to the
lower id). For each query:

* ``ndcg@k`` of the Hamming ranking (ties to the lower id), with graded
  relevance ``k - r`` for the item of teacher rank ``r < k`` (0 otherwise);
* ``recall@c``: the share of the teacher's top ``k`` inside the Hamming top ``c``
  (the candidates a table lookup hands to ``f``);
* ``reranked_ndcg@k``: NDCG@k of the Hamming top ``c`` re-ranked by ``f`` -- what
  the two-stage search (lookup, then ``f`` on ``c`` candidates) returns.

>>> import numpy as np
>>> from hashlearn.codes import pack_bits
>>> db = pack_bits(np.eye(8, dtype=np.uint8))
>>> scores = -np.abs(np.arange(8)[None, :] - np.array([[0], [7]]))   # query 0 likes item 0, query 1 item 7
>>> r = teacher_agreement(db[[0, 7]], db, scores, k=1, candidates=1)
>>> r["ndcg@1"], r["recall@1"]
(1.0, 1.0)
"""

from __future__ import annotations

import numpy as np

from hashlearn.eval.metrics import hamming_distance_matrix, rank_by_hamming


def _teacher_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` ids per row by descending score, ties to the lower id."""
    ids = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((ids, -scores), axis=1)[:, :k]


def _ndcg(ranked: np.ndarray, teacher_top: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = ((k - np.arange(k)) * discounts).sum()
    gains = np.zeros(ranked.shape[:1] + (k,))
    for row in range(len(ranked)):
        relevance = {int(item): k - rank for rank, item in enumerate(teacher_top[row])}
        gains[row] = [relevance.get(int(item), 0) for item in ranked[row, :k]]
    return (gains * discounts).sum(axis=1) / ideal


def teacher_agreement(query_codes, db_codes, teacher_scores, *, k: int = 10, candidates: int = 100) -> dict:
    """``ndcg@k``, ``recall@candidates`` and ``reranked_ndcg@k`` (means over queries), see the module docstring."""
    teacher_scores = np.asarray(teacher_scores, dtype=np.float64)
    distances = hamming_distance_matrix(query_codes, db_codes)
    if teacher_scores.shape != distances.shape:
        raise ValueError(f"teacher_scores must have shape (n_queries, n_db) = {distances.shape}, got {teacher_scores.shape}.")
    n_db = distances.shape[1]
    if not 1 <= k <= n_db or not k <= candidates <= n_db:
        raise ValueError(f"need 1 <= k <= candidates <= n_db ({n_db}), got k={k}, candidates={candidates}.")
    teacher_top = _teacher_order(teacher_scores, k)
    hamming_top = rank_by_hamming(distances, candidates)
    found = np.array([np.isin(teacher_top[row], hamming_top[row]).mean() for row in range(len(hamming_top))])
    candidate_scores = np.take_along_axis(teacher_scores, hamming_top, axis=1)
    reranked = np.take_along_axis(hamming_top, _teacher_order(candidate_scores, k), axis=1)
    return {f"ndcg@{k}": float(_ndcg(hamming_top, teacher_top, k).mean()), f"recall@{candidates}": float(found.mean()),
            f"reranked_ndcg@{k}": float(_ndcg(reranked, teacher_top, k).mean())}


__all__ = ["teacher_agreement"]
