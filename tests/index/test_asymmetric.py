"""Asymmetric scoring (float query . ±1 codes) against explicit numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import pack_bits, unpack_bits
from hashlearn.index import FlatIndex
from hashlearn.index.asymmetric import AsymmetricIndex, asymmetric_scores
from hashlearn.index.io import index_from_bytes, index_to_bytes
from hashlearn.index.two_stage import TwoStageIndex


def slow_scores(vectors, codes):
    """sum_i v_i * (+1 if bit i else -1), bit i = (code[i // 8] >> (i % 8)) & 1, by explicit loops."""
    out = np.zeros((len(vectors), len(codes)))
    for q, vector in enumerate(vectors):
        for c, code in enumerate(codes):
            out[q, c] = sum(value * (1 if (code[i // 8] >> (i % 8)) & 1 else -1) for i, value in enumerate(vector))
    return out


def reference_top_k(vectors, codes, ids, k):
    distances = (-(np.asarray(vectors, np.float64) @ (unpack_bits(codes, codes.shape[1] * 8)[:, : vectors.shape[1]] * 2.0 - 1).T)).astype(np.float32)
    order = np.lexsort((np.broadcast_to(ids, distances.shape), distances), axis=1)[:, :k]
    d, i = np.take_along_axis(distances, order, axis=1), ids[order]
    if d.shape[1] < k:
        d = np.pad(d, ((0, 0), (0, k - d.shape[1])), constant_values=np.inf)
        i = np.pad(i, ((0, 0), (0, k - i.shape[1])), constant_values=-1)
    return d, i


@pytest.mark.parametrize("n_bits, n_dims", [(8, 8), (56, 50), (64, 64), (24, 3)])
def test_scores_match_explicit_loops(rng, n_bits, n_dims):
    codes = rng.integers(0, 256, size=(9, n_bits // 8), dtype=np.uint8)
    vectors = rng.normal(size=(4, n_dims))
    np.testing.assert_allclose(asymmetric_scores(vectors, codes), slow_scores(vectors, codes), rtol=1e-12, atol=1e-12)


def test_exact_search_with_ties_and_custom_ids(rng):
    n_bits = 16
    base = rng.integers(0, 256, size=(3000, 2), dtype=np.uint8)
    codes = np.concatenate([base, base[:7000 // 3], base[:5000]])[:20_000]  # duplicates: equal scores
    codes = np.concatenate([codes, rng.integers(0, 256, size=(20_000 - len(codes), 2), dtype=np.uint8)])
    ids = rng.permutation(100_000)[: len(codes)]
    index = AsymmetricIndex(n_bits)
    index.add(codes, ids)
    integer_queries = rng.integers(-2, 3, size=(30, n_bits)).astype(np.float64)  # exact arithmetic: many ties
    float_queries = rng.normal(size=(30, 12))
    for vectors in (integer_queries, float_queries):
        for k in (1, 10, 257):
            got = index.search(None, k, query_vectors=vectors)
            want_d, want_i = reference_top_k(vectors, codes, ids, k)
            np.testing.assert_array_equal(got.ids, want_i)
            np.testing.assert_array_equal(got.distances, want_d)
            assert got.distances.dtype == np.float32 and got.ids.dtype == np.int64
    small = AsymmetricIndex(8)
    small.add(codes[:5, :1])
    got = small.search(None, 8, query_vectors=integer_queries[:3, :8])
    assert (got.ids[:, 5:] == -1).all() and np.isinf(got.distances[:, 5:]).all()
    hamming = index.search(codes[:4], 5)  # without query vectors: a Hamming index
    flat = FlatIndex(n_bits)
    flat.add(codes, ids)
    np.testing.assert_array_equal(hamming.ids, flat.search(codes[:4], 5).ids)


def test_two_stage_asymmetric_rerank(rng):
    vectors = rng.normal(size=(3000, 40)).astype(np.float32)
    queries = rng.normal(size=(25, 40)).astype(np.float32)
    pad = lambda x: np.pad(x, ((0, 0), (0, 8)))  # noqa: E731  40-d signs in 48-bit codes
    codes, query_codes = pack_bits(pad(vectors) > 0), pack_bits(pad(queries) > 0)
    index = TwoStageIndex(48, FlatIndex(48), n_candidates=40, rerank="asymmetric")
    index.add(codes)
    assert index.vectors is None  # nothing but the codes is stored
    got = index.search(query_codes, 10, query_vectors=queries)
    candidates = FlatIndex(48)
    candidates.add(codes)
    cand = candidates.search(query_codes, 40).ids
    for q in range(len(queries)):  # exact re-ranking of the first stage's candidates
        d, i = reference_top_k(queries[q : q + 1], codes[cand[q]], cand[q], 10)
        np.testing.assert_array_equal(got.ids[q], i[0])
        np.testing.assert_array_equal(got.distances[q], d[0])
    everything = TwoStageIndex(48, FlatIndex(48), n_candidates=len(codes), rerank="asymmetric")
    everything.add(codes)
    exact = AsymmetricIndex(48)
    exact.add(codes)
    full, want = everything.search(query_codes, 10, query_vectors=queries), exact.search(query_codes, 10, query_vectors=queries)
    np.testing.assert_array_equal(full.ids, want.ids)
    loaded = index_from_bytes(index_to_bytes(index))
    np.testing.assert_array_equal(loaded.search(query_codes, 10, query_vectors=queries).ids, got.ids)
    loaded_exact = index_from_bytes(index_to_bytes(exact))
    assert isinstance(loaded_exact, AsymmetricIndex)
    np.testing.assert_array_equal(loaded_exact.search(None, 10, query_vectors=queries).ids, want.ids)
    with pytest.raises(ValueError, match="query_vectors is required"):
        index.search(query_codes, 10)
    with pytest.raises(ValueError, match="one row per query"):
        index.search(query_codes, 10, query_vectors=queries[:3])


def test_validation(rng):
    index = AsymmetricIndex(16)
    index.add(rng.integers(0, 256, size=(10, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="between 1 and 16 dimensions"):
        index.search(None, 3, query_vectors=np.ones((2, 17)))
    with pytest.raises(ValueError, match="finite"):
        index.search(None, 3, query_vectors=np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="same number of rows"):
        index.search(np.zeros((3, 2), np.uint8), 3, query_vectors=np.ones((2, 4)))
    with pytest.raises(ValueError, match="k must be"):
        index.search(None, 0, query_vectors=np.ones((2, 4)))
