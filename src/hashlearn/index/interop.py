"""Move codes between hashlearn and faiss, usearch and pgvector.

Bit layouts differ between these systems; these functions convert so that bit ``j`` of a
hashlearn code (``(code[j // 8] >> (j % 8)) & 1``, see :mod:`hashlearn.codes`) stays bit
``j`` everywhere:

- **faiss** binary indexes use the same layout: codes move without conversion.
- **usearch** ``b1`` / ``b1x8`` vectors are MSB-first within each byte (usearch's
  ``cast_gt<..., b1x8_t>`` sets ``128 >> (j % 8)`` for dimension ``j``, the same order
  as ``np.packbits``'s default), so every byte is bit-reversed.
- **pgvector** ``bit(n)`` values are PostgreSQL bit strings written left to right:
  character ``j`` of ``B'0101...'`` is bit ``j``.

Hamming distances are unchanged by every conversion.

>>> import numpy as np
>>> codes = np.array([[1, 128]], dtype=np.uint8)   # bits 0 and 15 set
>>> codes_to_pgvector_literals(codes)
["B'1000000000000001'"]
>>> codes_to_usearch_b1(codes)
array([[128,   1]], dtype=uint8)
>>> usearch_b1_to_codes(codes_to_usearch_b1(codes))
array([[  1, 128]], dtype=uint8)
"""

from __future__ import annotations

import re

import numpy as np

from hashlearn.codes import pack_bits, unpack_bits, validate_codes
from hashlearn.errors import MissingDependencyError
from hashlearn.index.base import BinaryIndex

#: byte value with its 8 bits in reverse order (LSB-first <-> MSB-first)
REVERSED_BITS = np.array([int(f"{value:08b}"[::-1], 2) for value in range(256)], dtype=np.uint8)
_PG_LITERAL = re.compile(r"^(?:[Bb]')?([01]*)'?$")


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise MissingDependencyError("faiss-cpu", "faiss interop", "pip install 'hashlearn[faiss]'") from error
    return faiss


def codes_and_ids(index) -> tuple[np.ndarray, np.ndarray]:
    """The stored ``(codes, ids)`` of an index that exposes them (Flat, TwoStage, ...)."""
    if not isinstance(index, BinaryIndex):
        raise TypeError(f"index must be a hashlearn BinaryIndex, got {type(index).__name__}.")
    codes, ids = getattr(index, "codes", None), getattr(index, "ids", None)
    if not isinstance(codes, np.ndarray) or not isinstance(ids, np.ndarray):
        raise TypeError(f"{type(index).__name__} does not expose its codes and ids; export a FlatIndex instead.")
    return validate_codes(codes, n_bits=index.n_bits), np.asarray(ids, dtype=np.int64)


def to_faiss(index):
    """A faiss ``IndexBinaryFlat`` with the same codes, wrapped in ``IndexBinaryIDMap`` unless
    the ids are ``0..n-1``. faiss breaks distance ties in its own order, not by ascending id."""
    faiss = _faiss()
    codes, ids = codes_and_ids(index)
    flat = faiss.IndexBinaryFlat(index.n_bits)
    if np.array_equal(ids, np.arange(len(ids))):
        flat.add(codes)
        return flat
    mapped = faiss.IndexBinaryIDMap(flat)
    mapped.add_with_ids(codes, ids)
    return mapped


def from_faiss(faiss_index):
    """A hashlearn ``FlatIndex`` with the codes (and ids) of a faiss ``IndexBinaryFlat`` or
    ``IndexBinaryIDMap`` over one."""
    faiss = _faiss()
    ids = None
    inner = faiss_index
    if isinstance(faiss_index, faiss.IndexBinaryIDMap):
        ids = faiss.vector_to_array(faiss_index.id_map).astype(np.int64)
        inner = faiss.downcast_IndexBinary(faiss_index.index)
    if not isinstance(inner, faiss.IndexBinaryFlat):
        raise TypeError(f"from_faiss reads IndexBinaryFlat or IndexBinaryIDMap(IndexBinaryFlat), got {type(inner).__name__}.")
    codes = faiss.vector_to_array(inner.xb).reshape(inner.ntotal, inner.code_size)
    from hashlearn.index.flat import FlatIndex

    index = FlatIndex(inner.d)
    index.add(np.ascontiguousarray(codes), ids)
    return index


def codes_to_usearch_b1(codes) -> np.ndarray:
    """Packed codes in usearch's ``b1`` (``b1x8``) layout: same bytes, bits MSB-first.

    Use with ``usearch.index.Index(ndim=n_bits, metric="hamming", dtype="b1")``.
    """
    return REVERSED_BITS[validate_codes(codes)]


def usearch_b1_to_codes(vectors) -> np.ndarray:
    """Inverse of :func:`codes_to_usearch_b1`."""
    return REVERSED_BITS[validate_codes(vectors, name="vectors")]


def codes_to_pgvector_literals(codes) -> list[str]:
    """One pgvector ``bit(n_bits)`` literal ``B'0101...'`` per code, character ``j`` = bit ``j``."""
    bits = unpack_bits(codes)
    return ["B'" + row.tobytes().translate(_DIGITS).decode("ascii") + "'" for row in bits]


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def pgvector_literals_to_codes(literals) -> np.ndarray:
    """Inverse of :func:`codes_to_pgvector_literals`; accepts ``B'0101'``, ``'0101'`` or ``0101``."""
    if isinstance(literals, str):
        raise TypeError("literals must be a list of strings, got a single string; wrap it in a list.")
    rows = []
    for position, literal in enumerate(literals):
        match = _PG_LITERAL.match(literal) if isinstance(literal, str) else None
        if not match:
            raise ValueError(f"literals[{position}] must be a bit string like B'0101', got {literal!r:.80}.")
        rows.append(match.group(1))
    if not rows:
        raise ValueError("literals must hold at least one bit string.")
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise ValueError(f"all bit strings must have the same length, got lengths {sorted(lengths)}.")
    bits = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8).reshape(len(rows), -1) - ord("0")
    return pack_bits(bits)
