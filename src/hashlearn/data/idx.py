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
import zlib
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_bytes
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
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Bytes of ``path``, decompressed when it is gzip (detected by content, not by name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist.")
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise CorruptFileError(f"{path.name}: the gzip stream is truncated or corrupt ({error}); delete the file and fetch it again.") from error


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX ``content``; ``name`` only appears in error messages."""
    if len(content) < 4:
        raise CorruptFileError(f"{name}: too short for an IDX header ({len(content)} bytes, need at least 4).")
    if content[0] != 0 or content[1] != 0:
        raise CorruptFileError(f"{name}: bad IDX magic number {content[:4].hex()}: the first two bytes must be 00 00. Is this an IDX file?")
    code, ndim = content[2], content[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise CorruptFileError(f"{name}: unknown IDX dtype code 0x{code:02X}; expected one of {known}.")
    if ndim == 0:
        raise CorruptFileError(f"{name}: IDX header announces 0 dimensions; expected at least 1.")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise CorruptFileError(f"{name}: header announces {ndim} dimensions ({header_size} header bytes) but the file has only {len(content)} bytes.")
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(content) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise CorruptFileError(
            f"{name}: payload {problem}: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes, found {actual}."
        )
    values = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a native-endian array; :class:`CorruptFileError` if invalid."""
    return parse_idx(read_file_bytes(path), Path(path).name)


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
