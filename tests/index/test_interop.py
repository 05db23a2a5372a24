"""Interop: faiss round trips, usearch b1 bit order, pgvector bit literals."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, unpack_bits
from hashlearn.index.interop import (
    codes_to_pgvector_literals,
    codes_to_usearch_b1,
    from_faiss,
    pgvector_literals_to_codes,
    to_faiss,
    usearch_b1_to_codes,
)


@pytest.fixture
def filled(bruteforce_cls, make_codes):
    index = bruteforce_cls(64)
    index.add(make_codes(200, 64, seed=21))
    return index


def faiss_equivalent(got_d, got_i, want_d, want_i):
    """Same distances; same id sets within each distance (faiss orders ties its own way)."""
    np.testing.assert_array_equal(got_d, want_d)
    for gd, gi, wi in zip(got_d, got_i, want_i):
        boundary = gd < gd[-1]  # the last distance may be cut off differently
        assert set(gi[boundary]) == set(wi[boundary])


def test_to_faiss_search_matches(filled, make_codes):
    faiss = pytest.importorskip("faiss")
    queries = make_codes(15, 64, seed=22)
    exported = to_faiss(filled)
    assert isinstance(exported, faiss.IndexBinaryFlat) and exported.ntotal == 200
    d, i = exported.search(queries, 10)
    want = filled.search(queries, 10)
    faiss_equivalent(d, i, want.distances, want.ids)


def test_to_faiss_keeps_custom_ids(bruteforce_cls, make_codes):
    faiss = pytest.importorskip("faiss")
    index = bruteforce_cls(32)
    codes, ids = make_codes(100, 32, seed=23), np.arange(100) * 13 + 5
    index.add(codes, ids)
    exported = to_faiss(index)
    assert isinstance(exported, faiss.IndexBinaryIDMap)
    d, i = exported.search(codes[:5], 1)
    np.testing.assert_array_equal(i[:, 0], ids[:5])
    np.testing.assert_array_equal(d[:, 0], 0)


def test_from_faiss_round_trip(make_codes):
    faiss = pytest.importorskip("faiss")
    codes, queries = make_codes(300, 64, seed=24), make_codes(20, 64, seed=25)
    native = faiss.IndexBinaryFlat(64)
    native.add(codes)
    index = from_faiss(native)
    assert index.ntotal == 300
    got = index.search(queries, 8)
    d, i = native.search(queries, 8)
    faiss_equivalent(got.distances, got.ids, d, i)
    again = from_faiss(to_faiss(index))
    np.testing.assert_array_equal(again.search(queries, 8).ids, got.ids)

    ids = np.arange(300) * 3 + 1000
    mapped = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(64))
    mapped.add_with_ids(codes, ids)
    imported = from_faiss(mapped)
    np.testing.assert_array_equal(imported.search(codes[:4], 1).ids[:, 0], ids[:4])
    np.testing.assert_array_equal(imported.reconstruct(int(ids[7])), codes[7])


def test_faiss_rejects_other_indexes():
    faiss = pytest.importorskip("faiss")
    with pytest.raises(TypeError, match="IndexBinaryFlat"):
        from_faiss(faiss.IndexBinaryHash(64, 8))
    with pytest.raises(TypeError, match="BinaryIndex"):
        to_faiss(np.zeros((2, 8), dtype=np.uint8))


def test_usearch_bit_order_is_msb_first(make_codes):
    codes = make_codes(50, 64, seed=26)
    exported = codes_to_usearch_b1(codes)
    bits = unpack_bits(codes)  # design order: bit j
    msb_first = np.packbits(bits, axis=1, bitorder="big")  # usearch: dimension j at 128 >> (j % 8)
    np.testing.assert_array_equal(exported, msb_first)
    np.testing.assert_array_equal(usearch_b1_to_codes(exported), codes)


def test_usearch_index_gives_same_distances(make_codes):
    usearch_index = pytest.importorskip("usearch.index")
    codes, queries = make_codes(120, 64, seed=27), make_codes(6, 64, seed=28)
    index = usearch_index.Index(ndim=64, metric="hamming", dtype="b1")
    index.add(np.arange(120), codes_to_usearch_b1(codes))
    matches = index.search(codes_to_usearch_b1(queries), 120, exact=True)
    want = hamming_distances(queries, codes)
    for q in range(len(queries)):
        keys = matches.keys[q].astype(np.int64)
        np.testing.assert_array_equal(matches.distances[q].astype(np.int64), want[q, keys])
    np.testing.assert_array_equal(usearch_b1_to_codes(np.stack([index.get(key) for key in range(3)])), codes[:3])


def test_pgvector_literals(make_codes):
    codes = make_codes(20, 24, seed=29)
    literals = codes_to_pgvector_literals(codes)
    bits = unpack_bits(codes)
    for literal, row in zip(literals, bits):
        assert literal == "B'" + "".join(str(b) for b in row) + "'"
    np.testing.assert_array_equal(pgvector_literals_to_codes(literals), codes)
    np.testing.assert_array_equal(pgvector_literals_to_codes([s[2:-1] for s in literals]), codes)
    assert codes_to_pgvector_literals(np.array([[1]], dtype=np.uint8)) == ["B'10000000'"]


def test_pgvector_validation():
    with pytest.raises(TypeError, match="list of strings"):
        pgvector_literals_to_codes("B'0101'")
    with pytest.raises(ValueError, match=r"literals\[1\] must be a bit string"):
        pgvector_literals_to_codes(["B'00000000'", "B'0102'"])
    with pytest.raises(ValueError, match="same length"):
        pgvector_literals_to_codes(["00000000", "0000000000000000"])
    with pytest.raises(ValueError, match="multiple of 8"):
        pgvector_literals_to_codes(["0101"])
    with pytest.raises(TypeError, match="uint8"):
        codes_to_pgvector_literals(np.zeros((2, 2), dtype=np.int32))
