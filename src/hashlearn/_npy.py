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
#: the most bytes of a ``.npy`` header parsed (numpy's own default limit)
MAX_HEADER_NBYTES = 10_000
#: the bytes of a ``.npy`` that hold at most the magic, the length field and the longest header
_HEADER_PREFIX = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature, ..., name and extra lengths
_HEADER_ERRORS = (tokenize.TokenError, ValueError, SyntaxError, TypeError, RecursionError, UnicodeDecodeError, EOFError, struct.error, OverflowError, MemoryError)


def _read_header(stream, source: str, kinds: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data_nbytes)`` from the start of a ``.npy`` stream."""
    try:
        version = npy_format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        length_field = stream.read(2 if version == (1, 0) else 4)
        if len(length_field) not in (2, 4):
            raise ValueError("the file ends inside the header length")
        header_nbytes = int.from_bytes(length_field, "little")
        if header_nbytes > MAX_HEADER_NBYTES:
            raise ValueError(f"the header declares {header_nbytes:,} bytes; at most {MAX_HEADER_NBYTES:,} are read")
        header = stream.read(header_nbytes)
        # numpy writes a printable ASCII dict ending in a newline; anything else goes to numpy's Python-2
        # fallback, which tokenizes the bytes (thousands of small objects for an 8 KB header of binary junk)
        if not (header.endswith(b"\n") and header[:-1].isascii() and header[:-1].decode("ascii").isprintable()):
            raise ValueError(f"the header is not a printable ASCII line: {header[:80]!r}")
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(io.BytesIO(length_field + header))
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


def read_npy(data: bytes | bytearray | memoryview, source: str = "<bytes>", kinds: str = NUMERIC_KINDS, *, copy: bool = True) -> np.ndarray:
    """The array in ``.npy`` bytes; its data must be exactly what the header declares.

    ``copy=False`` returns a view of ``data`` (writable when ``data`` is a ``bytearray``),
    so the array costs no memory beyond the bytes already read."""
    data = memoryview(data).cast("B")
    stream = io.BytesIO(data[:_HEADER_PREFIX])  # the header only: BytesIO copies what it is given
    shape, fortran, dtype, nbytes = _read_header(stream, source, kinds)
    start = stream.tell()
    if len(data) - start != nbytes:
        problem = "truncated" if len(data) - start < nbytes else "corrupt (extra bytes after the data)"
        raise CorruptFileError(f"{source} is {problem}: shape {shape} of {dtype} needs {nbytes} data bytes, found {len(data) - start}.")
    array = np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize if dtype.itemsize else 0, offset=start)
    array = array.reshape(shape, order="F" if fortran else "C")
    return array.copy() if copy else array


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


def read_npz(data, source: str = "<bytes>", kinds: str = NUMERIC_KINDS, max_nbytes: int = MAX_NPZ_NBYTES) -> dict[str, np.ndarray]:
    """``{name: array}`` of an ``.npz`` archive: its bytes, or an open binary file.

    Each member's declared shape bounds its decompression. Members stored uncompressed
    (``np.savez``) cost no copy beyond their array: from bytes they become (read-only)
    views after their CRC is checked (an aligned copy when the member's data does not sit
    at a multiple of its item size); from a file they are read straight into their array.
    Compressed members (``np.savez_compressed``) are inflated once, into their array's bytes.
    """
    view = None if hasattr(data, "read") else memoryview(data).cast("B")
    try:
        archive = zipfile.ZipFile(data if view is None else io.BytesIO(data))
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
                if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                    arrays[name] = _stored_member(data, view, info, label, kinds)
                    continue
                with archive.open(info) as member:
                    shape, fortran, dtype, nbytes = _read_header(member, label, kinds)
                    header_nbytes = member.tell()
                    if header_nbytes + nbytes != info.file_size:
                        raise CorruptFileError(_size_mismatch(label, shape, dtype, nbytes, info.file_size - header_nbytes))
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


def _size_mismatch(label: str, shape, dtype, nbytes: int, held: int) -> str:
    return f"{label} declares shape {shape} of {dtype} ({nbytes} bytes), but the member holds {held}."


def _stored_member(handle, view: memoryview | None, info: zipfile.ZipInfo, label: str, kinds: str) -> np.ndarray:
    """The array of an uncompressed ``.npz`` member: a view of the archive's bytes ``view``,
    or read from the open file ``handle`` straight into the array (CRC checked either way)."""
    start = info.header_offset
    if view is not None:
        local = bytes(view[start : start + _LOCAL_HEADER.size]) if start >= 0 else b""
    else:
        handle.seek(start)
        local = handle.read(_LOCAL_HEADER.size)
    if len(local) != _LOCAL_HEADER.size:
        raise CorruptFileError(f"{label}: its local header lies outside the archive.")
    signature, name_nbytes, extra_nbytes = _LOCAL_HEADER.unpack(local)
    offset = start + _LOCAL_HEADER.size + name_nbytes + extra_nbytes
    if signature != b"PK\x03\x04":
        raise CorruptFileError(f"{label} cannot be read: a bad local header signature {signature!r}.")
    if info.compress_size != info.file_size:
        raise CorruptFileError(f"{label}: a stored member of {info.file_size} bytes declares {info.compress_size} in the archive.")
    if view is not None:
        if offset + info.file_size > len(view):
            raise CorruptFileError(f"{label} is truncated: {info.file_size} stored bytes declared, {max(0, len(view) - offset)} present.")
        member = view[offset : offset + info.file_size]
        stream = io.BytesIO(member[:_HEADER_PREFIX])
        shape, fortran, dtype, nbytes = _read_header(stream, label, kinds)
        if stream.tell() + nbytes != info.file_size:
            raise CorruptFileError(_size_mismatch(label, shape, dtype, nbytes, info.file_size - stream.tell()))
        if zlib.crc32(member) != info.CRC:
            raise CorruptFileError(f"{label} cannot be read: BadZipFile: CRC mismatch (the member is damaged).")
        array = np.frombuffer(member, dtype=dtype, count=nbytes // dtype.itemsize, offset=stream.tell())
        array = array.reshape(shape, order="F" if fortran else "C")
        return array if array.flags.aligned else array.copy()
    handle.seek(offset)
    shape, fortran, dtype, nbytes = _read_header(handle, label, kinds)
    header_nbytes = handle.tell() - offset
    if header_nbytes + nbytes != info.file_size:
        raise CorruptFileError(_size_mismatch(label, shape, dtype, nbytes, info.file_size - header_nbytes))
    handle.seek(offset)
    crc = zlib.crc32(handle.read(header_nbytes))
    array = np.empty(nbytes // dtype.itemsize, dtype=dtype)
    got = handle.readinto(array.view(np.uint8)) if nbytes else 0
    if got != nbytes:
        raise CorruptFileError(f"{label} is truncated: {got} of {nbytes} data bytes.")
    if zlib.crc32(array.view(np.uint8), crc) != info.CRC:
        raise CorruptFileError(f"{label} cannot be read: BadZipFile: CRC mismatch (the member is damaged).")
    return array.reshape(shape, order="F" if fortran else "C")
