"""Hash partitioning of codes by a substring, with Hamming lower bounds for routing.

A :class:`SubstringPartition` reads ``s <= 16`` chosen bit positions of every code
(by default the first ``s`` bits) as an integer, its *substring value*, and maps
each of the ``2**s`` values to one of ``n_parts`` parts through a fixed table. The
Hamming distance between two codes is at least the distance between their
substrings, so for a query and a part

    lower_bound(query, part) = min over the substring values present in the part
                               of popcount(query substring ^ value)

never exceeds the query's distance to any code in that part. A router that visits
parts in ascending order of this bound and stops once the bound exceeds the current
k-th distance returns exact results (ties by ascending id included: an unvisited
code is strictly farther than the k-th).

The table comes from :meth:`SubstringPartition.fit`: the substring values seen in a
sample are clustered into groups of close values (count-weighted Hamming k-modes)
and whole groups are dealt to the parts to balance them, so codes of one cluster
tend to share a part and the other parts' bounds are large. Values the sample did
not contain go with the group whose centre is nearest. On uniformly random codes every part holds every
nearby value and no bound can prune: the scheme only pays on structured codes.

>>> import numpy as np
>>> codes = np.array([[0b0000_0001, 0], [0b0000_0011, 0], [0b1111_0000, 9], [0b1111_1000, 9]], dtype=np.uint8)
>>> partition = SubstringPartition(16, n_parts=2, positions=8).fit(codes)
>>> partition.part_of(codes).tolist()
[0, 0, 1, 1]
>>> partition.add_counts(codes)
>>> partition.lower_bounds(np.array([[0b0000_0001, 0]], dtype=np.uint8)).tolist()
[[0, 5]]
"""

from __future__ import annotations

import numbers

import numpy as np

from hashlearn.codes import validate_codes
from hashlearn.index.flat import FlatIndex

MAX_SUBSTRING_BITS = 16
#: lower bound reported for a part that holds no code (larger than any distance)
EMPTY_PART_BOUND = np.iinfo(np.int64).max
#: groups of close substring values per part made by fit
CLUSTERS_PER_PART = 8
#: a group joins the part of a close group only while that part holds less than this times an equal share
PART_CAPACITY = 1.25
_FIT_ITERATIONS = 6
_ROWS_PER_CHUNK = 1 << 20


def check_positions(positions, n_bits: int) -> np.ndarray:
    """Bit positions of the substring: an int ``s`` (the first ``s`` bits) or a sequence of positions."""
    if isinstance(positions, numbers.Integral) and not isinstance(positions, bool):
        count = int(positions)
        if not 1 <= count <= min(MAX_SUBSTRING_BITS, n_bits):
            raise ValueError(f"partition_bits must be between 1 and {min(MAX_SUBSTRING_BITS, n_bits)}, got {count}.")
        return np.arange(count, dtype=np.int64)
    array = np.asarray(positions)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"partition_bits must be an int or a 1-D sequence of bit positions, got {positions!r}.")
    if not 1 <= len(array) <= MAX_SUBSTRING_BITS:
        raise ValueError(f"partition_bits must name 1 to {MAX_SUBSTRING_BITS} bit positions, got {len(array)}.")
    if array.min() < 0 or array.max() >= n_bits or len(np.unique(array)) != len(array):
        raise ValueError(f"partition_bits must be distinct bit positions in [0, {n_bits}), got {array.tolist()}.")
    return array.astype(np.int64)


class SubstringPartition:
    """Maps codes to parts by the substring at ``positions``; tracks the values per part for lower bounds.

    Parameters
    ----------
    n_bits : code length in bits.
    n_parts : number of parts (shards).
    positions : an int ``s`` (the first ``s`` bits, ``s <= 16``) or a sequence of bit positions.
    """

    def __init__(self, n_bits: int, n_parts: int, positions=MAX_SUBSTRING_BITS):
        self.n_bits, self.n_parts = int(n_bits), int(n_parts)
        self.positions = check_positions(positions, self.n_bits)
        self.n_sub_bits = len(self.positions)
        self.centres = None  # substring values of the fitted groups' centres
        self.centre_parts = None  # the part of each centre
        self.table = None  # (2**s,) int32 part of every substring value, after fit
        self.counts = np.zeros(1 << self.n_sub_bits, dtype=np.int64)  # codes added per substring value
        self._bound_indexes = None  # per part: FlatIndex over the present values, rebuilt lazily

    @property
    def fitted(self) -> bool:
        return self.table is not None

    # --- substring values -------------------------------------------------------------------
    def values(self, codes) -> np.ndarray:
        """Substring value of every code: bit ``i`` of the value is code bit ``positions[i]``."""
        codes = validate_codes(codes, n_bits=self.n_bits)
        out = np.empty(len(codes), dtype=np.int64)
        byte, shift = self.positions // 8, (self.positions % 8).astype(np.uint8)
        weights = np.left_shift(1, np.arange(self.n_sub_bits, dtype=np.int64))
        for start in range(0, len(codes), _ROWS_PER_CHUNK):
            block = codes[start : start + _ROWS_PER_CHUNK]
            bits = (block[:, byte] >> shift) & 1
            out[start : start + len(block)] = bits.astype(np.int64) @ weights
        return out

    def _packed(self, values: np.ndarray) -> np.ndarray:
        """Substring values as packed codes of ``8 * ceil(s / 8)`` bits (the project's bit layout)."""
        n_bytes = -(-self.n_sub_bits // 8)
        return np.ascontiguousarray(values.astype("<u2").view(np.uint8).reshape(-1, 2)[:, :n_bytes])

    # --- fitting the table ------------------------------------------------------------------
    def fit(self, codes) -> "SubstringPartition":
        """Place the parts from the substring values of a sample ``codes``.

        The values are clustered into up to ``CLUSTERS_PER_PART * n_parts`` groups of close
        values (count-weighted Hamming k-modes); whole groups are then dealt to the parts,
        largest first to the least loaded part, so a cluster of codes is not split across
        parts and the parts hold similar numbers of codes. Every one of the ``2**s`` values
        (seen or not) belongs to the group of its nearest centre.
        """
        values, counts = np.unique(self.values(codes), return_counts=True)
        if not len(values):
            raise ValueError("fit needs at least one code to place the parts.")
        n_groups = min(len(values), CLUSTERS_PER_PART * self.n_parts)
        centres = _farthest_first(values, counts, n_groups)
        for _ in range(_FIT_ITERATIONS):
            groups = _nearest(values, centres)
            new_centres = _weighted_modes(values, counts, groups, centres, self.n_sub_bits)
            if np.array_equal(new_centres, centres):
                break
            centres = new_centres
        weights = np.bincount(_nearest(values, centres), weights=counts, minlength=len(centres))
        self.centres, self.centre_parts = centres, _deal_groups(centres, weights, self.n_parts, self.n_sub_bits)
        self.table = self.centre_parts[_nearest(np.arange(1 << self.n_sub_bits, dtype=np.int64), centres)]
        self._bound_indexes = None
        return self

    # --- routing ----------------------------------------------------------------------------
    def part_of(self, codes) -> np.ndarray:
        """The part of every code (``fit`` first)."""
        if not self.fitted:
            raise RuntimeError("the partition is not fitted yet: call fit(codes) first.")
        return self.table[self.values(codes)]

    def add_counts(self, codes=None, *, values=None) -> None:
        """Record added codes (or their substring ``values``) so the bounds know which values each part holds."""
        values = self.values(codes) if values is None else values
        new = np.bincount(values, minlength=len(self.counts))
        if np.any((new > 0) & (self.counts == 0)):
            self._bound_indexes = None
        self.counts += new

    def lower_bounds(self, queries) -> np.ndarray:
        """``(nq, n_parts)`` int64: the least substring distance from each query to each part's values.

        A part with no code gets ``EMPTY_PART_BOUND``.
        """
        if not self.fitted:
            raise RuntimeError("the partition is not fitted yet: call fit(codes) first.")
        query_values = self.values(queries)
        bounds = np.full((len(query_values), self.n_parts), EMPTY_PART_BOUND, dtype=np.int64)
        if not len(query_values):
            return bounds
        packed_queries = self._packed(query_values)
        for part, index in enumerate(self._bound_index_per_part()):
            if index is not None:
                bounds[:, part] = index.search(packed_queries, 1).distances[:, 0]
        return bounds

    def _bound_index_per_part(self) -> list:
        if self._bound_indexes is None:
            present = np.flatnonzero(self.counts)
            owners = self.table[present]
            n_bits = 8 * -(-self.n_sub_bits // 8)
            indexes = []
            for part in range(self.n_parts):
                mine = present[owners == part]
                if len(mine):
                    index = FlatIndex(n_bits)
                    index.add(self._packed(mine))
                    indexes.append(index)
                else:
                    indexes.append(None)
            self._bound_indexes = indexes
        return self._bound_indexes

    # --- persistence ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"positions": self.positions.tolist(), "fitted": self.fitted}
        arrays = {"counts": self.counts}
        if self.fitted:
            arrays.update(centres=self.centres, centre_parts=self.centre_parts, table=self.table)
        return meta, arrays

    @classmethod
    def from_state(cls, n_bits: int, n_parts: int, meta: dict, arrays: dict) -> "SubstringPartition":
        partition = cls(n_bits, n_parts, meta["positions"])
        size = 1 << partition.n_sub_bits
        counts = np.asarray(arrays["counts"])
        if counts.shape != (size,) or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
            raise ValueError(f"stored partition counts must be {size} non-negative integers, got {counts.dtype} {counts.shape}.")
        partition.counts = counts.astype(np.int64)
        if meta.get("fitted"):
            table, centres, centre_parts = (np.asarray(arrays[name]) for name in ("table", "centres", "centre_parts"))
            for name, array, length in (("table", table, size), ("centre_parts", centre_parts, len(centres))):
                if array.shape != (length,) or not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= n_parts:
                    raise ValueError(f"stored partition {name} must map {length} entries to parts 0..{n_parts - 1}.")
            if centres.ndim != 1 or not np.issubdtype(centres.dtype, np.integer) or centres.min() < 0 or centres.max() >= size:
                raise ValueError(f"stored partition centres must be substring values below {size}, got {centres.dtype} {centres.shape}.")
            partition.table, partition.centres = table.astype(np.int32), centres.astype(np.int64)
            partition.centre_parts = centre_parts.astype(np.int32)
        return partition


# --- the fit, on substring values (at most 16 bits) -------------------------------------------
_POPCOUNT16 = np.array([bin(value).count("1") for value in range(1 << 16)], dtype=np.uint8)


def _popcount16(values: np.ndarray) -> np.ndarray:
    return _POPCOUNT16[values]


def _nearest(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every value (ties to the lower index), in chunks."""
    out = np.empty(len(values), dtype=np.int64)
    step = max(1, (1 << 22) // len(centres))
    for start in range(0, len(values), step):
        out[start : start + step] = np.argmin(_popcount16(values[start : start + step, None] ^ centres[None, :]), axis=1)
    return out


def _deal_groups(centres: np.ndarray, weights: np.ndarray, n_parts: int, n_sub_bits: int) -> np.ndarray:
    """Part of each group, largest group first: a group within ``max(1, s // 8)`` bits of a group
    already dealt joins that group's part (a cluster's fringe stays with its core) while the part
    holds less than ``PART_CAPACITY`` times an equal share; any other group goes to the least
    loaded part."""
    near = max(1, n_sub_bits // 8)
    capacity = PART_CAPACITY * weights.sum() / n_parts
    parts = np.full(len(centres), -1, dtype=np.int32)
    load = np.zeros(n_parts)
    for group in np.lexsort((np.arange(len(centres)), -weights)):
        dealt = np.flatnonzero(parts >= 0)
        part = int(np.argmin(load))
        if len(dealt):
            distances = _popcount16(centres[dealt] ^ centres[group])
            closest = dealt[np.argmin(distances)]
            if distances.min() <= near and load[parts[closest]] + weights[group] <= capacity:
                part = int(parts[closest])
        parts[group] = part
        load[part] += weights[group]
    return parts


def _farthest_first(values: np.ndarray, counts: np.ndarray, n_centres: int) -> np.ndarray:
    """Initial centres: the most frequent value, then repeatedly the value farthest from the chosen
    ones (ties to the more frequent, then the smaller value); ``n_centres <= len(values)``."""
    chosen = [int(values[np.argmax(counts)])]
    nearest = _popcount16(values ^ chosen[0]).astype(np.int64)
    while len(chosen) < n_centres:
        best = np.lexsort((values, -counts, -nearest))[0]
        chosen.append(int(values[best]))
        nearest = np.minimum(nearest, _popcount16(values ^ chosen[-1]))
    return np.array(chosen, dtype=np.int64)


def _weighted_modes(values, counts, groups, centres, n_sub_bits: int) -> np.ndarray:
    """New centre of each group: the count-weighted bitwise majority of its values (an empty group keeps its centre)."""
    bits = (values[:, None] >> np.arange(n_sub_bits)) & 1
    new = centres.copy()
    for group in range(len(centres)):
        mine = groups == group
        if mine.any():
            weight = counts[mine]
            majority = (2 * (weight @ bits[mine]) > weight.sum()).astype(np.int64)
            new[group] = int(majority @ (1 << np.arange(n_sub_bits)))
    return new
