"""Shared references for the index tests: brute-force range search, clustered codes,
comparisons that check every distance and id, and a brute-force BinaryIndex on the
reference functions that composite indexes (two-stage, sharded, io) are checked with."""

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, pack_bits, reference_search
from hashlearn.index import set_num_threads
from hashlearn.index.base import BinaryIndex, RangeResult
from hashlearn.index.io import register_index_kind


def brute_range(queries, database, radius, ids=None):
    """Slow, obviously correct range search: per query, (distance, id) sorted lists."""
    distances = hamming_distances(queries, database)
    ids = np.arange(len(database)) if ids is None else np.asarray(ids)
    out = []
    for row in distances:
        hit = np.flatnonzero(row <= radius)
        order = np.lexsort((ids[hit], row[hit]))
        out.append((row[hit][order], ids[hit][order]))
    return out


def make_clustered(rng, n, n_bits, n_centres=8, flip_probability=0.04, centres=None):
    """Codes near a few random centres (independent bit flips): many ties and near-duplicates."""
    if centres is None:
        centres = rng.integers(0, 2, size=(n_centres, n_bits))
    bits = centres[rng.integers(0, len(centres), size=n)]
    bits = bits ^ (rng.random((n, n_bits)) < flip_probability)
    return pack_bits(bits), centres


def assert_knn_equal(result, queries, database, k, ids=None):
    expected = reference_search(queries, database, k, ids=ids)
    np.testing.assert_array_equal(result.distances, expected.distances)
    np.testing.assert_array_equal(result.ids, expected.ids)
    assert result.distances.dtype == np.int32 and result.ids.dtype == np.int64


def assert_range_equal(result, queries, database, radius, ids=None):
    expected = brute_range(queries, database, radius, ids=ids)
    assert result.lims.dtype == np.int64 and result.lims.shape == (len(queries) + 1,)
    assert result.lims[0] == 0
    for q, (distances, hit_ids) in enumerate(expected):
        lo, hi = result.lims[q], result.lims[q + 1]
        np.testing.assert_array_equal(result.distances[lo:hi], distances)
        np.testing.assert_array_equal(result.ids[lo:hi], hit_ids)


class Checks:
    """The helpers above, handed to tests by the ``checks`` fixture (test modules
    cannot import conftest under ``--import-mode=importlib``)."""

    brute_range = staticmethod(brute_range)
    make_clustered = staticmethod(make_clustered)
    assert_knn_equal = staticmethod(assert_knn_equal)
    assert_range_equal = staticmethod(assert_range_equal)


@pytest.fixture
def checks():
    return Checks


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request):
    set_num_threads(request.param)
    yield request.param
    set_num_threads(None)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --- a brute-force index for the composite-index tests ---------------------------------------
class BruteForceIndex(BinaryIndex):
    """Scan-everything index on ``reference_search``: slow and obviously correct."""

    kind = "test_bruteforce"

    def __init__(self, n_bits: int):
        super().__init__(n_bits)
        self.codes = np.zeros((0, self.n_bytes), dtype=np.uint8)
        self.ids = np.zeros(0, dtype=np.int64)

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def add(self, codes, ids=None) -> None:
        codes = self._check_codes(codes)
        ids = np.arange(self.ntotal, self.ntotal + len(codes)) if ids is None else ids
        self.codes = np.concatenate([self.codes, codes])
        self.ids = np.concatenate([self.ids, self._check_ids(ids, len(codes))])

    def search(self, queries, k):
        return reference_search(self._check_codes(queries, "queries"), self.codes, self._check_k(k), ids=self.ids)

    def range_search(self, queries, radius):
        distances = hamming_distances(self._check_codes(queries, "queries"), self.codes)
        radius = self._check_radius(radius)
        lims, out_d, out_i = [0], [], []
        for row in distances:
            hit = np.flatnonzero(row <= radius)
            order = np.lexsort((self.ids[hit], row[hit]))
            out_d.append(row[hit][order])
            out_i.append(self.ids[hit][order])
            lims.append(lims[-1] + len(hit))
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        return RangeResult(np.array(lims, dtype=np.int64), cat(out_d, np.int32), cat(out_i, np.int64))

    def remove_ids(self, ids) -> int:
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        removed = int((~keep).sum())
        self.codes, self.ids = self.codes[keep], self.ids[keep]
        return removed

    def reconstruct(self, id_):
        rows = np.flatnonzero(self.ids == id_)
        if not len(rows):
            raise KeyError(f"id {id_} is not in the index")
        return self.codes[rows[0]].copy()

    def state(self):
        return {"n_bits": self.n_bits}, {"codes": self.codes, "ids": self.ids}

    @classmethod
    def from_state(cls, meta, arrays):
        index = cls(meta["n_bits"])
        index.codes, index.ids = np.asarray(arrays["codes"]), np.asarray(arrays["ids"])
        return index


register_index_kind(BruteForceIndex.kind, BruteForceIndex)


def random_codes(n: int, n_bits: int, seed: int = 0, clustered: bool = False) -> np.ndarray:
    """Random packed codes; ``clustered`` makes many near-duplicates (and so many distance ties)."""
    rng = np.random.default_rng(seed)
    n_bytes = n_bits // 8
    if not clustered:
        return rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    centres = rng.integers(0, 256, size=(max(1, n // 20), n_bytes), dtype=np.uint8)
    codes = centres[rng.integers(0, len(centres), size=n)]
    flips = rng.random((n, n_bytes * 8)) < 0.05
    return codes ^ np.packbits(flips, axis=1, bitorder="little")


@pytest.fixture
def bruteforce_cls():
    return BruteForceIndex


@pytest.fixture
def make_codes():
    return random_codes
