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


# --- flat scan -------------------------------------------------------------------------
#: rows whose distances are computed in one vectorised sweep before any is looked at
CHUNK_ROWS = 256


@njit(inline="always", **_JIT)
def chunk_distances(q, db, n_bytes, start, count, dist):
    """``dist[:count]`` = distances of rows ``start .. start + count`` to query words ``q``.

    A loop without branches, so LLVM vectorises the popcounts (AVX2 byte shuffles);
    64- and 256-bit codes get their own unrolled loop.
    """
    if n_bytes == 8:
        q0 = q[0]
        for i in range(count):
            dist[i] = popcount(q0 ^ load_u64(db, 8 * (start + i)))
    elif n_bytes == 32:
        q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
        for i in range(count):
            o = 32 * (start + i)
            dist[i] = (
                popcount(q0 ^ load_u64(db, o))
                + popcount(q1 ^ load_u64(db, o + 8))
                + popcount(q2 ^ load_u64(db, o + 16))
                + popcount(q3 ^ load_u64(db, o + 24))
            )
    else:
        for i in range(count):
            dist[i] = row_distance(q, db, (start + i) * n_bytes, n_bytes)


@njit(inline="always", **_JIT)
def chunk_distances_pair(q, p, db, n_bytes, start, count, dist_q, dist_p):
    """:func:`chunk_distances` for two queries at once (64- and 256-bit codes): each row
    is loaded once for both, which the 256-bit loop needs to stay ahead of faiss."""
    if n_bytes == 8:
        q0, p0 = q[0], p[0]
        for i in range(count):
            row = load_u64(db, 8 * (start + i))
            dist_q[i] = popcount(q0 ^ row)
            dist_p[i] = popcount(p0 ^ row)
    else:
        q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
        p0, p1, p2, p3 = p[0], p[1], p[2], p[3]
        for i in range(count):
            o = 32 * (start + i)
            w0, w1, w2, w3 = load_u64(db, o), load_u64(db, o + 8), load_u64(db, o + 16), load_u64(db, o + 24)
            dist_q[i] = popcount(q0 ^ w0) + popcount(q1 ^ w1) + popcount(q2 ^ w2) + popcount(q3 ^ w3)
            dist_p[i] = popcount(p0 ^ w0) + popcount(p1 ^ w1) + popcount(p2 ^ w2) + popcount(p3 ^ w3)


@njit(inline="always", **_JIT)
def _offer_chunk(dist, count, chunk_start, ids, by_position, heap_d, heap_k):
    """Offer a chunk of computed distances; a chunk whose smallest distance cannot
    enter the heap (the common case) costs one vectorised min."""
    worst = heap_d[0]
    smallest = dist[0]
    for i in range(1, count):
        smallest = min(smallest, dist[i])
    if smallest <= worst:
        for i in range(count):
            if dist[i] <= worst:
                worst = offer(heap_d, heap_k, dist[i], chunk_start + i, ids, by_position)


@njit(**_JIT)
def _scan_rows(q, db, n_bytes, start, stop, ids, by_position, heap_d, heap_k, dist):
    """Offer rows ``[start, stop)`` to one query's heap, a chunk of distances at a time."""
    for chunk_start in range(start, stop, CHUNK_ROWS):
        count = min(CHUNK_ROWS, stop - chunk_start)
        chunk_distances(q, db, n_bytes, chunk_start, count, dist)
        _offer_chunk(dist, count, chunk_start, ids, by_position, heap_d, heap_k)


@njit(**_JIT)
def _scan_rows_pair(q, p, db, n_bytes, start, stop, ids, by_position, heap_q, keys_q, heap_p, keys_p, dist_q, dist_p):
    """:func:`_scan_rows` for two queries sharing the row loads."""
    for chunk_start in range(start, stop, CHUNK_ROWS):
        count = min(CHUNK_ROWS, stop - chunk_start)
        chunk_distances_pair(q, p, db, n_bytes, chunk_start, count, dist_q, dist_p)
        _offer_chunk(dist_q, count, chunk_start, ids, by_position, heap_q, keys_q)
        _offer_chunk(dist_p, count, chunk_start, ids, by_position, heap_p, keys_p)


@njit(**_JIT)
def knn_scan(qwords, db, n_bytes, start, stop, ids, by_position, heap_d, heap_k, finish):
    """Offer rows ``[start, stop)`` to the heaps of every query (then :func:`finish_heaps`
    them when ``finish``).

    The rows are visited in cache-sized blocks and every query scans a block
    before the next block is read, so a batch reads the database from memory
    once instead of once per query.
    """
    nq = qwords.shape[0]
    block = max(CHUNK_ROWS, (65536 // n_bytes) // CHUNK_ROWS * CHUNK_ROWS)
    dist = np.empty(CHUNK_ROWS, dtype=np.int32)
    dist_p = np.empty(CHUNK_ROWS, dtype=np.int32)
    paired = n_bytes == 8 or n_bytes == 32
    for block_start in range(start, stop, block):
        block_stop = min(block_start + block, stop)
        q = 0
        while q < nq:
            if paired and q + 1 < nq:
                _scan_rows_pair(
                    qwords[q], qwords[q + 1], db, n_bytes, block_start, block_stop, ids, by_position,
                    heap_d[q], heap_k[q], heap_d[q + 1], heap_k[q + 1], dist, dist_p,
                )  # fmt: skip
                q += 2
            else:
                _scan_rows(qwords[q], db, n_bytes, block_start, block_stop, ids, by_position, heap_d[q], heap_k[q], dist)
                q += 1
    if finish:
        finish_heaps(heap_d, heap_k, ids, by_position)


@njit(inline="always", **_JIT)
def _grow(array, size):
    if size < array.shape[0]:
        return array
    bigger = np.empty(2 * array.shape[0], dtype=array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


@njit(**_JIT)
def range_scan(qwords, db, n_bytes, start, stop, radius):
    """All rows in ``[start, stop)`` within ``radius`` of each query.

    Returns ``(counts (nq,), distances, positions)`` grouped by query, positions ascending.
    """
    nq = qwords.shape[0]
    found_q = np.empty(1024, dtype=np.int32)
    found_d = np.empty(1024, dtype=np.int32)
    found_p = np.empty(1024, dtype=np.int64)
    n_found = 0
    dist = np.empty(CHUNK_ROWS, dtype=np.int32)
    block = max(CHUNK_ROWS, (65536 // n_bytes) // CHUNK_ROWS * CHUNK_ROWS)
    for block_start in range(start, stop, block):
        block_stop = min(block_start + block, stop)
        for q in range(nq):
            for chunk_start in range(block_start, block_stop, CHUNK_ROWS):
                count = min(CHUNK_ROWS, block_stop - chunk_start)
                chunk_distances(qwords[q], db, n_bytes, chunk_start, count, dist)
                for i in range(count):
                    if dist[i] <= radius:
                        found_q = _grow(found_q, n_found)
                        found_d = _grow(found_d, n_found)
                        found_p = _grow(found_p, n_found)
                        found_q[n_found] = q
                        found_d[n_found] = dist[i]
                        found_p[n_found] = chunk_start + i
                        n_found += 1
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
def build_table(db, n_bytes, n, bit_start, n_bits, offsets, positions):
    """Bucket the rows by substring value: ``positions[offsets[v]:offsets[v+1]]`` (ascending) hold value ``v``."""
    keys = np.empty(n, dtype=np.uint32)
    offsets[:] = 0
    for i in range(n):
        key = substring(db, i * n_bytes, bit_start, n_bits)
        keys[i] = key
        offsets[key + 1] += 1
    for v in range(1, offsets.shape[0]):
        offsets[v] += offsets[v - 1]
    cursor = offsets[:-1].copy()
    for i in range(n):
        key = keys[i]
        positions[cursor[key]] = i
        cursor[key] += 1


@njit(inline="always", **_JIT)
def next_mask(mask):
    """Next larger integer with the same number of set bits (Gosper's hack)."""
    lowest = mask & -mask
    ripple = mask + lowest
    return (((ripple ^ mask) >> 2) // lowest) | ripple


@njit(inline="always", **_JIT)
def _first_visit(qsub, db, offset, starts, lengths, radius, table):
    """True when the row at ``offset`` is first met in ``table`` at substring ``radius``.

    Tables are searched in the order (radius 0: table 0, 1, ..., radius 1: table 0, ...),
    so a row is first met at the smallest (substring distance, table) pair.
    """
    for j in range(starts.shape[0]):
        if j != table:
            sd = popcount(qsub[j] ^ substring(db, offset, starts[j], lengths[j]))
            if sd < radius or (sd == radius and j < table):
                return False
    return True


@njit(**_JIT)
def mih_knn(
    qbytes, qwords, db, n_bytes, starts, lengths, offsets, offset_base, positions,
    ids, by_position, max_cost, probe_cost, heap_d, heap_k, aborted, work,
):  # fmt: skip
    """Exact k-NN by multi-index hashing (Norouzi, Punjani & Fleet, 2012).

    Substring radius ``r`` grows; after table ``j`` at radius ``r`` every unseen row
    differs by ``> r`` in tables ``0..j`` and by ``>= r`` in the others, so its distance
    is at least ``m * r + j + 1`` and the search stops once the k-th distance is below
    that bound. A query whose work (probes * probe_cost + candidates) passes
    ``max_cost`` row-equivalents is flagged in ``aborted`` for a flat scan instead.
    ``work[q]`` receives (probes, candidates) of query q.
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
        cost = 0.0
        worst = hd[0]
        done = False
        radius = 0
        while not done and radius <= max_length:
            for j in range(m):
                if radius <= lengths[j]:
                    base = offset_base[j]
                    mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
                    limit = np.int64(1) << lengths[j]
                    while mask < limit and cost <= max_cost:
                        key = qsub[j] ^ mask
                        lo, hi = offsets[base + key], offsets[base + key + 1]
                        cost += probe_cost + (hi - lo)
                        work[q, 0] += 1
                        work[q, 1] += hi - lo
                        for p in range(lo, hi):
                            pos = positions[j, p]
                            d = row_distance(qw, db, pos * n_bytes, n_bytes)
                            if d <= worst and _first_visit(qsub, db, pos * n_bytes, starts, lengths, radius, j):
                                worst = offer(hd, hk, d, pos, ids, by_position)
                        if radius == 0:
                            break
                        mask = next_mask(mask)
                    if cost > max_cost:
                        aborted[q] = True
                        done = True
                        break
                if worst < m * radius + j + 1:
                    done = True
                    break
            radius += 1


@njit(**_JIT)
def mih_range(
    qbytes, qwords, db, n_bytes, starts, lengths, offsets, offset_base, positions,
    radius_max, max_cost, probe_cost, aborted,
):  # fmt: skip
    """Exact range search by multi-index hashing: step (r, table j) is searched while
    ``m * r + j <= radius_max``, the lower bound of rows first met there.

    The cost of a query (probes and bucket sizes) is added up before any row is
    read; over ``max_cost`` the query is flagged in ``aborted`` and skipped.
    Returns ``(counts, distances, positions)`` grouped by query.
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
        for verify in range(2):  # pass 0 adds up the cost, pass 1 reads the rows
            cost = 0.0
            radius = 0
            while m * radius <= radius_max:
                for j in range(m):
                    if m * radius + j > radius_max or radius > lengths[j]:
                        continue
                    base = offset_base[j]
                    mask = np.int64(0) if radius == 0 else np.int64((1 << radius) - 1)
                    limit = np.int64(1) << lengths[j]
                    while mask < limit and cost <= max_cost:
                        key = qsub[j] ^ mask
                        lo, hi = offsets[base + key], offsets[base + key + 1]
                        cost += probe_cost + (hi - lo)
                        if verify:
                            for p in range(lo, hi):
                                pos = positions[j, p]
                                d = row_distance(qw, db, pos * n_bytes, n_bytes)
                                if d <= radius_max and _first_visit(qsub, db, pos * n_bytes, starts, lengths, radius, j):
                                    out_d = _grow(out_d, n_out)
                                    out_p = _grow(out_p, n_out)
                                    out_d[n_out] = d
                                    out_p[n_out] = pos
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
