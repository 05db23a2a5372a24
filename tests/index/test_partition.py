"""SubstringPartition: substring values, balanced fit, lower bounds against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, unpack_bits
from hashlearn.codes import pack_bits
from hashlearn.index.partition import EMPTY_PART_BOUND, SubstringPartition


def slow_keys(codes, n_bits, positions):
    bits = unpack_bits(codes, n_bits)
    return np.array([sum(int(row[p]) << i for i, p in enumerate(positions)) for row in bits], dtype=np.int64)


@pytest.mark.parametrize("n_bits, positions", [(8, 8), (16, 5), (32, 16), (64, [63, 0, 17, 40, 8, 9, 31])])
def test_values_read_the_chosen_bits(rng, n_bits, positions):
    codes = rng.integers(0, 256, size=(200, n_bits // 8), dtype=np.uint8)
    partition = SubstringPartition(n_bits, 3, positions)
    chosen = list(range(positions)) if isinstance(positions, int) else positions
    np.testing.assert_array_equal(partition.keys(codes), slow_keys(codes, n_bits, chosen))


def brute_bounds(queries, codes, groups, group_parts, n_parts, bound_bits):
    """Min over a part's groups of the sum over 16-bit chunks of the least chunk distance to
    the group's codes, by explicit loops."""
    q_bits, c_bits = unpack_bits(queries, queries.shape[1] * 8), unpack_bits(codes, codes.shape[1] * 8)
    chunks = [(start, min(start + 16, bound_bits)) for start in range(0, bound_bits, 16)]
    out = np.full((len(queries), n_parts), EMPTY_PART_BOUND, dtype=np.int64)
    for group, part in enumerate(group_parts):
        mine = c_bits[groups == group]
        if not len(mine):
            continue
        for q, row in enumerate(q_bits):
            bound = sum(int((mine[:, a:b] != row[a:b]).sum(axis=1).min()) for a, b in chunks)
            out[q, part] = min(out[q, part], bound)
    return out


@pytest.mark.parametrize("clustered, n_bits, bound_bits", [(True, 32, None), (False, 32, 16), (True, 64, 40), (True, 24, None)])
def test_lower_bounds_equal_brute_force(rng, checks, clustered, n_bits, bound_bits):
    n_parts = 5
    if clustered:
        codes, centres = checks.make_clustered(rng, 2000, n_bits, n_centres=7, flip_probability=0.05)
        queries, _ = checks.make_clustered(rng, 40, n_bits, centres=centres, flip_probability=0.08)
    else:
        codes = rng.integers(0, 256, size=(2000, n_bits // 8), dtype=np.uint8)
        queries = rng.integers(0, 256, size=(40, n_bits // 8), dtype=np.uint8)
    partition = SubstringPartition(n_bits, n_parts, 12, bound_bits).fit(codes[:500])
    parts = partition.part_of(codes)
    partition.record(codes[:1000])
    early = partition.lower_bounds(queries)  # builds the distance tables; the next record updates them in place
    partition.record(codes[1000:])
    bounds = partition.lower_bounds(queries)
    groups = partition.key_groups[partition.keys(codes)]
    np.testing.assert_array_equal(partition.centre_parts[groups], parts)
    want = brute_bounds(queries, codes, groups, partition.centre_parts, n_parts, partition.bound_bits)
    np.testing.assert_array_equal(bounds, want)
    assert (early >= bounds).all()  # more codes can only lower a bound
    full = hamming_distances(queries, codes)
    for part in np.unique(parts):  # a lower bound on every code in the part
        assert (bounds[:, part] <= full[:, parts == part].min(axis=1)).all()
    if clustered:
        assert (bounds >= 3).mean() > 0.5  # clustered codes: most parts are far from a query


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
    partition.record(codes)
    meta, arrays = partition.state()
    again = SubstringPartition.from_state(16, 3, meta, arrays)
    np.testing.assert_array_equal(again.lower_bounds(codes[:20]), partition.lower_bounds(codes[:20]))
    np.testing.assert_array_equal(again.part_of(codes), partition.part_of(codes))
    bad = dict(arrays, centre_parts=np.full_like(arrays["centre_parts"], 7))
    with pytest.raises(ValueError, match="centre_parts must map .* entries to 0..2"):
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
    with pytest.raises(ValueError, match="fit it before recording"):
        partition.fit(codes)
    with pytest.raises(ValueError, match="bound_bits must be a multiple of 8 between 8 and 16"):
        SubstringPartition(16, 2, 4, bound_bits=24)
    with pytest.raises(ValueError, match="stored partition presence"):
        SubstringPartition.from_state(16, 3, meta, dict(arrays, present=arrays["present"][:, :1]))
