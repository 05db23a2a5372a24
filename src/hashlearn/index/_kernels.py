"""Compiled (numba) kernels behind the Hamming indexes.

Every kernel is ``nogil`` so :mod:`hashlearn.index._threads` can run several at
once, and ``cache=True`` so a later process loads the machine code from disk
(numba writes it to ``__pycache__`` next to this file, or to a per-user cache
directory when the package directory is read-only; ``NUMBA_CACHE_DIR``
overrides both).

Layout: the database is the flat ``uint8`` buffer of the packed codes
(``n * n_bytes`` bytes). Rows are read with unaligned 8-byte loads, so no
padded copy is ever made; a query is pre-split into ``uint64`` words
(:func:`query_words`) whose last word holds the ``n_bytes % 8`` tail bytes.

Top-k selection keeps, per query, a max-heap of ``(distance, key)`` pairs of
size k, pre-filled with sentinels that lose to everything. A candidate is
looked at only when its distance is ``<=`` the heap top, which after the first
few thousand rows is rare, so the scan loop is XOR + popcount + compare.
The key is the row position when ids grow with position (then ties by
position are ties by id, and the scan order alone settles equal distances),
otherwise the user id.
"""

from __future__ import annotations

import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: heap sentinels: distance = MISSING_DISTANCE (int32 max), key = int64 max
SENTINEL_DISTANCE = np.int32(np.iinfo(np.int32).max)
SENTINEL_KEY = np.int64(np.iinfo(np.int64).max)

_JIT = dict(cache=True, nogil=True, fastmath=True, boundscheck=False)


# --- primitives ------------------------------------------------------------------------
@intrinsic
def popcount(typingctx, value):
    """Population count of an integer (one ``popcnt`` instruction)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        count = builder.ctpop(args[0])
        if value.bitwidth < 64:
            count = builder.zext(count, ir.IntType(64))
        return count

    return types.int64(value), codegen


@intrinsic
def load_u64(typingctx, data, offset):
    """Little-endian 8-byte load from a 1-D ``uint8`` array at any byte offset."""
    if not (isinstance(data, types.Array) and data.dtype == types.uint8 and isinstance(offset, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        start = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = builder.bitcast(builder.gep(array.data, [start]), ir.IntType(64).as_pointer())
        return builder.load(pointer, align=1)

    return types.uint64(data, offset), codegen


def query_words(queries: np.ndarray) -> np.ndarray:
    """Packed queries ``(nq, n_bytes)`` -> ``uint64 (nq, ceil(n_bytes / 8))``, tail zero-padded."""
    nq, n_bytes = queries.shape
    n_words = -(-n_bytes // 8)
    padded = np.zeros((nq, n_words * 8), dtype=np.uint8)
    padded[:, :n_bytes] = queries
    return padded.view(np.uint64)


@njit(inline="always", **_JIT)
def row_distance(q, db, offset, n_bytes):
    """Hamming distance between query words ``q`` and the row starting at byte ``offset``."""
    n_full = n_bytes >> 3
    tail = n_bytes & 7
    d = 0
    for w in range(n_full):
        d += popcount(q[w] ^ load_u64(db, offset + 8 * w))
    if tail:
        if n_full:  # the last 8 bytes of the row, shifted so only the tail bytes remain
            word = load_u64(db, offset + n_bytes - 8) >> np.uint64(8 * (8 - tail))
        else:  # a row shorter than one word: assemble it byte by byte
            word = np.uint64(0)
            for b in range(tail):
                word |= np.uint64(db[offset + b]) << np.uint64(8 * b)
        d += popcount(q[n_full] ^ word)
    return d


# --- bounded max-heap of (distance, key) -----------------------------------------------
@njit(inline="always", **_JIT)
def _greater(d1, k1, d2, k2):
    return d1 > d2 or (d1 == d2 and k1 > k2)


@njit(**_JIT)
def heap_replace_top(heap_d, heap_k, d, key):
    """Replace the worst entry by ``(d, key)`` and restore the heap."""
    size = heap_d.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _greater(heap_d[child + 1], heap_k[child + 1], heap_d[child], heap_k[child]):
            child += 1
        if _greater(heap_d[child], heap_k[child], d, key):
            heap_d[pos] = heap_d[child]
            heap_k[pos] = heap_k[child]
            pos = child
        else:
            break
    heap_d[pos] = d
    heap_k[pos] = key


@njit(inline="always", **_JIT)
def offer(heap_d, heap_k, d, pos, ids, by_position):
    """Offer row ``pos`` at distance ``d``; return the new worst distance."""
    key = np.int64(pos) if by_position else ids[pos]
    if d < heap_d[0] or (d == heap_d[0] and key < heap_k[0]):
        heap_replace_top(heap_d, heap_k, d, key)
    return heap_d[0]


@njit(**_JIT)
def sort_heaps(heap_d, heap_k):
    """Heap-sort every row of ``(nq, k)`` heaps into ascending ``(distance, key)`` order."""
    for q in range(heap_d.shape[0]):
        hd = heap_d[q]
        hk = heap_k[q]
        for end in range(hd.shape[0] - 1, 0, -1):
            d, key = hd[end], hk[end]
            hd[end], hk[end] = hd[0], hk[0]
            heap_replace_top(hd[:end], hk[:end], d, key)


@njit(**_JIT)
def finish_heaps(heap_d, heap_k, ids, by_position):
    """Sort the heaps and turn keys into ids: rows -> ``ids[row]`` when rows were the
    keys and custom ids exist; the sentinel -> -1 (its distance is already MISSING)."""
    sort_heaps(heap_d, heap_k)
    for q in range(heap_k.shape[0]):
        for j in range(heap_k.shape[1]):
            key = heap_k[q, j]
            if key == SENTINEL_KEY:
                heap_k[q, j] = -1
            elif by_position and ids.shape[0]:
                heap_k[q, j] = ids[key]


@njit(**_JIT)
def merge_heaps(part_d, part_k, out_d, out_k, ids, by_position):
    """Merge per-chunk heaps ``(n_parts, nq, k)`` into finished ``(nq, k)`` results."""
    for q in range(out_d.shape[0]):
        for part in range(part_d.shape[0]):
            for j in range(part_d.shape[2]):
                d, key = part_d[part, q, j], part_k[part, q, j]
                if _greater(out_d[q, 0], out_k[q, 0], d, key):
                    heap_replace_top(out_d[q], out_k[q], d, key)
    finish_heaps(out_d, out_k, ids, by_position)


# --- flat scan, one compiled kernel per code width ----------------------------------------
#: rows whose distances are computed in one vectorised sweep before any is looked at
CHUNK_ROWS = 256
#: database bytes every query of a batch scans before the next block is read (stays in L2)
BLOCK_BYTES = 1 << 17


def _make_load(bits: int):
    """An intrinsic: little-endian ``bits``-bit load from a 1-D ``uint8`` array at any byte offset."""
    result_type = getattr(types, f"uint{bits}")

    @intrinsic
    def load(typingctx, data, offset):
        if not (isinstance(data, types.Array) and data.dtype == types.uint8 and isinstance(offset, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            start = context.cast(builder, args[1], signature.args[1], types.intp)
            pointer = builder.bitcast(builder.gep(array.data, [start]), ir.IntType(bits).as_pointer())
            return builder.load(pointer, align=1)

        return result_type(data, offset), codegen

    return load


load_u32 = _make_load(32)
load_u16 = _make_load(16)


#: widths (in bytes) below this, and whole-word widths, get a kernel of their own; other
#: rows share one kernel per (word count mod 4, tail or not), looping over four-word groups
_OWN_KERNEL_BYTES = 40


@njit(inline="always", **_JIT)
def chunk_distances(q, db, n_bytes, n_words, tail, groups, start, count, dist):
    """``dist[:count]`` = distances of rows ``start .. start + count`` to query words ``q``.

    The callers are compiled per width class (:func:`flat_scans`), so everything but
    ``groups`` (and, for rows of 40 bytes or more, ``n_bytes``) is a constant there: the
    word loop unrolls, the tail tests vanish and the loop over rows is one branch-free
    sweep that LLVM vectorises.

    - rows under 8 bytes (``n_words == 0``): the ``tail`` bytes as a 4-, 2- and 1-byte
      load (those whose bit is set in ``tail``), so no load reads past the row;
    - longer rows: ``4 * groups + n_words`` 8-byte words, then, when ``tail``, the last
      8 bytes of the row shifted right so only its ``n_bytes % 8`` tail bytes remain.
    """
    base = start * n_bytes
    if n_words == 0 and groups == 0:
        q_tail = q[0]
        at2 = tail & 4
        at1 = at2 + (tail & 2)
        q4 = np.uint32(q_tail & np.uint64(0xFFFFFFFF))
        q2 = np.uint16((q_tail >> np.uint64(8 * (tail & 4))) & np.uint64(0xFFFF))
        q1 = np.uint8((q_tail >> np.uint64(8 * ((tail & 4) + (tail & 2)))) & np.uint64(0xFF))
        for i in range(count):
            o = base + i * n_bytes
            d = np.int32(0)
            if tail & 4:
                d += np.int32(popcount(np.uint32(q4 ^ load_u32(db, o))))
            if tail & 2:
                d += np.int32(popcount(np.uint16(q2 ^ load_u16(db, o + at2))))
            if tail & 1:
                d += np.int32(popcount(np.uint8(q1 ^ db[o + at1])))
            dist[i] = d
        return
    first = 4 * groups
    full = first + n_words
    q_tail = q[full] if tail else np.uint64(0)
    tail_shift = np.uint64(8 * (8 - (n_bytes & 7)))
    for i in range(count):
        o = base + i * n_bytes
        d = np.int32(0)
        for g in range(groups):
            p = o + 32 * g
            w = 4 * g
            d += np.int32(
                popcount(q[w] ^ load_u64(db, p))
                + popcount(q[w + 1] ^ load_u64(db, p + 8))
                + popcount(q[w + 2] ^ load_u64(db, p + 16))
                + popcount(q[w + 3] ^ load_u64(db, p + 24))
            )
        for w in range(n_words):
            d += np.int32(popcount(q[first + w] ^ load_u64(db, o + 8 * (first + w))))
        if tail:
            d += np.int32(popcount(q_tail ^ (load_u64(db, o + n_bytes - 8) >> tail_shift)))
        dist[i] = d


@njit(inline="always", **_JIT)
def chunk_distances_pair(q, p, db, n_bytes, n_words, tail, groups, start, count, dist_q, dist_p):
    """:func:`chunk_distances` for two queries at once (rows of 8 bytes or more): each row
    is loaded (and, in the vectorised loop, de-interleaved) once for both."""
    base = start * n_bytes
    first = 4 * groups
    full = first + n_words
    q_tail = q[full] if tail else np.uint64(0)
    p_tail = p[full] if tail else np.uint64(0)
    tail_shift = np.uint64(8 * (8 - (n_bytes & 7)))
    for i in range(count):
        o = base + i * n_bytes
        dq = np.int32(0)
        dp = np.int32(0)
        for g in range(groups):
            at = o + 32 * g
            w = 4 * g
            r0, r1, r2, r3 = load_u64(db, at), load_u64(db, at + 8), load_u64(db, at + 16), load_u64(db, at + 24)
            dq += np.int32(popcount(q[w] ^ r0) + popcount(q[w + 1] ^ r1) + popcount(q[w + 2] ^ r2) + popcount(q[w + 3] ^ r3))
            dp += np.int32(popcount(p[w] ^ r0) + popcount(p[w + 1] ^ r1) + popcount(p[w + 2] ^ r2) + popcount(p[w + 3] ^ r3))
        for w in range(n_words):
            row = load_u64(db, o + 8 * (first + w))
            dq += np.int32(popcount(q[first + w] ^ row))
            dp += np.int32(popcount(p[first + w] ^ row))
        if tail:
            row = load_u64(db, o + n_bytes - 8) >> tail_shift
            dq += np.int32(popcount(q_tail ^ row))
            dp += np.int32(popcount(p_tail ^ row))
        dist_q[i] = dq
        dist_p[i] = dp


@njit(inline="always", **_JIT)
def _smallest(dist, count):
    smallest = dist[0]
    for i in range(1, count):
        smallest = min(smallest, dist[i])
    return smallest


@njit(inline="always", **_JIT)
def _offer_chunk(dist, count, chunk_start, ids, by_position, heap_d, heap_k):
    """Offer a chunk of computed distances; a chunk whose smallest distance cannot enter
    the heap (the common case) costs one vectorised min.

    With keys by position a row at the heap's worst distance never enters (every key
    in the heap is an earlier row), so the test is strict; custom ids compare by id.
    """
    worst = heap_d[0]
    smallest = _smallest(dist, count)
    if by_position:
        if smallest < worst:
            for i in range(count):
                if dist[i] < worst:
                    worst = offer(heap_d, heap_k, dist[i], chunk_start + i, ids, by_position)
    elif smallest <= worst:
        for i in range(count):
            if dist[i] <= worst:
                worst = offer(heap_d, heap_k, dist[i], chunk_start + i, ids, by_position)


@njit(inline="always", **_JIT)
def _grow(array, size):
    if size < array.shape[0]:
        return array
    bigger = np.empty(max(2 * array.shape[0], size + 1), dtype=array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


@njit(**_JIT)
def _collect(dist, count, radius, q, chunk_start, found_q, found_d, found_p, n_found):
    """Append the rows of a chunk within ``radius`` (the buffers have room for all)."""
    for i in range(count):
        if dist[i] <= radius:
            found_q[n_found] = q
            found_d[n_found] = dist[i]
            found_p[n_found] = chunk_start + i
            n_found += 1
    return n_found


def _make_flat_scans(n_bytes: int, n_words: int, tail: int, groups: int):
    """Compile :func:`knn_scan` and :func:`range_scan` for one width class (see
    :func:`flat_scans`).

    They are closures over the class, so numba compiles (and caches on disk, keyed by
    the closure's values) one machine-code version per class in which the row layout
    is a constant.
    """
    fixed_bytes = n_bytes  # 0: the row length is an argument (rows of 40 bytes or more)
    fixed_groups = groups  # -1: the group count is an argument
    PAIRED = n_words > 0 or groups != 0  # rows of 8 bytes or more scan queries in pairs

    @njit(**_JIT)
    def knn_scan(qwords, db, row_bytes, start, stop, ids, by_position, heap_d, heap_k, finish):
        """Offer rows ``[start, stop)`` to the heaps of every query (then
        :func:`finish_heaps` them when ``finish``).

        The rows are visited in cache-sized blocks and every query scans a block
        before the next block is read, so a batch reads the database from memory
        once instead of once per query.
        """
        nq = qwords.shape[0]
        n_bytes = fixed_bytes if fixed_bytes else row_bytes
        groups = fixed_groups if fixed_groups >= 0 else (n_bytes >> 5)
        block = max(CHUNK_ROWS, BLOCK_BYTES // n_bytes // CHUNK_ROWS * CHUNK_ROWS)
        dist = np.empty(CHUNK_ROWS, dtype=np.int32)
        dist_p = np.empty(CHUNK_ROWS, dtype=np.int32)
        for block_start in range(start, stop, block):
            block_stop = min(block_start + block, stop)
            q = 0
            while q < nq:
                if PAIRED and q + 1 < nq:  # two queries share every row load
                    for chunk_start in range(block_start, block_stop, CHUNK_ROWS):
                        count = min(CHUNK_ROWS, block_stop - chunk_start)
                        chunk_distances_pair(
                            qwords[q], qwords[q + 1], db, n_bytes, n_words, tail, groups, chunk_start, count, dist, dist_p
                        )
                        _offer_chunk(dist, count, chunk_start, ids, by_position, heap_d[q], heap_k[q])
                        _offer_chunk(dist_p, count, chunk_start, ids, by_position, heap_d[q + 1], heap_k[q + 1])
                    q += 2
                    continue
                qw = qwords[q]
                hd = heap_d[q]
                hk = heap_k[q]
                for chunk_start in range(block_start, block_stop, CHUNK_ROWS):
                    count = min(CHUNK_ROWS, block_stop - chunk_start)
                    chunk_distances(qw, db, n_bytes, n_words, tail, groups, chunk_start, count, dist)
                    _offer_chunk(dist, count, chunk_start, ids, by_position, hd, hk)
                q += 1
        if finish:
            finish_heaps(heap_d, heap_k, ids, by_position)

    @njit(**_JIT)
    def range_scan(qwords, db, row_bytes, start, stop, radius):
        """All rows in ``[start, stop)`` within ``radius`` of each query.

        Returns ``(counts (nq,), distances, positions)`` grouped by query, positions ascending.
        """
        nq = qwords.shape[0]
        found_q = np.empty(1024, dtype=np.int32)
        found_d = np.empty(1024, dtype=np.int32)
        found_p = np.empty(1024, dtype=np.int64)
        n_found = 0
        n_bytes = fixed_bytes if fixed_bytes else row_bytes
        groups = fixed_groups if fixed_groups >= 0 else (n_bytes >> 5)
        block = max(CHUNK_ROWS, BLOCK_BYTES // n_bytes // CHUNK_ROWS * CHUNK_ROWS)
        dist = np.empty(CHUNK_ROWS, dtype=np.int32)
        for block_start in range(start, stop, block):
            block_stop = min(block_start + block, stop)
            for q in range(nq):
                qw = qwords[q]
                for chunk_start in range(block_start, block_stop, CHUNK_ROWS):
                    count = min(CHUNK_ROWS, block_stop - chunk_start)
                    chunk_distances(qw, db, n_bytes, n_words, tail, groups, chunk_start, count, dist)
                    if _smallest(dist, count) > radius:
                        continue
                    if n_found + count > found_q.shape[0]:  # room for the whole chunk
                        found_q = _grow(found_q, n_found + count)
                        found_d = _grow(found_d, n_found + count)
                        found_p = _grow(found_p, n_found + count)
                    n_found = _collect(dist, count, radius, q, chunk_start, found_q, found_d, found_p, n_found)
        # stable counting sort by query: blocks were visited in order, so positions stay ascending
        counts = np.zeros(nq, dtype=np.int64)
        for j in range(n_found):
            counts[found_q[j]] += 1
        cursor = np.zeros(nq, dtype=np.int64)
        total = 0
        for q in range(nq):
            cursor[q] = total
            total += counts[q]
        out_d = np.empty(n_found, dtype=np.int32)
        out_p = np.empty(n_found, dtype=np.int64)
        for j in range(n_found):
            q = found_q[j]
            out_d[cursor[q]] = found_d[j]
            out_p[cursor[q]] = found_p[j]
            cursor[q] += 1
        return counts, out_d, out_p

    return knn_scan, range_scan


_FLAT_SCANS: dict[tuple, tuple] = {}
_FLAT_SCANS_LOCK = threading.Lock()


def flat_kernel_class(n_bytes: int) -> tuple[int, int, int, int]:
    """``(fixed n_bytes or 0, n_words, tail, fixed groups or -1)``: the compile-time constants
    of the kernels for rows of ``n_bytes`` bytes.

    Rows under 40 bytes (320 bits) and rows of whole words get kernels of their own;
    other long rows share one kernel per (word count mod 4, tail or not), with the row
    length and the number of four-word groups as arguments (59 kernels cover every
    width from 8 to 1024 bits).
    """
    n_words, tail = n_bytes >> 3, n_bytes & 7
    if n_bytes < _OWN_KERNEL_BYTES or not tail:
        return n_bytes, n_words, tail, 0
    return 0, n_words & 3, 1 if tail else 0, -1


def flat_scans(n_bytes: int) -> tuple:
    """``(knn_scan, range_scan)`` for codes of ``n_bytes`` bytes (each kernel class compiled once).

    Both take the row length as their third argument.
    """
    key = flat_kernel_class(n_bytes)
    scans = _FLAT_SCANS.get(key)
    if scans is None:
        with _FLAT_SCANS_LOCK:
            scans = _FLAT_SCANS.get(key)
            if scans is None:
                fixed_bytes, n_words, tail, groups = key
                scans = _FLAT_SCANS[key] = _make_flat_scans(fixed_bytes, n_words, tail, groups)
    return scans


@njit(**_JIT)
def sort_segments(lims, distances, keys, radius):
    """Sort each CSR segment by ``(distance, key)`` in place (distances are ``<= radius``)."""
    counts = np.zeros(radius + 2, dtype=np.int64)
    for q in range(lims.shape[0] - 1):
        lo, hi = lims[q], lims[q + 1]
        if hi - lo < 2:
            continue
        seg_d = distances[lo:hi].copy()
        seg_k = keys[lo:hi].copy()
        order = np.argsort(seg_k, kind="mergesort")
        counts[:] = 0
        for j in range(hi - lo):
            counts[seg_d[j] + 1] += 1
        for r in range(1, radius + 2):
            counts[r] += counts[r - 1]
        for j in order:  # stable counting sort by distance over the key order
            slot = lo + counts[seg_d[j]]
            counts[seg_d[j]] += 1
            distances[slot] = seg_d[j]
            keys[slot] = seg_k[j]


@njit(**_JIT)
def compact_rows(db, n_bytes, keep):
    """Move the kept rows of the flat buffer to its front, in order; return how many."""
    n_kept = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            if n_kept != i:
                db[n_kept * n_bytes : (n_kept + 1) * n_bytes] = db[i * n_bytes : (i + 1) * n_bytes]
            n_kept += 1
    return n_kept


# --- substring tables (multi-index hashing, hash table) ---------------------------------
@intrinsic
def trailing_zeros(typingctx, value):
    """Count of trailing zero bits of a non-zero integer (one ``tzcnt`` instruction)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return value(value), codegen


@njit(inline="always", **_JIT)
def substring(data, offset, bit_start, n_bits):
    """Bits ``[bit_start, bit_start + n_bits)`` (``n_bits <= 56``) of the row at byte ``offset``."""
    first = bit_start >> 3
    shift = bit_start & 7
    n_read = (shift + n_bits + 7) >> 3
    value = np.uint64(0)
    for b in range(n_read):
        value |= np.uint64(data[offset + first + b]) << np.uint64(8 * b)
    return np.int64((value >> np.uint64(shift)) & np.uint64((1 << n_bits) - 1))


@njit(**_JIT)
def build_entry_table(entry_codes, n_bytes, bit_start, n_bits, offsets, slots, slot_codes, bitmap):
    """Bucket the distinct codes ("entries") by substring value.

    Slots ``offsets[v] : offsets[v + 1]`` hold the entries whose substring is ``v``,
    ascending: ``slots[p]`` is the entry and ``slot_codes[p * n_bytes:]`` a copy of its
    code, so the codes of a bucket are verified from one contiguous run of memory.
    ``bitmap`` gets bit ``v`` set for every non-empty bucket (a probe of an empty one
    then reads one cached word instead of two offsets).
    """
    n_entries = entry_codes.shape[0] // n_bytes
    keys = np.empty(n_entries, dtype=np.uint32)
    offsets[:] = 0
    for e in range(n_entries):
        key = substring(entry_codes, e * n_bytes, bit_start, n_bits)
        keys[e] = key
        offsets[key + 1] += 1
    for v in range(1, offsets.shape[0]):
        offsets[v] += offsets[v - 1]
    cursor = offsets[:-1].astype(np.int64)
    for e in range(n_entries):
        p = cursor[keys[e]]
        cursor[keys[e]] += 1
        slots[p] = e
        slot_codes[p * n_bytes : (p + 1) * n_bytes] = entry_codes[e * n_bytes : (e + 1) * n_bytes]
    _fill_bitmap(offsets, bitmap)


@njit(inline="always", **_JIT)
def _fill_bitmap(offsets, bitmap):
    bitmap[:] = 0
    for v in range(offsets.shape[0] - 1):
        if offsets[v + 1] > offsets[v]:
            bitmap[v >> 6] |= np.uint64(1) << np.uint64(v & 63)


@njit(**_JIT)
def extend_entry_table(
    new_codes, n_bytes, first_entry, bit_start, n_bits, old_offsets, old_slots, old_slot_codes,
    offsets, slots, slot_codes, bitmap,
):  # fmt: skip
    """Add entries ``first_entry, first_entry + 1, ...`` (codes ``new_codes``) to a table
    built by :func:`build_entry_table`: one linear pass, no sort; every bucket keeps
    its entries ascending (the new ones come last)."""
    n_values = offsets.shape[0] - 1
    n_new = new_codes.shape[0] // n_bytes
    added = np.zeros(n_values + 1, dtype=np.int64)
    keys = np.empty(n_new, dtype=np.uint32)
    for i in range(n_new):
        key = substring(new_codes, i * n_bytes, bit_start, n_bits)
        keys[i] = key
        added[key + 1] += 1
    for v in range(1, n_values + 1):
        added[v] += added[v - 1]
    for v in range(n_values + 1):
        offsets[v] = old_offsets[v] + added[v]
    cursor = np.empty(n_values, dtype=np.int64)
    for v in range(n_values):
        lo, hi = old_offsets[v], old_offsets[v + 1]
        dst = offsets[v]
        slots[dst : dst + hi - lo] = old_slots[lo:hi]
        slot_codes[dst * n_bytes : (dst + hi - lo) * n_bytes] = old_slot_codes[lo * n_bytes : hi * n_bytes]
        cursor[v] = dst + hi - lo
    for i in range(n_new):
        p = cursor[keys[i]]
        cursor[keys[i]] += 1
        slots[p] = first_entry + i
        slot_codes[p * n_bytes : (p + 1) * n_bytes] = new_codes[i * n_bytes : (i + 1) * n_bytes]
    _fill_bitmap(offsets, bitmap)


@njit(**_JIT)
def mih_cost_estimate(queries, kth, sample, n_bytes, starts, lengths, binomials, scale):
    """Mean ``(probes, candidates)`` per query that :func:`mih_knn` would spend with these
    substrings, for queries whose k-th distance is ``kth``.

    The k-NN search runs step (r, table j) until ``m * r + j >= kth``, probing every
    substring value within ``r`` of the query's; the entries it reads there are those
    whose substring is that close, counted in ``sample`` (a subsample of the entries)
    and multiplied by ``scale`` (entries per sample row).
    """
    m = starts.shape[0]
    n_sample = sample.shape[0] // n_bytes
    probes = 0.0
    candidates = 0.0
    for q in range(queries.shape[0]):
        d = kth[q]
        r_last = d // m
        j_last = d - m * r_last
        for j in range(m):
            radius = min(r_last if j <= j_last else r_last - 1, lengths[j])
            if radius < 0:
                continue
            for r in range(radius + 1):
                probes += binomials[lengths[j], r]
            value = substring(queries[q], 0, starts[j], lengths[j])
            close = 0
            for i in range(n_sample):
                if popcount(value ^ substring(sample, i * n_bytes, starts[j], lengths[j])) <= radius:
                    close += 1
            candidates += close * scale
    nq = max(1, queries.shape[0])
    return probes / nq, candidates / nq


@njit(inline="always", **_JIT)
def next_mask(mask):
    """Next larger integer with the same number of set bits (Gosper's hack, the division
    by the lowest set bit done as a shift)."""
    lowest = mask & -mask
    ripple = mask + lowest
    return (((ripple ^ mask) >> 2) >> trailing_zeros(mask)) | ripple


@njit(inline="always", **_JIT)
def _first_visit(qsub, codes, offset, starts, lengths, radius, table):
    """True when the code at ``offset`` is first met in ``table`` at substring ``radius``.

    Tables are searched in the order (radius 0: table 0, 1, ..., radius 1: table 0, ...),
    so a code is first met at the smallest (substring distance, table) pair.
    """
    for j in range(starts.shape[0]):
        if j != table:
            sd = popcount(qsub[j] ^ substring(codes, offset, starts[j], lengths[j]))
            if sd < radius or (sd == radius and j < table):
                return False
    return True


@njit(inline="always", **_JIT)
def _offer_entry(hd, hk, d, entry, entry_offsets, entry_rows, ids, by_position):
    """Offer every row holding an entry's code at distance ``d``; return the new worst
    distance. The rows are ascending, so with keys by position the first row that does
    not enter ends the loop."""
    for t in range(entry_offsets[entry], entry_offsets[entry + 1]):
        pos = entry_rows[t]
        key = np.int64(pos) if by_position else ids[pos]
        if d < hd[0] or (d == hd[0] and key < hk[0]):
            heap_replace_top(hd, hk, d, key)
        elif by_position:
            break
    return hd[0]


@njit(inline="always", **_JIT)
def _occupied(bitmap, base, key):
    return (bitmap[base + (key >> 6)] >> np.uint64(key & 63)) & np.uint64(1)


@njit(**_JIT)
def mih_knn(
    qbytes, qwords, n_bytes, starts, lengths, offsets, offset_base, bitmap, bitmap_base, slots, slot_codes,
    entry_offsets, entry_rows, ids, by_position, max_cost, probe_cost, heap_d, heap_k, aborted, work,
):  # fmt: skip
    """Exact k-NN by multi-index hashing (Norouzi, Punjani & Fleet, 2012) over the
    distinct codes (entries) of :func:`build_entry_table`.

    Substring radius ``r`` grows; after table ``j`` at radius ``r`` every unseen code
    differs by ``> r`` in tables ``0..j`` and by ``>= r`` in the others, so its distance
    is at least ``m * r + j + 1`` and the search stops once the k-th distance is below
    that bound. A code found at distance ``d`` offers all its rows (ascending) to the
    heap. A query whose work (probes * probe_cost + candidates) passes ``max_cost`` is
    flagged in ``aborted`` for a flat scan instead. ``work[q]`` receives (probes,
    candidates) of query q.
    """
    m = starts.shape[0]
    max_length = lengths.max()
    qsub = np.empty(m, dtype=np.int64)
    for q in range(qbytes.shape[0]):
        hd = heap_d[q]
        hk = heap_k[q]
        qw = qwords[q]
        for j in range(m):
            qsub[j] = substring(qbytes[q], 0, starts[j], lengths[j])
        probes = 0
        candidates = 0
        worst = hd[0]
        done = False
        radius = 0
        while not done and radius <= max_length:
            for j in range(m):
                if radius <= lengths[j]:
                    base = offset_base[j]
                    bits_base = bitmap_base[j]
                    codes_j = slot_codes[j]
                    slots_j = slots[j]
                    mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
                    limit = np.int64(1) << lengths[j]
                    while mask < limit:
                        key = qsub[j] ^ mask
                        probes += 1
                        if _occupied(bitmap, bits_base, key):
                            lo, hi = offsets[base + key], offsets[base + key + 1]
                            candidates += hi - lo
                            for p in range(lo, hi):
                                d = row_distance(qw, codes_j, p * n_bytes, n_bytes)
                                if d <= worst and _first_visit(qsub, codes_j, p * n_bytes, starts, lengths, radius, j):
                                    worst = _offer_entry(hd, hk, d, slots_j[p], entry_offsets, entry_rows, ids, by_position)
                        if probes * probe_cost + candidates > max_cost:
                            aborted[q] = True
                            done = True
                            break
                        if radius == 0:
                            break
                        mask = next_mask(mask)
                    if done:
                        break
                if worst < m * radius + j + 1:
                    done = True
                    break
            radius += 1
        work[q, 0] = probes
        work[q, 1] = candidates


@njit(**_JIT)
def mih_range(
    qbytes, qwords, n_bytes, starts, lengths, offsets, offset_base, bitmap, bitmap_base, slots, slot_codes,
    entry_offsets, entry_rows, radius_max, max_cost, probe_cost, aborted,
):  # fmt: skip
    """Exact range search by multi-index hashing: step (r, table j) is searched while
    ``m * r + j <= radius_max``, the lower bound of codes first met there; every row
    of a code within ``radius_max`` is returned.

    The cost of a query (probes and bucket sizes) is added up before any code is
    read; over ``max_cost`` the query is flagged in ``aborted`` and skipped.
    Returns ``(counts, distances, rows)`` grouped by query.
    """
    m = starts.shape[0]
    nq = qbytes.shape[0]
    qsub = np.empty(m, dtype=np.int64)
    counts = np.zeros(nq, dtype=np.int64)
    out_d = np.empty(1024, dtype=np.int32)
    out_p = np.empty(1024, dtype=np.int64)
    n_out = 0
    for q in range(nq):
        qw = qwords[q]
        for j in range(m):
            qsub[j] = substring(qbytes[q], 0, starts[j], lengths[j])
        for verify in range(2):  # pass 0 adds up the cost, pass 1 reads the codes
            cost = 0.0
            radius = 0
            while m * radius <= radius_max and cost <= max_cost:
                for j in range(m):
                    if m * radius + j > radius_max or radius > lengths[j]:
                        continue
                    base = offset_base[j]
                    bits_base = bitmap_base[j]
                    codes_j = slot_codes[j]
                    slots_j = slots[j]
                    mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
                    limit = np.int64(1) << lengths[j]
                    while mask < limit and cost <= max_cost:
                        key = qsub[j] ^ mask
                        cost += probe_cost
                        if _occupied(bitmap, bits_base, key):
                            lo, hi = offsets[base + key], offsets[base + key + 1]
                            cost += hi - lo
                            if verify:
                                for p in range(lo, hi):
                                    d = row_distance(qw, codes_j, p * n_bytes, n_bytes)
                                    if d <= radius_max and _first_visit(qsub, codes_j, p * n_bytes, starts, lengths, radius, j):
                                        entry = slots_j[p]
                                        for t in range(entry_offsets[entry], entry_offsets[entry + 1]):
                                            out_d = _grow(out_d, n_out)
                                            out_p = _grow(out_p, n_out)
                                            out_d[n_out] = d
                                            out_p[n_out] = entry_rows[t]
                                            n_out += 1
                                            counts[q] += 1
                        if radius == 0:
                            break
                        mask = next_mask(mask)
                radius += 1
            if cost > max_cost:
                aborted[q] = True
                break
    return counts, out_d[:n_out], out_p[:n_out]


# --- hash table over whole short codes ---------------------------------------------------
@njit(inline="always", **_JIT)
def _bucket_of(keys, key):
    """Index of ``key`` in the sorted unique ``keys``, or -1."""
    u = np.searchsorted(keys, key)
    if u < keys.shape[0] and keys[u] == key:
        return u
    return -1


@njit(**_JIT)
def table_knn(qbytes, n_bits, keys, bucket_offsets, positions, n_probes, ids, by_position, heap_d, heap_k):
    """Exact k-NN over buckets of identical codes: probe every code at radius 0, 1, ...
    until the k-th distance is within the radius; once a radius has more codes
    (``n_probes[r]``) than there are buckets, compare the query with every bucket instead."""
    n_keys = keys.shape[0]
    for q in range(qbytes.shape[0]):
        hd = heap_d[q]
        hk = heap_k[q]
        qkey = substring(qbytes[q], 0, 0, n_bits)
        worst = hd[0]
        for radius in range(n_bits + 1):
            if n_probes[radius] > n_keys:
                for u in range(n_keys):
                    d = popcount(keys[u] ^ qkey)
                    if d >= radius and d <= worst:
                        for p in range(bucket_offsets[u], bucket_offsets[u + 1]):
                            worst = offer(hd, hk, d, positions[p], ids, by_position)
                break
            mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
            limit = np.int64(1) << n_bits
            while mask < limit:
                u = _bucket_of(keys, qkey ^ mask)
                if u >= 0 and radius <= worst:
                    for p in range(bucket_offsets[u], bucket_offsets[u + 1]):
                        worst = offer(hd, hk, radius, positions[p], ids, by_position)
                if radius == 0:
                    break
                mask = next_mask(mask)
            if worst <= radius:  # every unseen code is farther than the radius
                break


@njit(inline="always", **_JIT)
def _emit_bucket(out_d, out_p, n_out, d, positions, lo, hi):
    """Append the rows ``positions[lo:hi]`` at distance ``d``."""
    for p in range(lo, hi):
        out_d = _grow(out_d, n_out)
        out_p = _grow(out_p, n_out)
        out_d[n_out] = d
        out_p[n_out] = positions[p]
        n_out += 1
    return out_d, out_p, n_out


@njit(**_JIT)
def table_range(qbytes, n_bits, keys, bucket_offsets, positions, radius_max, enumerate_codes):
    """All rows within ``radius_max``: probe every code in the ball when ``enumerate_codes``,
    else compare with every bucket. Returns ``(counts, distances, rows)`` grouped by query."""
    nq = qbytes.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    out_d = np.empty(1024, dtype=np.int32)
    out_p = np.empty(1024, dtype=np.int64)
    n_out = 0
    limit = np.int64(1) << n_bits
    for q in range(nq):
        start = n_out
        qkey = substring(qbytes[q], 0, 0, n_bits)
        if enumerate_codes:
            for radius in range(radius_max + 1):
                mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
                while mask < limit:
                    u = _bucket_of(keys, qkey ^ mask)
                    if u >= 0:
                        out_d, out_p, n_out = _emit_bucket(
                            out_d, out_p, n_out, radius, positions, bucket_offsets[u], bucket_offsets[u + 1]
                        )
                    if radius == 0:
                        break
                    mask = next_mask(mask)
        else:
            for u in range(keys.shape[0]):
                d = popcount(keys[u] ^ qkey)
                if d <= radius_max:
                    out_d, out_p, n_out = _emit_bucket(out_d, out_p, n_out, d, positions, bucket_offsets[u], bucket_offsets[u + 1])
        counts[q] = n_out - start
    return counts, out_d[:n_out], out_p[:n_out]
