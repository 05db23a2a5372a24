"""Binary codes: the one module that packs and unpacks bits.

Layout (shared with faiss binary indexes): a code of ``n_bits`` bits is a row
of ``n_bits // 8`` ``uint8`` values and bit ``j`` is
``(code[j // 8] >> (j % 8)) & 1`` -- little-endian within each byte.

>>> import numpy as np
>>> codes = pack_bits(np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]))
>>> codes
array([[1, 2]], dtype=uint8)
>>> unpack_bits(codes).tolist()
[[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]
>>> hamming_distances(codes, np.array([[0, 0], [1, 2]], dtype=np.uint8)).tolist()
[[2, 0]]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hashlearn._validation import check_n_bits, check_positive_int

#: distance reported for a padded (missing) result
MISSING_DISTANCE = np.iinfo(np.int32).max

#: popcount of every byte value
POPCOUNT_TABLE = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


class SearchResult(NamedTuple):
    """k-NN result: ``distances`` int32 ``(nq, k)`` and ``ids`` int64 ``(nq, k)``.

    Rows are sorted by (distance, id); missing results have id ``-1`` and
    distance ``MISSING_DISTANCE`` (the int32 maximum).
    """

    distances: np.ndarray
    ids: np.ndarray


def pack_bits(bits) -> np.ndarray:
    """Pack a ``(n, n_bits)`` array of 0/1 (or bool) into ``uint8`` codes ``(n, n_bits // 8)``."""
    if hasattr(bits, "detach"):
        bits = bits.detach().cpu().numpy()
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"bits must be a 2-D array of shape (n, n_bits), got shape {bits.shape}.")
    check_n_bits(bits.shape[1], name="bits.shape[1] (n_bits)")
    if bits.dtype != bool:
        if not np.isin(bits, (0, 1)).all():
            raise ValueError("bits must contain only 0 and 1 (or be boolean); use sign_to_codes for continuous outputs.")
        bits = bits.astype(bool)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_bits(codes, n_bits: int | None = None) -> np.ndarray:
    """Unpack ``uint8`` codes into a ``(n, n_bits)`` ``uint8`` array of 0/1."""
    codes = validate_codes(codes, n_bits=n_bits)
    return np.unpackbits(codes, axis=1, bitorder="little")


def sign_to_codes(outputs) -> np.ndarray:
    """Continuous hash outputs in ``[-1, 1]`` -> packed codes; the bit is 1 where the output is > 0."""
    if hasattr(outputs, "detach"):
        outputs = outputs.detach().cpu().numpy()
    outputs = np.asarray(outputs)
    if outputs.ndim != 2:
        raise ValueError(f"outputs must be a 2-D array of shape (n, n_bits), got shape {outputs.shape}.")
    if not np.issubdtype(outputs.dtype, np.number):
        raise TypeError(f"outputs must be numeric, got dtype {outputs.dtype}.")
    check_n_bits(outputs.shape[1], name="outputs.shape[1] (n_bits)")
    return np.packbits(outputs > 0, axis=1, bitorder="little")


def codes_to_pm1(codes, n_bits: int | None = None, dtype=np.float32) -> np.ndarray:
    """Packed codes -> ``(n, n_bits)`` array of -1/+1."""
    return unpack_bits(codes, n_bits).astype(dtype) * 2 - 1


def validate_codes(codes, n_bits: int | None = None, name: str = "codes") -> np.ndarray:
    """Check that ``codes`` are packed codes; return them C-contiguous.

    Refuses to guess a cast: a dtype other than ``uint8`` is a ``TypeError``.
    """
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 array of shape (n, n_bits // 8), got {type(codes).__name__}.")
    if codes.dtype != np.uint8:
        raise TypeError(
            f"{name} must have dtype uint8 (packed bits, 8 per byte), got {codes.dtype}. "
            "Use hashlearn.codes.pack_bits for 0/1 arrays or sign_to_codes for continuous outputs."
        )
    if codes.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, n_bits // 8), got shape {codes.shape}.")
    if n_bits is not None:
        n_bits = check_n_bits(n_bits)
        if codes.shape[1] * 8 != n_bits:
            raise ValueError(
                f"{name} must have {n_bits // 8} bytes per code for n_bits={n_bits}, got {codes.shape[1]} "
                f"({codes.shape[1] * 8} bits)."
            )
    return np.ascontiguousarray(codes)


def popcount(codes) -> np.ndarray:
    """Number of set bits per code (reference implementation)."""
    codes = validate_codes(codes)
    return POPCOUNT_TABLE[codes].sum(axis=1, dtype=np.int32)


def hamming_distances(a, b, *, chunk_size: int = 256) -> np.ndarray:
    """All pairwise Hamming distances, ``int32 (len(a), len(b))`` -- the popcount reference."""
    a = validate_codes(a, name="a")
    b = validate_codes(b, name="b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same code width, got {a.shape[1] * 8} and {b.shape[1] * 8} bits.")
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    for start in range(0, a.shape[0], chunk_size):
        block = a[start : start + chunk_size, None, :] ^ b[None, :, :]
        out[start : start + chunk_size] = POPCOUNT_TABLE[block].sum(axis=2, dtype=np.int32)
    return out


def reference_search(queries, database, k: int, ids=None) -> SearchResult:
    """Slow, obviously correct exact k-NN: sort by (distance, id), pad with id -1.

    Every index is tested against this function. Like every index, it answers at most
    ``min(k, n)`` columns (``k`` beyond the database size allocates nothing); ``k=0``
    (what an index passes on for an empty database) gives ``(nq, 0)``.
    """
    k = check_positive_int(k, "k", minimum=0)
    distances = hamming_distances(queries, database)
    n = distances.shape[1]
    k = min(k, n)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    out_d = np.full((distances.shape[0], k), MISSING_DISTANCE, dtype=np.int32)
    out_i = np.full((distances.shape[0], k), -1, dtype=np.int64)
    for row, dist in enumerate(distances):
        order = np.lexsort((ids, dist))[:k]
        out_d[row, : len(order)] = dist[order]
        out_i[row, : len(order)] = ids[order]
    return SearchResult(out_d, out_i)
