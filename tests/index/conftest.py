"""Shared references for the index tests: brute-force range search, clustered codes,
and comparisons that check every distance and id."""

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, pack_bits, reference_search
from hashlearn.index import set_num_threads


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
