"""The width-specialised flat kernels against the popcount reference, at every width.

Every code length from 8 to 1024 bits (multiples of 8) is searched: k-NN with ties,
exact duplicates, k larger than the index, removed ids and unordered custom ids, and
range search, which must agree with k-NN. Databases are small; what this checks is
that each compiled kernel class (see :func:`hashlearn.index._kernels.flat_kernel_class`)
reads every byte of a row and nothing beyond it.
"""

import numpy as np
import pytest

from hashlearn.codes import hamming_distances
from hashlearn.index import FlatIndex
from hashlearn.index import _kernels as kernels

ALL_WIDTHS = list(range(8, 1025, 8))


def _database(rng, n_bits, n=67):
    """Random codes, a cluster of near-duplicates and exact duplicates (ties)."""
    n_bytes = n_bits // 8
    codes = rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    centre = codes[0].copy()
    for row in range(1, 20):  # near the first code: a few single-bit flips
        codes[row] = centre
        for _ in range(row % 4):
            bit = rng.integers(n_bits)
            codes[row, bit // 8] ^= np.uint8(1 << (bit % 8))
    codes[30:36] = codes[5]  # exact duplicates
    codes[-1] = codes[5]
    return codes


@pytest.mark.parametrize("n_bits", ALL_WIDTHS)
def test_every_width_matches_the_reference(checks, rng, n_bits):
    database = _database(rng, n_bits)
    # 5 queries: two pairs (the paired loop) and one single; one query is a stored code
    queries = np.vstack([database[[5, 0]], rng.integers(0, 256, size=(3, n_bits // 8), dtype=np.uint8)])
    index = FlatIndex(n_bits)
    index.add(database)
    for k in (1, 7, len(database), len(database) + 5):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k)
    for radius in (0, 3, n_bits // 2, n_bits):
        checks.assert_range_equal(index.range_search(queries, radius), queries, database, radius)

    # removed ids: the kept rows keep their ids, ties still by ascending id
    removed = np.array([0, 5, 31, 40])
    index.remove_ids(removed)
    kept = np.setdiff1d(np.arange(len(database)), removed)
    checks.assert_knn_equal(index.search(queries, 9), queries, database[kept], 9, ids=kept)
    checks.assert_range_equal(index.range_search(queries, 4), queries, database[kept], 4, ids=kept)


@pytest.mark.parametrize("n_bits", [8, 24, 40, 64, 72, 200, 328, 512, 1000, 1024])
def test_unordered_ids_and_range_agrees_with_knn(checks, rng, n_bits):
    """Custom ids out of row order (ties compared by id, not by position); range search
    at the k-th distance holds the k-NN result as its prefix."""
    database = _database(rng, n_bits, n=90)
    ids = rng.permutation(5000)[: len(database)]
    queries = np.vstack([database[[5, 1, 2]], rng.integers(0, 256, size=(2, n_bits // 8), dtype=np.uint8)])
    index = FlatIndex(n_bits)
    index.add(database, ids=ids)
    for k in (1, 10, 95):
        checks.assert_knn_equal(index.search(queries, k), queries, database, k, ids=ids)
    knn = index.search(queries, 10)
    for q in range(len(queries)):
        radius = int(knn.distances[q, -1])
        ranged = index.range_search(queries[q : q + 1], radius)
        np.testing.assert_array_equal(ranged.ids[:10], knn.ids[q])
        assert len(ranged.ids) == int((hamming_distances(queries[q : q + 1], database) <= radius).sum())


def test_kernel_classes_cover_every_width_without_reading_past_a_row():
    """Whole-word and short rows have kernels of their own; the rest share a few, and a
    row's last code is read correctly when it ends exactly at the end of the buffer."""
    classes = {kernels.flat_kernel_class(n_bits // 8) for n_bits in ALL_WIDTHS}
    assert len(classes) <= 59
    assert kernels.flat_kernel_class(8)[0] == 8 and kernels.flat_kernel_class(41)[0] == 0
    for n_bits in (8, 24, 56, 72, 328):
        # one code that is all ones: every byte must count, the buffer ends with it
        codes = np.full((1, n_bits // 8), 255, dtype=np.uint8)
        index = FlatIndex(n_bits)
        index.add(codes)
        assert index.search(np.zeros((1, n_bits // 8), np.uint8), 1).distances[0, 0] == n_bits
