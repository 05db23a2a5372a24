"""TwoStageIndex against brute force: exact Hamming / float re-ranking of first-stage candidates."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import MISSING_DISTANCE, hamming_distances, reference_search
from hashlearn.index.io import index_from_bytes, index_to_bytes
from hashlearn.index.two_stage import FloatSearchResult, TwoStageIndex

N_BITS, N_FIRST = 64, 16


@pytest.fixture
def data(make_codes):
    codes = make_codes(400, N_BITS, seed=3, clustered=True)
    queries = make_codes(25, N_BITS, seed=4, clustered=True)
    ids = np.random.default_rng(5).permutation(10_000)[:400]
    return codes, queries, ids


def prefix_index(bruteforce_cls, codes, ids, n_candidates, **kwargs):
    index = TwoStageIndex(N_BITS, bruteforce_cls(N_FIRST), n_candidates=n_candidates, **kwargs)
    index.add(codes, ids)
    return index


def reference_two_stage(codes, ids, queries, k, n_candidates, distance):
    """Slow re-ranking: the n_candidates nearest by prefix (ties by id), then full sort by (distance, id)."""
    first = reference_search(queries[:, : N_FIRST // 8], codes[:, : N_FIRST // 8], max(k, n_candidates), ids=ids).ids
    out_d, out_i = [], []
    row_of = {int(i): r for r, i in enumerate(ids)}
    for q, cand in enumerate(first):
        cand = cand[cand >= 0]
        dist = np.array([distance(q, row_of[int(c)]) for c in cand])
        order = np.lexsort((cand, dist))[:k]
        out_d.append(dist[order])
        out_i.append(cand[order])
    return out_d, out_i


def test_all_candidates_equals_exact_search(bruteforce_cls, data):
    codes, queries, ids = data
    index = prefix_index(bruteforce_cls, codes, ids, n_candidates=len(codes))
    got = index.search(queries, 10)
    want = reference_search(queries, codes, 10, ids=ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    np.testing.assert_array_equal(got.ids, want.ids)


@pytest.mark.parametrize("n_candidates", [1, 7, 50])
def test_hamming_rerank_matches_slow_reference(bruteforce_cls, data, n_candidates):
    codes, queries, ids = data
    index = prefix_index(bruteforce_cls, codes, ids, n_candidates)
    got = index.search(queries, 5)
    full = hamming_distances(queries, codes)
    want_d, want_i = reference_two_stage(codes, ids, queries, 5, n_candidates, lambda q, r: full[q, r])
    for q in range(len(queries)):
        np.testing.assert_array_equal(got.ids[q], want_i[q])
        np.testing.assert_array_equal(got.distances[q], want_d[q])


@pytest.mark.parametrize("rerank", ["cosine", "l2"])
def test_float_rerank_matches_brute_force(bruteforce_cls, data, rerank):
    codes, queries, ids = data
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(len(codes), 12)).astype(np.float32)
    query_vectors = rng.normal(size=(len(queries), 12)).astype(np.float32)
    index = TwoStageIndex(N_BITS, bruteforce_cls(N_FIRST), n_candidates=30, rerank=rerank)
    index.add(codes[:0], ids[:0], vectors=vectors[:0])  # an empty add is fine
    index.add(codes, ids, vectors=vectors)
    got = index.search(queries, 8, query_vectors=query_vectors)
    assert isinstance(got, FloatSearchResult) and got.distances.dtype == np.float32

    def distance(q, r):
        a, b = query_vectors[q].astype(np.float64), vectors[r].astype(np.float64)
        if rerank == "cosine":
            return 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
        return ((a - b) ** 2).sum()

    want_d, want_i = reference_two_stage(codes, ids, queries, 8, 30, distance)
    for q in range(len(queries)):
        np.testing.assert_array_equal(got.ids[q], want_i[q])
        np.testing.assert_allclose(got.distances[q], want_d[q], rtol=1e-5, atol=1e-5)


def test_padding_when_fewer_items_than_k(bruteforce_cls, data):
    codes, queries, ids = data
    index = prefix_index(bruteforce_cls, codes[:3], ids[:3], n_candidates=2)
    got = index.search(queries, 5)
    assert (got.ids[:, 3:] == -1).all() and (got.distances[:, 3:] == MISSING_DISTANCE).all()
    assert set(got.ids[0, :3]) == set(ids[:3])  # k > n_candidates: k candidates are asked for


@pytest.mark.parametrize("radius", [0, 10, 25])
def test_prefix_range_search_is_exact(bruteforce_cls, data, radius):
    codes, queries, ids = data
    index = prefix_index(bruteforce_cls, codes, ids, n_candidates=5)
    got = index.range_search(queries, radius)
    full = hamming_distances(queries, codes)
    assert got.lims[0] == 0 and got.lims[-1] == len(got.ids)
    for q in range(len(queries)):
        hit = np.flatnonzero(full[q] <= radius)
        order = np.lexsort((ids[hit], full[q, hit]))
        np.testing.assert_array_equal(got.ids[got.lims[q] : got.lims[q + 1]], ids[hit][order])
        np.testing.assert_array_equal(got.distances[got.lims[q] : got.lims[q + 1]], full[q, hit][order])


def test_separate_short_codes(bruteforce_cls, data, make_codes):
    codes, queries, ids = data
    short, short_q = make_codes(len(codes), 8, seed=7), make_codes(len(queries), 8, seed=8)
    index = TwoStageIndex(N_BITS, bruteforce_cls(8), n_candidates=40, short_codes="separate")
    index.add(codes, ids, short_codes=short)
    got = index.search(queries, 6, short_queries=short_q)
    first = reference_search(short_q, short, 40, ids=ids).ids
    full = hamming_distances(queries, codes)
    row_of = {int(i): r for r, i in enumerate(ids)}
    for q in range(len(queries)):
        dist = np.array([full[q, row_of[int(c)]] for c in first[q]])
        order = np.lexsort((first[q], dist))[:6]
        np.testing.assert_array_equal(got.ids[q], first[q][order])
    ranged = index.range_search(queries, 28, short_queries=short_q)
    for q in range(len(queries)):  # only candidates, each truly within the radius
        found = ranged.ids[ranged.lims[q] : ranged.lims[q + 1]]
        assert set(found) <= set(first[q])
        assert all(full[q, row_of[int(i)]] <= 28 for i in found)
    with pytest.raises(ValueError, match="short_queries is required"):
        index.search(queries, 3)


def test_remove_reconstruct_and_round_trip(bruteforce_cls, data):
    codes, queries, ids = data
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(len(codes), 4)).astype(np.float32)
    index = TwoStageIndex(N_BITS, bruteforce_cls(N_FIRST), n_candidates=20, rerank="l2")
    index.add(codes, ids, vectors=vectors)
    np.testing.assert_array_equal(index.reconstruct(int(ids[17])), codes[17])
    assert index.remove_ids(ids[:100]) == 100 and index.ntotal == 300 and index.first_stage.ntotal == 300
    with pytest.raises(KeyError):
        index.reconstruct(int(ids[0]))
    qv = rng.normal(size=(len(queries), 4)).astype(np.float32)
    before = index.search(queries, 5, query_vectors=qv)
    assert not np.isin(before.ids, ids[:100]).any()
    loaded = index_from_bytes(index_to_bytes(index))
    after = loaded.search(queries, 5, query_vectors=qv)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.distances, before.distances)
    assert loaded.rerank == "l2" and loaded.first_stage.n_bits == N_FIRST


def test_validation(bruteforce_cls, data):
    codes, queries, ids = data
    with pytest.raises(ValueError, match="rerank must be one of"):
        TwoStageIndex(N_BITS, bruteforce_cls(8), rerank="dot")
    with pytest.raises(ValueError, match="n_first_bits <= n_bits"):
        TwoStageIndex(16, bruteforce_cls(32))
    with pytest.raises(TypeError, match="first_stage must be"):
        TwoStageIndex(N_BITS, 3)
    with pytest.raises(ValueError, match="n_first_bits=16 disagrees"):
        TwoStageIndex(N_BITS, bruteforce_cls(8), n_first_bits=16)
    index = prefix_index(bruteforce_cls, codes, ids, 10)
    with pytest.raises(ValueError, match="not already in the index"):
        index.add(codes[:2], ids[:2])
    with pytest.raises(ValueError, match="short_codes='separate'"):
        index.search(queries, 3, short_queries=queries[:, :2])
    with pytest.raises(TypeError, match="queries must have dtype uint8"):
        index.search(queries.astype(np.int64), 3)
    cos = TwoStageIndex(N_BITS, bruteforce_cls(8), rerank="cosine")
    with pytest.raises(ValueError, match="vectors is required"):
        cos.add(codes)
    cos.add(codes, vectors=np.ones((len(codes), 3)))
    with pytest.raises(ValueError, match="3 features"):
        cos.search(queries, 2, query_vectors=np.ones((len(queries), 4)))


def test_default_ids_then_removal(data):
    """Default ids take the row-number fast path; after a removal the general lookup takes over."""
    from hashlearn.index.flat import FlatIndex

    codes, queries, _ = data
    index = TwoStageIndex(N_BITS, FlatIndex(N_FIRST), n_candidates=len(codes))
    index.add(codes)
    want = reference_search(queries, codes, 5)
    np.testing.assert_array_equal(index.search(queries, 5).ids, want.ids)
    index.remove_ids(np.arange(0, 400, 2))
    keep = np.arange(1, 400, 2)
    want = reference_search(queries, codes[keep], 5, ids=keep)
    got = index.search(queries, 5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    np.testing.assert_array_equal(index.reconstruct(7), codes[7])


def test_inconsistent_state_is_refused(bruteforce_cls, data):
    """A file whose arrays disagree (forged with valid checksums) is refused, not served."""
    from hashlearn.errors import CorruptFileError
    from hashlearn.index.io import index_from_state, index_state

    codes, _, ids = data
    index = TwoStageIndex(N_BITS, bruteforce_cls(N_FIRST), rerank="l2")
    index.add(codes, ids, vectors=np.ones((len(codes), 3)))
    entry, arrays = index_state(index)
    for name, bad in [("vectors", arrays["vectors"][:-1]), ("ids", arrays["ids"][:-1]), ("ids", arrays["ids"].astype(np.float64)),
                      ("codes", arrays["codes"][:, :3])]:
        with pytest.raises(CorruptFileError, match="cannot rebuild a 'two_stage' index"):
            index_from_state(entry, {**arrays, name: bad})
