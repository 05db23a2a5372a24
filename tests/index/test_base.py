"""Argument checks every index shares (issue 12): k and radius are clamped to the index."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hashlearn.codes import hamming_distances
from hashlearn.index.factory import index_factory

KINDS = ["Flat", "MIH", "Table", "TwoStage(MIH,Flat)"]


@pytest.fixture
def codes(make_codes):
    return make_codes(300, 32, seed=5, clustered=True)


@pytest.mark.parametrize("description", KINDS)
def test_huge_k_is_clamped_to_ntotal(description, codes, make_codes, checks):
    """`search -k 1000000000` allocated queries x k (killed by the OOM killer at 23.7 GB)."""
    index = index_factory(description, 32)
    index.add(codes)
    queries = make_codes(50, 32, seed=6)
    index.search(queries, 5)  # warm up (compilation, tables) outside the measurement
    tracemalloc.start()
    result = index.search(queries, 10**9)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.ids.shape == result.distances.shape == (50, 300)
    assert peak < 50 * 1024 * 1024  # nq x ntotal results and the scan, not nq x 10**9
    checks.assert_knn_equal(result, queries, codes, 300)


@pytest.mark.parametrize("description", KINDS)
def test_empty_index_gives_empty_rows(description, make_codes):
    index = index_factory(description, 32)
    result = index.search(make_codes(4, 32, seed=7), 10**12)
    assert result.ids.shape == (4, 0) and result.distances.shape == (4, 0)


@pytest.mark.parametrize("description", KINDS)
def test_radius_is_range_checked_and_clamped(description, codes, make_codes):
    index = index_factory(description, 32)
    index.add(codes)
    queries = make_codes(3, 32, seed=8)
    for bad, error in [(-1, ValueError), (-(10**20), ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)]:
        with pytest.raises(error, match="radius"):
            index.range_search(queries, bad)
    for bad, error in [(0, ValueError), (-5, ValueError), (2.0, TypeError), (None, TypeError)]:
        with pytest.raises(error, match="k must"):
            index.search(queries, bad)
    everything = index.range_search(queries, 10**18)  # clamped to n_bits: every item, once
    assert np.diff(everything.lims).tolist() == [300, 300, 300]
    full = hamming_distances(queries, codes)
    assert sorted(everything.distances[:300].tolist()) == sorted(full[0].tolist())
