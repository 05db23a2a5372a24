"""Save and load any :class:`~hashlearn.index.base.BinaryIndex` as one ``.hlx`` file -- no pickle.

Layout (the full spec is ``docs/index-io.md``)::

    magic  8 bytes   b"\\x89HLX\\r\\n\\x1a\\n"
    u32 LE           format version
    u32 LE           flags (0)
    u64 LE           header length in bytes
    32 bytes         sha256 of the header
    header           UTF-8 JSON: kind, meta, arrays (name, dtype, shape, offset, nbytes),
                     payload size and sha256
    zero padding     up to a multiple of 64
    payload          the arrays, each starting on a 64-byte boundary (so np.memmap can map them)

Every byte is covered by a checksum: the header by the sha256 after the length, the
payload by the sha256 in the header. Reading a truncated, tampered or newer-version file
raises :class:`~hashlearn.errors.CorruptFileError`; writing is atomic (temp file + rename).

>>> import numpy as np
>>> from hashlearn.index.io import header_from_bytes
>>> header_from_bytes(b"not an index")
Traceback (most recent call last):
...
hashlearn.errors.CorruptFileError: <bytes> is not a hashlearn index file (bad magic bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from hashlearn._io import _json_default, atomic_write_chunks
from hashlearn.errors import CorruptFileError
from hashlearn.index import registry
from hashlearn.index.base import BinaryIndex

MAGIC = b"\x89HLX\r\n\x1a\n"
FORMAT_VERSION = 1
ALIGNMENT = 64
_PREFIX = struct.Struct("<8sIIQ32s")  # magic, version, flags, header length, header sha256
#: dtype kinds an index file may hold: bool, signed/unsigned int, float
_ALLOWED_DTYPE_KINDS = "biuf"
_MAX_HEADER_BYTES = 1 << 30

#: ``kind`` -> its entry in the one index-kind registry (:mod:`hashlearn.index.registry`)
INDEX_KINDS = registry.KINDS


def register_index_kind(kind: str, cls: type | str) -> None:
    """Let files of ``kind`` be loaded as ``cls`` (a class or a ``"module:Class"`` path).

    A kind that factory descriptions should build is registered with
    :func:`hashlearn.index.registry.register` instead (name and number keyword too).
    """
    registry.register(registry.IndexKind(kind, cls))


def index_class(kind: str) -> type:
    """The class registered for ``kind``; ``CorruptFileError`` if none is."""
    return registry.get_kind(kind).cls


# --- state of one index, nestable inside composite indexes -----------------------------------
def index_state(index: BinaryIndex) -> tuple[dict, dict[str, np.ndarray]]:
    """``({"kind", "meta"}, arrays)`` of ``index``, checked to be saveable."""
    if not isinstance(index, BinaryIndex):
        raise TypeError(f"index must be a hashlearn BinaryIndex, got {type(index).__name__}.")
    meta, arrays = index.state()
    kind = type(index).kind
    if kind not in INDEX_KINDS:
        raise ValueError(f"index kind {kind!r} of {type(index).__name__} is not registered; call register_index_kind.")
    return {"kind": kind, "meta": meta}, dict(arrays)


def index_from_state(entry: dict, arrays: dict[str, np.ndarray]) -> BinaryIndex:
    """Inverse of :func:`index_state`."""
    if not isinstance(entry, dict) or "kind" not in entry or "meta" not in entry:
        raise CorruptFileError(f"an index entry must hold 'kind' and 'meta', got {entry!r:.200}.")
    try:
        return index_class(entry["kind"]).from_state(entry["meta"], arrays)
    except CorruptFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise CorruptFileError(f"cannot rebuild a {entry['kind']!r} index from the stored state: {error}") from error


def nest_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Prefix array names (``"first_stage/" + name``) to store a sub-index's arrays."""
    return {f"{prefix}/{name}": value for name, value in arrays.items()}


def unnest_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`nest_arrays`: the arrays under ``prefix``, names without it."""
    start = prefix + "/"
    return {name[len(start) :]: value for name, value in arrays.items() if name.startswith(start)}


# --- encoding ---------------------------------------------------------------------------------
def _aligned(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _array_bytes(array: np.ndarray) -> memoryview:
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _encode(index: BinaryIndex, info: dict | None = None) -> tuple[bytes, list[tuple[int, memoryview]]]:
    """``(prefix + header + padding, [(padding, array bytes), ...])`` and the payload checksum."""
    entry, arrays = index_state(index)
    specs, chunks, offset = [], [], 0
    digest = hashlib.sha256()
    for name, array in arrays.items():
        array = np.asarray(array)
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names in an index state must be non-empty strings, got {name!r}.")
        if array.dtype.kind not in _ALLOWED_DTYPE_KINDS:
            raise TypeError(f"array {name!r} has dtype {array.dtype}; index files hold only bool, int and float arrays.")
        data = _array_bytes(array)
        start = _aligned(offset)
        padding = start - offset
        digest.update(bytes(padding))
        digest.update(data)
        specs.append({"name": name, "dtype": array.dtype.newbyteorder("<").str, "shape": list(array.shape),
                      "offset": start, "nbytes": data.nbytes})
        chunks.append((padding, data))
        offset = start + data.nbytes
    header = {
        "format": "hashlearn-index",
        "kind": entry["kind"],
        "meta": entry["meta"],
        "arrays": specs,
        "payload_nbytes": offset,
        "payload_sha256": digest.hexdigest(),
        "hashlearn_version": _hashlearn_version(),
    }
    if info is not None:  # provenance (e.g. the run and dataset part the codes came from); not used to rebuild
        if not isinstance(info, dict):
            raise TypeError(f"info must be a dict of JSON values, got {type(info).__name__}.")
        header["info"] = info
    header_bytes = json.dumps(header, sort_keys=True, default=_json_default).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes), hashlib.sha256(header_bytes).digest())
    head = prefix + header_bytes
    return head + bytes(_aligned(len(head)) - len(head)), chunks


def _chunks(head: bytes, chunks: list[tuple[int, memoryview]]):
    yield head
    for padding, data in chunks:
        if padding:
            yield bytes(padding)
        yield data


def index_to_bytes(index: BinaryIndex) -> bytes:
    """The ``.hlx`` file contents of ``index`` as bytes."""
    head, chunks = _encode(index)
    return b"".join(_chunks(head, chunks))


def save_index(index: BinaryIndex, path: str | os.PathLike, *, info: dict | None = None) -> Path:
    """Write ``index`` to ``path`` atomically: a failed save leaves any existing file untouched.

    ``info`` (a JSON mapping) is kept in the header as ``header["info"]``: where the codes came from.
    """
    head, chunks = _encode(index, info)
    return atomic_write_chunks(path, _chunks(head, chunks))


# --- decoding ---------------------------------------------------------------------------------
def header_from_bytes(data, source: str = "<bytes>") -> dict:
    """Parse and check the prefix and header at the start of ``data``.

    Returns the header dict plus ``format_version`` and ``payload_offset``.
    """
    data = memoryview(data).cast("B")
    if len(data) < _PREFIX.size or bytes(data[:8]) != MAGIC:
        raise CorruptFileError(f"{source} is not a hashlearn index file (bad magic bytes).")
    _, version, _flags, header_nbytes, header_sha = _PREFIX.unpack(bytes(data[: _PREFIX.size]))
    if version > FORMAT_VERSION:
        raise CorruptFileError(
            f"{source} has index format version {version}, written by a newer hashlearn; this hashlearn "
            f"({_hashlearn_version()}) reads versions up to {FORMAT_VERSION}. Upgrade hashlearn to load it."
        )
    if version < 1:
        raise CorruptFileError(f"{source} has an invalid index format version {version}.")
    end = _PREFIX.size + header_nbytes
    if header_nbytes > _MAX_HEADER_BYTES or len(data) < end:
        raise CorruptFileError(f"{source} is truncated: the header needs {end} bytes, the file has {len(data)}.")
    header_bytes = bytes(data[_PREFIX.size : end])
    if hashlib.sha256(header_bytes).digest() != header_sha:
        raise CorruptFileError(f"{source} is corrupt: the header checksum does not match (file tampered with or damaged).")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{source} is corrupt: the header is not valid JSON ({error}).") from error
    _check_header(header, source)
    header["format_version"] = version
    header["payload_offset"] = _aligned(end)
    return header


def _check_header(header, source: str) -> None:
    required = {"kind": str, "meta": dict, "arrays": list, "payload_nbytes": int, "payload_sha256": str}
    if not isinstance(header, dict):
        raise CorruptFileError(f"{source} is corrupt: the header is not a JSON object.")
    for key, expected in required.items():
        if not isinstance(header.get(key), expected):
            raise CorruptFileError(f"{source} is corrupt: header field {key!r} is missing or not a {expected.__name__}.")
    for spec in header["arrays"]:
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(n) for n in spec["shape"])
            offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
            ok = (
                dtype.kind in _ALLOWED_DTYPE_KINDS
                and all(n >= 0 for n in shape)
                and offset % ALIGNMENT == 0
                and nbytes == int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                and 0 <= offset <= offset + nbytes <= header["payload_nbytes"]
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptFileError(f"{source} is corrupt: bad array entry {spec!r:.200} ({error}).") from error
        if not ok:
            raise CorruptFileError(f"{source} is corrupt: array entry {spec!r:.200} is inconsistent.")


def _check_size(header: dict, file_nbytes: int, source: str) -> None:
    expected = header["payload_offset"] + header["payload_nbytes"]
    if file_nbytes < expected:
        raise CorruptFileError(f"{source} is truncated: expected {expected} bytes, found {file_nbytes}.")
    if file_nbytes > expected:
        raise CorruptFileError(f"{source} is corrupt: {file_nbytes - expected} unexpected bytes after the payload.")


def _check_payload(digest: str, header: dict, source: str) -> None:
    if digest != header["payload_sha256"]:
        raise CorruptFileError(f"{source} is corrupt: the payload checksum does not match (file tampered with or damaged).")


def _build(header: dict, arrays: dict[str, np.ndarray]) -> BinaryIndex:
    return index_from_state({"kind": header["kind"], "meta": header["meta"]}, arrays)


def index_from_bytes(data) -> BinaryIndex:
    """Rebuild an index from :func:`index_to_bytes` output (arrays are writable copies)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}.")
    buffer = bytearray(data)
    return _index_from_buffer(buffer, "<bytes>")


def _index_from_buffer(buffer: bytearray, source: str) -> BinaryIndex:
    header = header_from_bytes(buffer, source)
    _check_size(header, len(buffer), source)
    start = header["payload_offset"]
    payload = memoryview(buffer)[start:]
    _check_payload(hashlib.sha256(payload).hexdigest(), header, source)
    arrays = {}
    for spec in header["arrays"]:
        dtype = np.dtype(spec["dtype"])
        count = spec["nbytes"] // dtype.itemsize
        array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + spec["offset"])
        arrays[spec["name"]] = array.reshape(spec["shape"])
    return _build(header, arrays)


def read_header(path: str | os.PathLike) -> dict:
    """The checked header of the index file at ``path`` (reads only the header)."""
    path = _existing(path)
    with open(path, "rb") as handle:
        head = handle.read(_PREFIX.size)
        if len(head) == _PREFIX.size and head[:8] == MAGIC:
            head += handle.read(_PREFIX.unpack(head)[3])
    header = header_from_bytes(head, str(path))
    header["file_nbytes"] = path.stat().st_size
    return header


def verify_file(path: str | os.PathLike, chunk_nbytes: int = 1 << 22) -> dict:
    """Check sizes and both checksums of an index file without building it; returns its header."""
    header = read_header(path)
    _check_size(header, header["file_nbytes"], str(path))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(header["payload_offset"])
        for chunk in iter(lambda: handle.read(chunk_nbytes), b""):
            digest.update(chunk)
    _check_payload(digest.hexdigest(), header, str(path))
    return header


def load_index(path: str | os.PathLike, mmap: bool = True, verify: bool = True) -> BinaryIndex:
    """Load an index saved by :func:`save_index`.

    ``mmap=True`` maps the arrays read-only with ``np.memmap`` instead of reading them,
    so a large index opens at once and shares pages between processes. ``verify=True``
    (the default) still reads the whole payload once to check its sha256 -- about 2 s
    per GB (sha256 ran at 0.5 GB/s on a busy 2-core machine); pass ``verify=False`` to
    skip that for trusted large files (the header checksum, the file size and the array
    bounds are always checked). Without mmap the payload is always verified.
    """
    path = _existing(path)
    if not mmap:
        buffer = bytearray(path.stat().st_size)
        with open(path, "rb") as handle:
            handle.readinto(buffer)
        return _index_from_buffer(buffer, str(path))
    header = verify_file(path) if verify else read_header(path)
    _check_size(header, header["file_nbytes"], str(path))
    arrays = {}
    for spec in header["arrays"]:
        dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        offset = header["payload_offset"] + spec["offset"]
        if spec["nbytes"] == 0:
            arrays[spec["name"]] = np.empty(shape, dtype=dtype)
        else:
            arrays[spec["name"]] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return _build(header, arrays)


def _existing(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file not found: {path}")
    return path


def _hashlearn_version() -> str:
    from hashlearn import __version__

    return __version__
