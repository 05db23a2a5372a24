"""Reader and writer for the IDX format of MNIST-style data sets (raw or gzip-compressed).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, ``ndim``
big-endian uint32 dimension sizes, then the values in big-endian C order.
The reader checks each of these and that the payload has exactly the
announced size, so a truncated download fails loudly instead of yielding
half a data set.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte.gz")
>>> write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
>>> read_idx(path).shape
(2, 3, 4)
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_bytes
from hashlearn.data._streams import MAX_DECOMPRESSED_NBYTES, open_bounded
from hashlearn.errors import CorruptFileError

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: deflate cannot inflate one byte into more than about 1032 (RFC 1951 blocks of maximal matches)
_MAX_DEFLATE_RATIO = 1100
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def read_file_bytes(path: str | os.PathLike, max_nbytes: int = MAX_DECOMPRESSED_NBYTES) -> bytes:
    """Bytes of ``path``, decompressed when it is gzip (detected by content, not by name),
    at most ``max_nbytes`` of them."""
    handle, reader = open_bounded(path, "IDX file", max_nbytes)
    with handle:
        return reader.read()


def _header(head: bytes, name: str) -> tuple[np.dtype, int]:
    """``(dtype, ndim)`` from the 4-byte IDX magic number."""
    if len(head) < 4:
        raise CorruptFileError(f"{name}: too short for an IDX header ({len(head)} bytes, need at least 4).")
    if head[0] != 0 or head[1] != 0:
        raise CorruptFileError(f"{name}: bad IDX magic number {head[:4].hex()}: the first two bytes must be 00 00. Is this an IDX file?")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise CorruptFileError(f"{name}: unknown IDX dtype code 0x{code:02X}; expected one of {known}.")
    if ndim == 0:
        raise CorruptFileError(f"{name}: IDX header announces 0 dimensions; expected at least 1.")
    return IDX_DTYPES[code], ndim


def _payload_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for n in shape:  # Python integers: 255 dimensions of 2**32 - 1 cannot wrap
        count *= n
    return count * dtype.itemsize


def _size_problem(shape, dtype, actual: int, expected: int) -> str:
    problem = "truncated" if actual < expected else "has trailing bytes"
    return f"payload {problem}: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes, found {actual}."


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX ``content``; ``name`` only appears in error messages."""
    dtype, ndim = _header(content[:4], name)
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise CorruptFileError(f"{name}: header announces {ndim} dimensions ({header_size} header bytes) but the file has only {len(content)} bytes.")
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected, actual = _payload_nbytes(shape, dtype), len(content) - header_size
    if actual != expected:
        raise CorruptFileError(f"{name}: {_size_problem(shape, dtype, actual, expected)}")
    values = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path: str | os.PathLike, max_nbytes: int = MAX_DECOMPRESSED_NBYTES) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a native-endian array; :class:`CorruptFileError` if invalid.

    The header is read first; the payload it declares (at most ``max_nbytes``) must match
    the file's size (raw) or the gzip trailer's size field before the array is allocated,
    and is then streamed into it -- a compressed file is never inflated beyond what its
    header declares.
    """
    name = Path(path).name
    handle, reader = open_bounded(path, "IDX file", max_nbytes)
    with handle:
        dtype, ndim = _header(reader.read(4), name)
        dims = reader.read(4 * ndim)
        header_size = 4 + 4 * ndim
        if len(dims) < 4 * ndim:
            raise CorruptFileError(f"{name}: header announces {ndim} dimensions ({header_size} header bytes) but the file has only {4 + len(dims)} bytes.")
        shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
        expected = _payload_nbytes(shape, dtype)
        if header_size + expected > max_nbytes:
            raise CorruptFileError(f"{name}: the header declares shape {shape} ({expected} bytes), more than the limit of {max_nbytes} bytes.")
        file_nbytes = os.fstat(handle.fileno()).st_size
        if not reader.compressed:
            actual = file_nbytes - header_size
            if actual != expected:
                raise CorruptFileError(f"{name}: {_size_problem(shape, dtype, actual, expected)}")
        trailer_agrees = reader.declared_size() == (header_size + expected) % 2**32
        if not reader.compressed or (trailer_agrees and header_size + expected <= _MAX_DEFLATE_RATIO * file_nbytes):
            # justified by the file's size, or by the gzip trailer and what deflate can inflate to
            values = np.empty(expected // dtype.itemsize, dtype=dtype)
            got = reader.readinto(values.view(np.uint8))
        else:  # a multi-member gzip file or a trailer that disagrees: grow as data arrives, never past the header
            data = reader.read(expected)
            got, values = len(data), np.frombuffer(data, dtype=dtype, count=len(data) // dtype.itemsize)
        if got < expected:
            raise CorruptFileError(f"{name}: {_size_problem(shape, dtype, got, expected)}")
        if not reader.at_end():
            raise CorruptFileError(f"{name}: payload has trailing bytes: shape {shape} needs {expected} bytes, the file holds more.")
    native = dtype.newbyteorder("=")
    if values.flags.writeable:  # our own buffer: swap in place, no copy
        values = (values.byteswap(inplace=True) if native != dtype and dtype.itemsize > 1 else values).view(native)
    else:
        values = values.astype(native)  # a writable copy
    return values.reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of ``array`` (uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise TypeError(f"array has dtype {array.dtype}, which IDX cannot store; use one of uint8, int8, int16, int32, float32, float64.")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions for IDX, got {array.ndim}.")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as IDX, gzip-compressed when ``path`` ends in ``.gz``; atomic."""
    content = encode_idx(array)
    if str(path).endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    atomic_write_bytes(path, content)
