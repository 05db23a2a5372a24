import math

import numpy as np
import pytest

from hashlearn.codes import pack_bits, unpack_bits
from hashlearn.eval.distillation import teacher_agreement


def reference(query_codes, db_codes, scores, k, candidates):
    """Slow loops over queries: sorted lists with explicit tie rules."""
    q_bits, d_bits = unpack_bits(query_codes), unpack_bits(db_codes)
    ndcgs, recalls, reranked_ndcgs = [], [], []
    ideal = sum((k - r) / math.log2(r + 2) for r in range(k))
    for row in range(len(q_bits)):
        teacher = sorted(range(len(d_bits)), key=lambda j: (-scores[row][j], j))[:k]
        relevance = {item: k - rank for rank, item in enumerate(teacher)}
        hamming = sorted(range(len(d_bits)), key=lambda j: (int((q_bits[row] != d_bits[j]).sum()), j))[:candidates]
        ndcgs.append(sum(relevance.get(item, 0) / math.log2(i + 2) for i, item in enumerate(hamming[:k])) / ideal)
        recalls.append(sum(item in hamming for item in teacher) / k)
        reranked = sorted(hamming, key=lambda j: (-scores[row][j], j))[:k]
        reranked_ndcgs.append(sum(relevance.get(item, 0) / math.log2(i + 2) for i, item in enumerate(reranked)) / ideal)
    return np.mean(ndcgs), np.mean(recalls), np.mean(reranked_ndcgs)


def test_matches_slow_loop():
    rng = np.random.default_rng(0)
    db = pack_bits(rng.integers(0, 2, size=(40, 16)).astype(np.uint8))
    queries = pack_bits(rng.integers(0, 2, size=(6, 16)).astype(np.uint8))
    scores = np.round(rng.normal(size=(6, 40)), 1)  # rounded: ties among teacher scores too
    result = teacher_agreement(queries, db, scores, k=5, candidates=12)
    ndcg, recall, reranked = reference(queries, db, scores.tolist(), 5, 12)
    assert result["ndcg@5"] == pytest.approx(ndcg) and result["recall@12"] == pytest.approx(recall)
    assert result["reranked_ndcg@5"] == pytest.approx(reranked)
    assert result["reranked_ndcg@5"] >= result["ndcg@5"] - 1e-12  # re-ranking the candidates by f never hurts here


def test_errors():
    codes = np.zeros((2, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="teacher_scores"):
        teacher_agreement(codes, codes, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="candidates"):
        teacher_agreement(codes, codes, np.zeros((2, 2)), k=2, candidates=3)
