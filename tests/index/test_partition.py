"""SubstringPartition: substring values, balanced fit, lower bounds against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, unpack_bits
from hashlearn.codes import pack_bits
from hashlearn.index.partition import EMPTY_PART_BOUND, SubstringPartition


def slow_values(codes, n_bits, positions):
    bits = unpack_bits(codes, n_bits)
    return np.array([sum(int(row[p]) << i for i, p in enumerate(positions)) for row in bits], dtype=np.int64)


@pytest.mark.parametrize("n_bits, positions", [(8, 8), (16, 5), (32, 16), (64, [63, 0, 17, 40, 8, 9, 31])])
def test_values_read_the_chosen_bits(rng, n_bits, positions):
    codes = rng.integers(0, 256, size=(200, n_bits // 8), dtype=np.uint8)
    partition = SubstringPartition(n_bits, 3, positions)
    chosen = list(range(positions)) if isinstance(positions, int) else positions
    np.testing.assert_array_equal(partition.values(codes), slow_values(codes, n_bits, chosen))


@pytest.mark.parametrize("clustered", [True, False])
def test_lower_bounds_equal_brute_force_minimum(rng, checks, clustered):
    n_bits, n_parts = 32, 5
    if clustered:
        codes, _ = checks.make_clustered(rng, 2000, n_bits, n_centres=7, flip_probability=0.05)
        queries, _ = checks.make_clustered(rng, 50, n_bits, n_centres=7, flip_probability=0.05)
    else:
        codes = rng.integers(0, 256, size=(2000, 4), dtype=np.uint8)
        queries = rng.integers(0, 256, size=(50, 4), dtype=np.uint8)
    partition = SubstringPartition(n_bits, n_parts, 12).fit(codes[:500])
    partition.add_counts(codes)
    parts = partition.part_of(codes)
    bounds = partition.lower_bounds(queries)
    full = hamming_distances(queries, codes)
    sub_q, sub_db = slow_values(queries, n_bits, range(12)), slow_values(codes, n_bits, range(12))
    for part in range(n_parts):
        mine = parts == part
        if not mine.any():
            assert (bounds[:, part] == EMPTY_PART_BOUND).all()
            continue
        present = np.unique(sub_db[mine])
        brute = np.array([min(bin(int(q) ^ int(v)).count("1") for v in present) for q in sub_q])
        np.testing.assert_array_equal(bounds[:, part], brute)
        assert (bounds[:, part] <= full[:, mine].min(axis=1)).all()  # a lower bound on every code in the part


def test_fit_is_balanced_and_keeps_clusters_together(rng, checks):
    codes, centres = checks.make_clustered(rng, 4000, 64, n_centres=8, flip_probability=0.01)
    partition = SubstringPartition(64, 4, 16).fit(codes)
    parts = partition.part_of(codes)
    sizes = np.bincount(parts, minlength=4)
    assert sizes.max() < 1.5 * len(codes) / 4 and sizes.min() > 0.5 * len(codes) / 4  # 8 clusters dealt to 4 parts
    nearest = hamming_distances(codes, pack_bits(centres)).argmin(axis=1)
    for centre in np.unique(nearest):  # a cluster is not split: its codes share a part
        share = np.bincount(parts[nearest == centre], minlength=4).max() / (nearest == centre).sum()
        assert share > 0.98


def test_unseen_values_go_to_the_nearest_centre(rng):
    codes = np.array([[0x00, 0], [0x01, 0], [0xF0, 0], [0xF8, 0]], dtype=np.uint8)
    partition = SubstringPartition(16, 2, 8).fit(codes)
    unseen = np.array([[0x03, 0], [0xFC, 0]], dtype=np.uint8)
    assert partition.part_of(unseen).tolist() == partition.part_of(codes[[0, 2]]).tolist()


def test_state_round_trip_and_validation(rng):
    codes = rng.integers(0, 256, size=(300, 2), dtype=np.uint8)
    partition = SubstringPartition(16, 3, [1, 3, 5, 7, 9]).fit(codes)
    partition.add_counts(codes)
    meta, arrays = partition.state()
    again = SubstringPartition.from_state(16, 3, meta, arrays)
    np.testing.assert_array_equal(again.lower_bounds(codes[:20]), partition.lower_bounds(codes[:20]))
    np.testing.assert_array_equal(again.part_of(codes), partition.part_of(codes))
    bad = dict(arrays, table=np.full_like(arrays["table"], 7))
    with pytest.raises(ValueError, match="parts 0..2"):
        SubstringPartition.from_state(16, 3, meta, bad)
    with pytest.raises(ValueError, match="partition_bits must be between 1 and 16"):
        SubstringPartition(64, 2, 17)
    with pytest.raises(ValueError, match="distinct bit positions in \\[0, 16\\)"):
        SubstringPartition(16, 2, [3, 3])
    with pytest.raises(ValueError, match="distinct bit positions"):
        SubstringPartition(16, 2, [16])
    with pytest.raises(TypeError, match="partition_bits must be an int"):
        SubstringPartition(16, 2, 2.5)
    with pytest.raises(RuntimeError, match="not fitted"):
        SubstringPartition(16, 2, 4).lower_bounds(codes)
