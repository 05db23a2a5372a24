"""Reading ``.npy`` and ``.npz`` bytes someone else may have written, without trusting them.

``np.load`` allocates what a file's header declares before it reads the data (a 100-byte
``.npy`` can ask for a terabyte) and lets zip errors (``BadZipFile``,
``NotImplementedError`` for an unknown compression method) escape. These readers parse the
header first, check that the data present matches the declared shape exactly, refuse
object and structured dtypes, bound decompression of ``.npz`` members by their declared
shapes and a global cap, and raise only :class:`~hashlearn.errors.CorruptFileError` for
content.

>>> import io, numpy as np
>>> buffer = io.BytesIO(); np.save(buffer, np.arange(3))
>>> read_npy(buffer.getvalue(), "x.npy")
array([0, 1, 2])
"""

from __future__ import annotations

import io
import struct
import tokenize
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from hashlearn.errors import CorruptFileError

#: dtype kinds accepted: bool, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"
#: the most bytes all members of one ``.npz`` may decompress to
MAX_NPZ_NBYTES = 8 << 30
_HEADER_ERRORS = (tokenize.TokenError, ValueError, SyntaxError, TypeError, RecursionError, UnicodeDecodeError, EOFError, struct.error, OverflowError, MemoryError)


def _read_header(stream, source: str, kinds: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data_nbytes)`` from the start of a ``.npy`` stream."""
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except _HEADER_ERRORS as error:  # MemoryError here is the parser's stack, not the data
        raise CorruptFileError(f"{source} is not a valid .npy array: {type(error).__name__}: {str(error)[:300]}") from None
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise CorruptFileError(f"{source} holds an array of dtype {dtype}; only plain {_kind_names(kinds)} arrays are accepted.")
    if any(n < 0 for n in shape):
        raise CorruptFileError(f"{source} declares a negative dimension in shape {shape}.")
    count = 1
    for n in shape:
        count *= n
    return shape, fortran, dtype, count * dtype.itemsize


def _kind_names(kinds: str) -> str:
    names = {"b": "bool", "i": "integer", "u": "unsigned", "f": "float"}
    return "/".join(names[k] for k in kinds)


def read_npy(data: bytes | memoryview, source: str = "<bytes>", kinds: str = NUMERIC_KINDS) -> np.ndarray:
    """The array in ``.npy`` bytes; its data must be exactly what the header declares."""
    data = memoryview(data).cast("B")
    stream = io.BytesIO(data)
    shape, fortran, dtype, nbytes = _read_header(stream, source, kinds)
    start = stream.tell()
    if len(data) - start != nbytes:
        problem = "truncated" if len(data) - start < nbytes else "corrupt (extra bytes after the data)"
        raise CorruptFileError(f"{source} is {problem}: shape {shape} of {dtype} needs {nbytes} data bytes, found {len(data) - start}.")
    array = np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize if dtype.itemsize else 0, offset=start)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_npy_file(path, what: str = ".npy file", kinds: str = NUMERIC_KINDS) -> np.ndarray:
    """The array in a ``.npy`` file: the header is checked against the file's size before the
    array is allocated (``np.load`` allocates what the header declares)."""
    from hashlearn._io import regular_file

    path, file_nbytes = regular_file(path, what)
    with open(path, "rb") as handle:
        shape, fortran, dtype, nbytes = _read_header(handle, path.name, kinds)
        start = handle.tell()
        if file_nbytes - start != nbytes:
            problem = "truncated" if file_nbytes - start < nbytes else "corrupt (extra bytes after the data)"
            raise CorruptFileError(f"{path.name} is {problem}: shape {shape} of {dtype} needs {nbytes} data bytes, found {file_nbytes - start}.")
        count = nbytes // dtype.itemsize if dtype.itemsize else 0
        array = np.fromfile(handle, dtype=dtype, count=count)
    if array.size != count:
        raise CorruptFileError(f"{path.name} is truncated: it shrank while it was read.")
    return array.reshape(shape, order="F" if fortran else "C")


def read_npz(data: bytes | memoryview, source: str = "<bytes>", kinds: str = NUMERIC_KINDS, max_nbytes: int = MAX_NPZ_NBYTES) -> dict[str, np.ndarray]:
    """``{name: array}`` of ``.npz`` bytes; each member's declared shape bounds its decompression."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError, OSError, struct.error) as error:
        raise CorruptFileError(f"{source} is not a valid .npz archive: {type(error).__name__}: {error}") from None
    if sum(info.file_size for info in members) > max_nbytes:
        raise CorruptFileError(f"{source} declares more than {max_nbytes} bytes of arrays.")
    arrays = {}
    with archive:
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in arrays:
                raise CorruptFileError(f"{source} holds the array {name!r} twice.")
            label = f"{source}[{name!r:.80}]"
            try:
                with archive.open(info) as member:
                    shape, fortran, dtype, nbytes = _read_header(member, label, kinds)
                    header_nbytes = member.tell()
                    if header_nbytes + nbytes != info.file_size:
                        raise CorruptFileError(f"{label} declares shape {shape} of {dtype} ({nbytes} bytes), but the member holds {info.file_size - header_nbytes}.")
                    content = member.read(nbytes + 1)  # bounded by the declared shape, checked above
            except CorruptFileError:
                raise
            except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError, zlib.error, RuntimeError) as error:
                # RuntimeError: an encrypted member; BadZipFile: a CRC mismatch
                raise CorruptFileError(f"{label} cannot be read: {type(error).__name__}: {error}") from None
            if len(content) != nbytes:
                raise CorruptFileError(f"{label} is truncated: {len(content)} of {nbytes} data bytes.")
            array = np.frombuffer(content, dtype=dtype, count=nbytes // dtype.itemsize if dtype.itemsize else 0)
            arrays[name] = array.reshape(shape, order="F" if fortran else "C")
    return arrays
