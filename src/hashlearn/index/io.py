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

The header is covered by the sha256 after the length, the payload (arrays and the zero
padding between them) by the sha256 in the header; the fixed fields of the prefix (magic,
version, flags = 0) and the zero padding after the header are checked byte for byte, so
every byte of a loaded file is either checksummed or compared with its only valid value.
Reading a truncated, tampered or newer-version file raises
:class:`~hashlearn.errors.CorruptFileError`; writing is atomic (temp file + rename).

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

from hashlearn._io import _json_default, atomic_write_chunks, is_int, parse_json_bytes, regular_file
from hashlearn.errors import CorruptFileError
from hashlearn.index import registry
from hashlearn.index.base import BinaryIndex

MAGIC = b"\x89HLX\r\n\x1a\n"
FORMAT_VERSION = 1
ALIGNMENT = 64
_PREFIX = struct.Struct("<8sIIQ32s")  # magic, version, flags, header length, header sha256
#: dtype kinds an index file may hold: bool, signed/unsigned int, float
_ALLOWED_DTYPE_KINDS = "biuf"
#: the dtype strings a file may name (little-endian bool, int and float: what the writer writes)
_DTYPES = {code: np.dtype(code) for code in ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8")}
#: the header holds metadata only; a longer header length is refused before anything is read
_MAX_HEADER_BYTES = 16 << 20
_MAX_NDIM = 32

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


def index_from_state(entry: dict, arrays: dict[str, np.ndarray], **options) -> BinaryIndex:
    """Inverse of :func:`index_state`; ``options`` go to the kind's ``from_state`` (e.g.
    ``client=`` for a sharded index)."""
    if not isinstance(entry, dict) or "kind" not in entry or "meta" not in entry:
        raise CorruptFileError(f"an index entry must hold 'kind' and 'meta', got {entry!r:.200}.")
    if not isinstance(entry["kind"], str):  # a nested entry (a shard, a stage) of a forged file
        raise CorruptFileError(f"an index entry's kind must be a string, got {entry['kind']!r:.80}.")
    cls = index_class(entry["kind"])
    _check_options(cls, entry["kind"], options)
    try:
        return cls.from_state(entry["meta"], arrays, **options)
    except CorruptFileError:
        raise
    except (LookupError, TypeError, ValueError, ArithmeticError, AttributeError, RecursionError) as error:
        # a stored state with the wrong types or values (the header is checksummed, but a forger
        # can re-sign it): the index class's own checks speak, as a CorruptFileError
        raise CorruptFileError(f"cannot rebuild a {entry['kind']!r:.80} index from the stored state: {type(error).__name__}: {error}"[:2000]) from error


def _check_options(cls: type, kind: str, options: dict) -> None:
    """Load options the kind's ``from_state`` does not take are the caller's mistake (a
    ``TypeError`` naming them), not a damaged file."""
    if not options:
        return
    import inspect

    accepted = inspect.signature(cls.from_state).parameters
    unknown = sorted(name for name in options if name not in accepted or name in ("meta", "arrays"))
    if unknown:
        takes = sorted(name for name, parameter in accepted.items() if parameter.kind is inspect.Parameter.KEYWORD_ONLY)
        raise TypeError(f"an index of kind {kind!r} takes no load options {unknown}; it takes {takes or 'none'}.")


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
# Untrusted bytes are parsed in one order: the fixed prefix and the header length (capped and
# checked against the file size) first, then the header checksum, then the header's structure
# (every array entry against the payload size with Python integers, which cannot wrap), and the
# payload checksum last; nothing is allocated or mapped before all of that passed.
def _parse_prefix(prefix: bytes, file_nbytes: int, source: str) -> tuple[int, int, bytes]:
    """``(version, header length, header sha256)`` of the fixed 56-byte prefix."""
    if len(prefix) < 8 or bytes(prefix[:8]) != MAGIC:
        raise CorruptFileError(f"{source} is not a hashlearn index file (bad magic bytes).")
    if len(prefix) < _PREFIX.size:
        raise CorruptFileError(f"{source} is truncated: {len(prefix)} bytes, shorter than the {_PREFIX.size}-byte prefix.")
    _, version, flags, header_nbytes, header_sha = _PREFIX.unpack(bytes(prefix[: _PREFIX.size]))
    if version > FORMAT_VERSION:
        raise CorruptFileError(
            f"{source} has index format version {version}, written by a newer hashlearn; this hashlearn "
            f"({_hashlearn_version()}) reads versions up to {FORMAT_VERSION}. Upgrade hashlearn to load it."
        )
    if version < 1:
        raise CorruptFileError(f"{source} has an invalid index format version {version}.")
    if flags != 0:
        raise CorruptFileError(f"{source} is corrupt: the reserved flags field is {flags:#x}, must be 0.")
    if header_nbytes > _MAX_HEADER_BYTES:
        raise CorruptFileError(f"{source} is corrupt: header length {header_nbytes} exceeds the cap of {_MAX_HEADER_BYTES} bytes.")
    if _PREFIX.size + header_nbytes > file_nbytes:
        raise CorruptFileError(f"{source} is truncated: the header needs {_PREFIX.size + header_nbytes} bytes, the file has {file_nbytes}.")
    return version, header_nbytes, header_sha


def _parse_header(version: int, header_bytes: bytes, header_sha: bytes, padding: bytes, file_nbytes: int, source: str) -> dict:
    if hashlib.sha256(header_bytes).digest() != header_sha:
        raise CorruptFileError(f"{source} is corrupt: the header checksum does not match (file tampered with or damaged).")
    if padding.count(0) != len(padding):
        raise CorruptFileError(f"{source} is corrupt: the padding after the header is not all zero bytes.")
    header = parse_json_bytes(header_bytes, f"{source} header")
    payload_offset = _aligned(_PREFIX.size + len(header_bytes))
    _check_header(header, payload_offset, file_nbytes, source)
    header["format_version"] = version
    header["payload_offset"] = payload_offset
    return header


def header_from_bytes(data, source: str = "<bytes>") -> dict:
    """Parse and check the prefix and header at the start of ``data`` (the whole file, or
    at least its prefix, header and padding).

    Returns the header dict plus ``format_version`` and ``payload_offset``. Sizes are
    checked against ``len(data)``; the payload checksum is not verified here.
    """
    data = memoryview(data).cast("B")
    version, header_nbytes, header_sha = _parse_prefix(data[: _PREFIX.size], len(data), source)
    end = _PREFIX.size + header_nbytes
    padding = bytes(data[end : _aligned(end)])
    return _parse_header(version, bytes(data[_PREFIX.size : end]), header_sha, padding, max(len(data), _aligned(end)), source)


def _check_header(header, payload_offset: int, file_nbytes: int, source: str) -> None:
    """Types and ranges of every header field; the arrays must tile the payload exactly as
    the writer lays them out (in order, each on the next 64-byte boundary)."""
    required = {"kind": str, "meta": dict, "arrays": list, "payload_nbytes": int, "payload_sha256": str}
    if not isinstance(header, dict):
        raise CorruptFileError(f"{source} is corrupt: the header is not a JSON object.")
    for key, expected in required.items():
        value = header.get(key)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise CorruptFileError(f"{source} is corrupt: header field {key!r} is missing or not a {expected.__name__}.")
    if header.get("format", "hashlearn-index") != "hashlearn-index":
        raise CorruptFileError(f"{source} is corrupt: header field 'format' is {header['format']!r:.80}, expected 'hashlearn-index'.")
    payload_nbytes = header["payload_nbytes"]
    if payload_nbytes < 0:
        raise CorruptFileError(f"{source} is corrupt: payload_nbytes is negative ({payload_nbytes}).")
    if payload_offset + payload_nbytes > file_nbytes:
        raise CorruptFileError(f"{source} is truncated: expected {payload_offset + payload_nbytes} bytes, found {file_nbytes}.")
    if payload_offset + payload_nbytes < file_nbytes:
        raise CorruptFileError(f"{source} is corrupt: {file_nbytes - payload_offset - payload_nbytes} unexpected bytes after the payload.")
    sha = header["payload_sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise CorruptFileError(f"{source} is corrupt: payload_sha256 is not 64 lowercase hex digits.")
    names, end = set(), 0
    for spec in header["arrays"]:
        problem = _array_entry_problem(spec, names, _aligned(end), payload_nbytes)
        if problem:
            raise CorruptFileError(f"{source} is corrupt: array entry {spec!r:.200} is inconsistent ({problem}).")
        names.add(spec["name"])
        end = spec["offset"] + spec["nbytes"]
    if end != payload_nbytes:
        raise CorruptFileError(f"{source} is corrupt: the arrays end at byte {end} of the payload, payload_nbytes says {payload_nbytes}.")


def _array_entry_problem(spec, names: set, offset: int, payload_nbytes: int) -> str:
    """What is wrong with one array entry (``""`` if nothing); all sizes in Python ints."""
    if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape", "offset", "nbytes"}:
        return "expected an object with exactly name, dtype, shape, offset, nbytes"
    name, dtype, shape = spec["name"], spec["dtype"], spec["shape"]
    if not isinstance(name, str) or not name or name in names:
        return "the name must be a non-empty string, unique in the file"
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        return f"dtype must be one of {sorted(_DTYPES)}"
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(is_int(n) and n >= 0 for n in shape):
        return f"shape must be a list of at most {_MAX_NDIM} non-negative integers"
    if not is_int(spec["offset"]) or not is_int(spec["nbytes"]):
        return "offset and nbytes must be integers"
    if spec["offset"] != offset:
        return f"offset must be {offset}: arrays follow each other, each on the next {ALIGNMENT}-byte boundary"
    count = 1
    for n in shape:
        count *= n
    if spec["nbytes"] != count * _DTYPES[dtype].itemsize:
        return f"nbytes must be {count} elements x {_DTYPES[dtype].itemsize} bytes"
    if spec["offset"] + spec["nbytes"] > payload_nbytes:
        return f"it ends past the payload ({payload_nbytes} bytes)"
    return ""


def _check_payload(digest: str, header: dict, source: str) -> None:
    if digest != header["payload_sha256"]:
        raise CorruptFileError(f"{source} is corrupt: the payload checksum does not match (file tampered with or damaged).")


def _build(header: dict, arrays: dict[str, np.ndarray], options: dict | None = None) -> BinaryIndex:
    return index_from_state({"kind": header["kind"], "meta": header["meta"]}, arrays, **(options or {}))


def index_from_bytes(data) -> BinaryIndex:
    """Rebuild an index from :func:`index_to_bytes` output (arrays are writable copies)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}.")
    header = header_from_bytes(data)  # checked before the copy below
    return _index_from_buffer(bytearray(data), header, "<bytes>")


def _index_from_buffer(buffer: bytearray, header: dict, source: str, options: dict | None = None) -> BinaryIndex:
    start = header["payload_offset"]
    payload = memoryview(buffer)[start:]
    _check_payload(hashlib.sha256(payload).hexdigest(), header, source)
    arrays = {}
    for spec in header["arrays"]:
        dtype = _DTYPES[spec["dtype"]]
        count = spec["nbytes"] // dtype.itemsize
        array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + spec["offset"])
        arrays[spec["name"]] = array.reshape(spec["shape"])
    return _build(header, arrays, options)


def read_header(path: str | os.PathLike) -> dict:
    """The checked header of the index file at ``path`` (reads only the prefix and header).

    The header length is capped and checked against the file size before it is read.
    """
    path, file_nbytes = regular_file(path, "index file")
    with open(path, "rb") as handle:
        version, header_nbytes, header_sha = _parse_prefix(handle.read(_PREFIX.size), file_nbytes, str(path))
        header_bytes = handle.read(header_nbytes)
        end = _PREFIX.size + header_nbytes
        padding = handle.read(_aligned(end) - end)
    if len(header_bytes) != header_nbytes:
        raise CorruptFileError(f"{path} is truncated: the header needs {end} bytes.")
    header = _parse_header(version, header_bytes, header_sha, padding, file_nbytes, str(path))
    header["file_nbytes"] = file_nbytes
    return header


def verify_file(path: str | os.PathLike, chunk_nbytes: int = 1 << 22) -> dict:
    """Check sizes and both checksums of an index file without building it; returns its header."""
    header = read_header(path)
    _verify_payload(path, header, chunk_nbytes)
    return header


def _verify_payload(path, header: dict, chunk_nbytes: int = 1 << 22) -> None:
    digest, remaining = hashlib.sha256(), header["payload_nbytes"]
    with open(path, "rb") as handle:
        handle.seek(header["payload_offset"])
        while remaining:
            chunk = handle.read(min(chunk_nbytes, remaining))
            if not chunk:
                raise CorruptFileError(f"{path} is truncated: it shrank while it was read.")
            digest.update(chunk)
            remaining -= len(chunk)
    _check_payload(digest.hexdigest(), header, str(path))


def load_index(path: str | os.PathLike, mmap: bool = True, verify: bool = True, **options) -> BinaryIndex:
    """Load an index saved by :func:`save_index`.

    ``options`` go to the index kind's ``from_state``: a sharded index takes ``client=``
    (a ``distributed.Client``) or ``address=`` to rebuild its shards on a running cluster
    instead of starting one; a kind that takes none raises ``TypeError`` for them.

    ``mmap=True`` maps the arrays read-only with ``np.memmap`` instead of reading them,
    so a large index opens at once and shares pages between processes. ``verify=True``
    (the default) still reads the whole payload once to check its sha256 -- about 2 s
    per GB (sha256 ran at 0.5 GB/s on a busy 2-core machine); pass ``verify=False`` to
    skip that for trusted large files (the header checksum, the file size and the array
    bounds are always checked). Without mmap the payload is always verified. A kind that
    copies its arrays anyway (a sharded index: its shards live on dask workers) is read as
    with ``mmap=False``: mapped, the file's pages and the copies would be resident together.

    Raises :class:`~hashlearn.errors.CorruptFileError` for any problem with the content,
    ``FileNotFoundError`` / ``IsADirectoryError`` / ``PermissionError`` for the path.
    """
    header = read_header(path)  # sizes, caps and structure before the file is read or mapped
    if not mmap or not index_class(header["kind"]).keeps_mapped_arrays:
        buffer = bytearray(header["file_nbytes"])
        with open(path, "rb") as handle:
            if handle.readinto(buffer) != len(buffer):
                raise CorruptFileError(f"{path} is truncated: it shrank while it was read.")
        return _index_from_buffer(buffer, header, str(path), options)
    if verify:
        _verify_payload(path, header)
    arrays = {}
    for spec in header["arrays"]:
        dtype, shape = _DTYPES[spec["dtype"]], tuple(spec["shape"])
        offset = header["payload_offset"] + spec["offset"]
        if spec["nbytes"] == 0:
            arrays[spec["name"]] = np.empty(shape, dtype=dtype)
        else:
            arrays[spec["name"]] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return _build(header, arrays, options)


def _hashlearn_version() -> str:
    from hashlearn import __version__

    return __version__
