"""Hash partitioning of codes by a substring, with Hamming lower bounds for routing.

A :class:`SubstringPartition` reads ``s <= 16`` chosen bit positions of every code
(by default the first ``s`` bits) as an integer, its *key*, and maps each of the
``2**s`` keys to one of ``n_parts`` parts through a fixed table.

The table comes from :meth:`SubstringPartition.fit`: the keys seen in a sample are
clustered into *groups* of close keys (count-weighted Hamming k-modes, about
``CLUSTERS_PER_PART`` groups per part) and whole groups are dealt to the parts to
balance them, so codes of one cluster tend to share a part. Keys the sample did not
contain go with the group whose centre is nearest.

To route queries the partition keeps, per group, which values each 16-bit *chunk* of
the codes takes there (the first ``bound_bits`` bits cut into chunks of 16, the last
one possibly 8). The Hamming distance is a sum over disjoint chunks, so

    bound(query, group) = sum over chunks j of
        min over the values v of chunk j recorded in the group of popcount(query_j ^ v)
    lower_bound(query, part) = min over the part's groups of bound(query, group)

never exceeds the query's distance to any code in the part (each code's chunk
distances are at least these minima). A router that visits parts in ascending order
of this bound and stops once the bound exceeds the current k-th distance returns
exact results (ties by ascending id included: an unvisited code is strictly farther
than the k-th). With one chunk and one group per part this is the plain substring
bound; summing chunks within small groups makes it far tighter on clustered codes
(a cluster's fringe widens one chunk's range of values, not all of them at once). On uniformly random codes every part holds
nearly every chunk value and no bound can prune: the scheme only pays on structured
codes.

>>> import numpy as np
>>> codes = np.array([[0b0000_0001, 0], [0b0000_0011, 0], [0b1111_0000, 9], [0b1111_1000, 9]], dtype=np.uint8)
>>> partition = SubstringPartition(16, n_parts=2, positions=8).fit(codes)
>>> partition.part_of(codes).tolist()
[0, 0, 1, 1]
>>> partition.record(codes)
>>> partition.lower_bounds(np.array([[0b0000_0001, 0]], dtype=np.uint8)).tolist()   # 5 + 2 bits to part 1
[[0, 7]]
"""

from __future__ import annotations

import numbers

import numpy as np
from numba import njit

from hashlearn.codes import validate_codes

MAX_KEY_BITS = 16
#: default and largest number of leading bits the routing bound reads
DEFAULT_BOUND_BITS, MAX_BOUND_BITS = 64, 256
#: lower bound reported for a part that holds no code (larger than any distance)
EMPTY_PART_BOUND = np.iinfo(np.int64).max
#: groups of close keys per part made by fit
CLUSTERS_PER_PART = 8
#: a group joins the part of a close group only while that part holds less than this times an equal share
PART_CAPACITY = 1.25
_FIT_ITERATIONS = 6
_ROWS_PER_CHUNK = 1 << 20
_CHUNK_BITS = 16


def check_positions(positions, n_bits: int) -> np.ndarray:
    """Bit positions of the key: an int ``s`` (the first ``s`` bits) or a sequence of positions."""
    if isinstance(positions, numbers.Integral) and not isinstance(positions, bool):
        count = int(positions)
        if not 1 <= count <= min(MAX_KEY_BITS, n_bits):
            raise ValueError(f"partition_bits must be between 1 and {min(MAX_KEY_BITS, n_bits)}, got {count}.")
        return np.arange(count, dtype=np.int64)
    array = np.asarray(positions)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"partition_bits must be an int or a 1-D sequence of bit positions, got {positions!r}.")
    if not 1 <= len(array) <= MAX_KEY_BITS:
        raise ValueError(f"partition_bits must name 1 to {MAX_KEY_BITS} bit positions, got {len(array)}.")
    if array.min() < 0 or array.max() >= n_bits or len(np.unique(array)) != len(array):
        raise ValueError(f"partition_bits must be distinct bit positions in [0, {n_bits}), got {array.tolist()}.")
    return array.astype(np.int64)


def check_bound_bits(bound_bits, n_bits: int) -> int:
    """Leading bits the routing bound reads: a multiple of 8 up to ``min(n_bits, 256)``; default ``min(n_bits, 64)``."""
    if bound_bits is None:
        return min(n_bits, DEFAULT_BOUND_BITS)
    if isinstance(bound_bits, bool) or not isinstance(bound_bits, numbers.Integral):
        raise TypeError(f"bound_bits must be an integer, got {type(bound_bits).__name__} {bound_bits!r}.")
    top = min(n_bits, MAX_BOUND_BITS)
    if bound_bits % 8 or not 8 <= bound_bits <= top:
        raise ValueError(f"bound_bits must be a multiple of 8 between 8 and {top}, got {bound_bits}.")
    return int(bound_bits)


class SubstringPartition:
    """Maps codes to parts by the key at ``positions``; tracks each part's chunk values for lower bounds.

    Parameters
    ----------
    n_bits : code length in bits.
    n_parts : number of parts (shards).
    positions : an int ``s`` (the first ``s`` bits, ``s <= 16``) or a sequence of bit positions.
    bound_bits : leading bits read by :meth:`lower_bounds` (multiple of 8; default ``min(n_bits, 64)``).
    """

    def __init__(self, n_bits: int, n_parts: int, positions=MAX_KEY_BITS, bound_bits: int | None = None):
        self.n_bits, self.n_parts = int(n_bits), int(n_parts)
        self.positions = check_positions(positions, self.n_bits)
        self.n_key_bits = len(self.positions)
        self.bound_bits = check_bound_bits(bound_bits, self.n_bits)
        self.n_chunks = -(-self.bound_bits // _CHUNK_BITS)
        self.chunk_widths = np.array([min(_CHUNK_BITS, self.bound_bits - _CHUNK_BITS * j) for j in range(self.n_chunks)],
                                     dtype=np.int64)
        self.centres = None  # (n_groups,) keys of the fitted groups' centres
        self.centre_parts = None  # (n_groups,) the part of each group
        self.key_groups = None  # (2**s,) int32: the group of every key
        self.table = None  # (2**s,) int32: the part of every key
        #: (n_chunks, n_groups, 2**16 / 8) uint8 bitmaps: bit v set where a code recorded in the group has chunk value v
        self.present = None
        #: (n_chunks, n_groups, 2**16) uint8: distance from every chunk value to the nearest recorded one (255: none)
        self._distances = None  # built lazily from ``present``, then kept up to date by record

    @property
    def fitted(self) -> bool:
        return self.table is not None

    @property
    def holds_codes(self) -> bool:
        """Whether :meth:`record` has been given any code."""
        return self.present is not None and bool(self.present.any())

    # --- keys and chunks --------------------------------------------------------------------
    def keys(self, codes) -> np.ndarray:
        """Key of every code: bit ``i`` of the key is code bit ``positions[i]``."""
        codes = validate_codes(codes, n_bits=self.n_bits)
        out = np.empty(len(codes), dtype=np.int64)
        byte, shift = self.positions // 8, (self.positions % 8).astype(np.uint8)
        weights = np.left_shift(1, np.arange(self.n_key_bits, dtype=np.int64))
        for start in range(0, len(codes), _ROWS_PER_CHUNK):
            block = codes[start : start + _ROWS_PER_CHUNK]
            out[start : start + len(block)] = ((block[:, byte] >> shift) & 1).astype(np.int64) @ weights
        return out

    def chunks(self, codes) -> np.ndarray:
        """``(n, n_chunks)`` int64: the value of every 16-bit chunk of the first ``bound_bits`` bits."""
        codes = validate_codes(codes, n_bits=self.n_bits)
        out = np.empty((len(codes), self.n_chunks), dtype=np.int64)
        for j, width in enumerate(self.chunk_widths):
            low = codes[:, 2 * j].astype(np.int64)
            out[:, j] = low if width == 8 else low | (codes[:, 2 * j + 1].astype(np.int64) << 8)
        return out

    # --- fitting the table ------------------------------------------------------------------
    def fit(self, codes) -> "SubstringPartition":
        """Place the parts from the keys of a sample ``codes``.

        The keys are clustered into up to ``CLUSTERS_PER_PART * n_parts`` groups of close
        keys (count-weighted Hamming k-modes); whole groups are then dealt to the parts
        (see :func:`_deal_groups`), so a cluster of codes is not split across parts and
        the parts hold similar numbers of codes. Every one of the ``2**s`` keys (seen or
        not) belongs to the group of its nearest centre.
        """
        if self.holds_codes:
            raise ValueError("the partition already holds codes; fit it before recording any.")
        keys, counts = np.unique(self.keys(codes), return_counts=True)
        if not len(keys):
            raise ValueError("fit needs at least one code to place the parts.")
        centres = _farthest_first(keys, counts, min(len(keys), CLUSTERS_PER_PART * self.n_parts))
        for _ in range(_FIT_ITERATIONS):
            new_centres = _weighted_modes(keys, counts, _nearest(keys, centres), centres, self.n_key_bits)
            if np.array_equal(new_centres, centres):
                break
            centres = new_centres
        weights = np.bincount(_nearest(keys, centres), weights=counts, minlength=len(centres))
        self._set_groups(centres, _deal_groups(centres, weights, self.n_parts, self.n_key_bits),
                         _nearest(np.arange(1 << self.n_key_bits, dtype=np.int64), centres).astype(np.int32))
        self.present = np.zeros((self.n_chunks, len(centres), (1 << _CHUNK_BITS) // 8), dtype=np.uint8)
        self._distances = None
        return self

    def _set_groups(self, centres, centre_parts, key_groups) -> None:
        self.centres, self.centre_parts, self.key_groups = centres, centre_parts, key_groups
        self.table = centre_parts[key_groups]

    # --- routing ----------------------------------------------------------------------------
    def part_of(self, codes) -> np.ndarray:
        """The part of every code (``fit`` first)."""
        self._check_fitted()
        return self.table[self.keys(codes)]

    def record(self, codes) -> None:
        """Note that ``codes`` were stored in their parts, so the bounds cover them."""
        self._check_fitted()
        groups = self.key_groups[self.keys(codes)].astype(np.int64)
        chunk_values = self.chunks(codes)
        n_groups = len(self.centres)
        flat = self.present.reshape(-1)
        for j in range(self.n_chunks):
            bit = np.unique((j * n_groups + groups) << _CHUNK_BITS | chunk_values[:, j])
            byte, mask = bit >> 3, (1 << (bit & 7)).astype(np.uint8)
            fresh = flat[byte] & mask == 0
            if fresh.any():
                np.bitwise_or.at(flat, byte[fresh], mask[fresh])
                if self._distances is not None:  # relax the distance tables from the new values only
                    sources = bit[fresh]
                    _relax(self._distances.reshape(-1, 1 << _CHUNK_BITS), sources >> _CHUNK_BITS,
                           sources & ((1 << _CHUNK_BITS) - 1), self.chunk_widths, n_groups)

    def lower_bounds(self, queries) -> np.ndarray:
        """``(nq, n_parts)`` int64: the chunk-sum lower bound from each query to each part.

        A part with no code gets ``EMPTY_PART_BOUND``.
        """
        self._check_fitted()
        query_chunks = self.chunks(queries)
        bounds = np.empty((len(query_chunks), self.n_parts), dtype=np.int64)
        if self._distances is None:
            n_groups = len(self.centres)
            self._distances = np.full((self.n_chunks, n_groups, 1 << _CHUNK_BITS), _FAR, dtype=np.uint8)
            sources = np.flatnonzero(np.unpackbits(self.present, axis=2, bitorder="little").reshape(-1))
            _relax(self._distances.reshape(-1, 1 << _CHUNK_BITS), sources >> _CHUNK_BITS,
                   sources & ((1 << _CHUNK_BITS) - 1), self.chunk_widths, n_groups)
        empty = ~self.present[0].any(axis=1)
        _chunk_bounds(query_chunks, self._distances, empty, self.centre_parts.astype(np.int64), EMPTY_PART_BOUND, bounds)
        return bounds

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("the partition is not fitted yet: call fit(codes) first.")

    # --- persistence ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"positions": self.positions.tolist(), "bound_bits": self.bound_bits, "fitted": self.fitted}
        arrays = {}
        if self.fitted:
            arrays.update(centres=self.centres, centre_parts=self.centre_parts, key_groups=self.key_groups,
                          present=self.present)
        return meta, arrays

    @classmethod
    def from_state(cls, n_bits: int, n_parts: int, meta: dict, arrays: dict) -> "SubstringPartition":
        partition = cls(n_bits, n_parts, meta["positions"], meta["bound_bits"])
        if not meta.get("fitted"):
            return partition
        centres, centre_parts, key_groups = (np.asarray(arrays[name]) for name in ("centres", "centre_parts", "key_groups"))
        n_keys = 1 << partition.n_key_bits
        if centres.ndim != 1 or not len(centres) or not np.issubdtype(centres.dtype, np.integer) or centres.min() < 0 \
                or centres.max() >= n_keys:
            raise ValueError(f"stored partition centres must be keys below {n_keys}, got {centres.dtype} {centres.shape}.")
        for name, array, length, top in (("centre_parts", centre_parts, len(centres), n_parts),
                                         ("key_groups", key_groups, n_keys, len(centres))):
            if array.shape != (length,) or not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= top:
                raise ValueError(f"stored partition {name} must map {length} entries to 0..{top - 1}.")
        present = np.asarray(arrays["present"])
        shape = (partition.n_chunks, len(centres), (1 << _CHUNK_BITS) // 8)
        if present.shape != shape or present.dtype != np.uint8:
            raise ValueError(f"stored partition presence must be uint8 {shape}, got {present.dtype} {present.shape}.")
        partition._set_groups(centres.astype(np.int64), centre_parts.astype(np.int32), key_groups.astype(np.int32))
        partition.present = np.array(present)
        return partition


# --- the bound kernel ---------------------------------------------------------------------------
_POPCOUNT16 = np.array([bin(value).count("1") for value in range(1 << 16)], dtype=np.uint8)


_FAR = 255  # distance-table entry of a group that holds no value yet


@njit(cache=True, nogil=True)
def _relax(distances, tables, values, widths, n_groups):
    """Mark ``values`` as recorded in distance tables ``tables`` (row ``j * n_groups + g``) and
    lower every entry reachable from them: a breadth-first search over the chunk's hypercube
    (one bit flip per step) that only continues where it improves an entry."""
    queue = np.empty(1 << 16, dtype=np.int64)
    i = 0
    while i < len(values):
        table = tables[i]
        width = widths[table // n_groups]
        head, tail = 0, 0
        while i < len(values) and tables[i] == table:  # the sources of this table (sorted by table)
            if distances[table, values[i]] != 0:
                distances[table, values[i]] = 0
                queue[tail] = values[i]
                tail += 1
            i += 1
        while head < tail:
            value = queue[head]
            head += 1
            step = distances[table, value] + 1
            for bit in range(width):
                other = value ^ (1 << bit)
                if distances[table, other] > step:
                    distances[table, other] = step
                    queue[tail] = other  # breadth-first: an entry first lowered here is final, so each
                    tail += 1  # value enters the queue at most once per table and 2**16 slots suffice


@njit(cache=True, nogil=True)
def _chunk_bounds(query_chunks, distances, empty, group_parts, far, out):
    """out[q, p] = min over the non-empty groups g of part p of sum_j distances[j, g, query chunk j]."""
    n_queries, n_chunks = query_chunks.shape
    n_groups = distances.shape[1]
    for q in range(n_queries):
        out[q, :] = far
        for g in range(n_groups):
            if empty[g]:
                continue
            p = group_parts[g]
            total = 0
            for j in range(n_chunks):
                total += distances[j, g, query_chunks[q, j]]
            if total < out[q, p]:
                out[q, p] = total


# --- the fit, on keys (at most 16 bits) -------------------------------------------------------
def _nearest(keys: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every key (ties to the lower index), in chunks."""
    out = np.empty(len(keys), dtype=np.int64)
    step = max(1, (1 << 22) // len(centres))
    for start in range(0, len(keys), step):
        out[start : start + step] = np.argmin(_POPCOUNT16[keys[start : start + step, None] ^ centres[None, :]], axis=1)
    return out


def _deal_groups(centres: np.ndarray, weights: np.ndarray, n_parts: int, n_key_bits: int) -> np.ndarray:
    """Part of each group, largest group first: a group within ``max(1, s // 8)`` bits of a group
    already dealt joins that group's part (a cluster's fringe stays with its core) while the part
    holds less than ``PART_CAPACITY`` times an equal share; any other group goes to the least
    loaded part."""
    near = max(1, n_key_bits // 8)
    capacity = PART_CAPACITY * weights.sum() / n_parts
    parts = np.full(len(centres), -1, dtype=np.int32)
    load = np.zeros(n_parts)
    for group in np.lexsort((np.arange(len(centres)), -weights)):
        dealt = np.flatnonzero(parts >= 0)
        part = int(np.argmin(load))
        if len(dealt):
            distances = _POPCOUNT16[centres[dealt] ^ centres[group]]
            closest = dealt[np.argmin(distances)]
            if distances.min() <= near and load[parts[closest]] + weights[group] <= capacity:
                part = int(parts[closest])
        parts[group] = part
        load[part] += weights[group]
    return parts


def _farthest_first(keys: np.ndarray, counts: np.ndarray, n_centres: int) -> np.ndarray:
    """Initial centres: the most frequent key, then repeatedly the key farthest from the chosen
    ones (ties to the more frequent, then the smaller key); ``n_centres <= len(keys)``."""
    chosen = [int(keys[np.argmax(counts)])]
    nearest = _POPCOUNT16[keys ^ chosen[0]].astype(np.int64)
    while len(chosen) < n_centres:
        best = np.lexsort((keys, -counts, -nearest))[0]
        chosen.append(int(keys[best]))
        nearest = np.minimum(nearest, _POPCOUNT16[keys ^ chosen[-1]])
    return np.array(chosen, dtype=np.int64)


def _weighted_modes(keys, counts, groups, centres, n_key_bits: int) -> np.ndarray:
    """New centre of each group: the count-weighted bitwise majority of its keys (an empty group keeps its centre)."""
    bits = (keys[:, None] >> np.arange(n_key_bits)) & 1
    new = centres.copy()
    for group in range(len(centres)):
        mine = groups == group
        if mine.any():
            weight = counts[mine]
            majority = (2 * (weight @ bits[mine]) > weight.sum()).astype(np.int64)
            new[group] = int(majority @ (1 << np.arange(n_key_bits)))
    return new
