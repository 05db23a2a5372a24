"""Atomic writes, checksums and the first checks every loader makes on a path.

Nothing a user saved is lost by a failed write: data goes to a temporary file in the
same folder, is flushed to disk and renamed over the target. The new file gets the
mode an ordinary ``open(path, "w")`` would give it (``0666`` minus the umask), or
keeps the mode of the file it replaces; a temporary file is removed when the write
fails, is interrupted (``KeyboardInterrupt``) or the process receives ``SIGTERM``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

#: metadata JSON files (model.json, split.json, checkpoints) are small: refuse to parse more
MAX_JSON_BYTES = 64 << 20
#: nesting depth of JSON metadata a loader accepts (deeper input is refused before any use)
MAX_JSON_DEPTH = 64

_live_temp_files: set[str] = set()
_live_lock = threading.Lock()
_previous_handlers: dict[int, Any] = {}
_handler_users = 0


def _remove_live_temp_files() -> None:
    with _live_lock:
        names = list(_live_temp_files)
        _live_temp_files.clear()
    for name in names:
        try:
            os.unlink(name)
        except OSError:
            pass


def _on_terminate(signum, frame) -> None:
    """SIGTERM during a save: remove the temporary files, then die of the signal as before."""
    _remove_live_temp_files()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    else:
        os.kill(os.getpid(), signum)


def _install_terminate_handler() -> bool:
    """Route SIGTERM through :func:`_on_terminate` while a save runs (main thread only)."""
    global _handler_users
    if threading.current_thread() is not threading.main_thread():
        return False
    if _handler_users == 0:
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_IGN:
            return False
        _previous_handlers[signal.SIGTERM] = current
        signal.signal(signal.SIGTERM, _on_terminate)
    _handler_users += 1
    return True


def _restore_terminate_handler() -> None:
    global _handler_users
    _handler_users -= 1
    if _handler_users == 0:
        signal.signal(signal.SIGTERM, _previous_handlers.pop(signal.SIGTERM, signal.SIG_DFL) or signal.SIG_DFL)


def current_umask() -> int:
    """The process umask, read without changing it (``/proc``) where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic swap (briefly visible to other threads)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """The mode ``path`` keeps (an existing file's) or gets (``0666 & ~umask``)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Either the old file stays untouched or the new one is complete.
    """
    return atomic_write_chunks(path, [data])


def atomic_write_chunks(path: str | os.PathLike, chunks: Iterable[bytes | memoryview]) -> Path:
    """Like :func:`atomic_write_bytes`, but streams ``chunks`` (large files need no copy in memory)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; give a file name to write", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    guarded = _install_terminate_handler()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with _live_lock:
            _live_temp_files.add(tmp_name)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise
        finally:
            with _live_lock:
                _live_temp_files.discard(tmp_name)
    finally:
        if guarded:
            _restore_terminate_handler()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk_size: int = 1 << 16) -> str:
    """SHA-256 of a file (a path, or an open binary file from where it stands), read in place
    into one small buffer (no per-chunk allocation)."""
    if not hasattr(path, "readinto"):
        with open(path, "rb") as handle:
            return sha256_file(handle, chunk_size)
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    with memoryview(buffer) as view:
        while n := path.readinto(view):
            digest.update(view[:n])
    return digest.hexdigest()


def regular_file(path: str | os.PathLike, what: str = "file") -> tuple[Path, int]:
    """``(path, size)`` of an existing regular file, checked before anything opens it.

    ``FileNotFoundError`` / ``IsADirectoryError`` / ``PermissionError`` for the path;
    :class:`~hashlearn.errors.CorruptFileError` for a device, FIFO or socket (a weights
    file linked to ``/dev/zero`` would otherwise be read forever, a FIFO would block).
    """
    from hashlearn.errors import CorruptFileError

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path of the {what} must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except NotADirectoryError:
        raise FileNotFoundError(f"{what} not found: {path} (a parent is not a directory)") from None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"the {what} is a directory, expected a file", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise CorruptFileError(f"{what} {path} is not a regular file (a device, FIFO or socket); refusing to read it.")
    return path, info.st_size


def read_bounded(path: str | os.PathLike, max_nbytes: int, what: str = "file", *, writable: bool = False) -> bytes | bytearray:
    """The bytes of a regular file of at most ``max_nbytes``; ``CorruptFileError`` if larger.

    ``writable=True`` returns a ``bytearray``: arrays made on it with ``np.frombuffer``
    are writable without a copy."""
    from hashlearn.errors import CorruptFileError

    path, size = regular_file(path, what)
    if size > max_nbytes:
        raise CorruptFileError(f"{what} {path} has {size} bytes, more than the {max_nbytes} a {what} may have.")
    with open(path, "rb") as handle:
        if writable:
            data = bytearray(size)
            with memoryview(data) as view:
                got = handle.readinto(view)
            if got < size:  # shrank since the stat
                del data[got:]
            elif handle.read(1):
                raise CorruptFileError(f"{what} {path} has more than the {max_nbytes} bytes a {what} may have.")
            return data
        data = handle.read(size + 1)  # read(n) allocates n bytes up front: the file's size, not the cap
    if len(data) > size:  # grew since the stat
        raise CorruptFileError(f"{what} {path} has more than the {max_nbytes} bytes a {what} may have.")
    return data


def json_depth_ok(value, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests at most ``max_depth`` containers deep (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def parse_json_bytes(data: bytes, source: str, max_depth: int = MAX_JSON_DEPTH):
    """Decode UTF-8 JSON; ``CorruptFileError`` for bad text, bad JSON or too deep nesting."""
    from hashlearn.errors import CorruptFileError

    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise CorruptFileError(f"{source} is corrupt: its JSON nests deeper than {max_depth} levels.") from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, and over-long integer literals
        raise CorruptFileError(f"{source} is not valid JSON: {error}") from error
    if not json_depth_ok(value, max_depth):
        raise CorruptFileError(f"{source} is corrupt: its JSON nests deeper than {max_depth} levels.")
    return value


def read_versioned_json(path: str | os.PathLike, max_version: int) -> dict:
    """Read a JSON metadata file written by hashlearn; ``CorruptFileError`` when it is
    not a regular file of at most :data:`MAX_JSON_BYTES`, not valid JSON, nested too deep,
    or has a format version newer than ``max_version``."""
    from hashlearn.errors import CorruptFileError

    path = Path(path)
    info = parse_json_bytes(read_bounded(path, MAX_JSON_BYTES, "metadata file"), str(path))
    if not isinstance(info, dict):
        raise CorruptFileError(f"{path} must hold a JSON object, got {type(info).__name__}.")
    version = info.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CorruptFileError(f"{path} has an invalid format version {version!r:.40}; expected an integer 0 to {max_version}.")
    if version > max_version:
        raise CorruptFileError(f"{path} has format version {version!r}, newer than this hashlearn reads ({max_version}); upgrade hashlearn.")
    return info


def is_int(value) -> bool:
    """An ``int`` that is not a ``bool`` (JSON ``true`` parses as ``True``, an ``int``)."""
    return isinstance(value, int) and not isinstance(value, bool)


#: safetensors dtype names -> bytes per element (the file format's own table)
SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: a safetensors header describes tensors, it holds no data: refuse longer ones before reading
MAX_SAFETENSORS_HEADER_BYTES = 16 << 20


def read_safetensors_header(path: str | os.PathLike, what: str = "weights file") -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of a safetensors file, checked before any tensor is read.

    The 8-byte header length is capped and checked against the file size; every tensor's
    dtype, shape and byte range is checked (Python integers: no overflow), and the
    tensors must tile the data area exactly, so the file is exactly as large as its
    declared tensors justify. ``CorruptFileError`` otherwise.
    """
    from hashlearn.errors import CorruptFileError

    path, file_nbytes = regular_file(path, what)
    if file_nbytes < 8:
        raise CorruptFileError(f"{what} {path} is truncated: {file_nbytes} bytes, a safetensors file has at least 8.")
    with open(path, "rb") as handle:
        header_nbytes = int.from_bytes(handle.read(8), "little")
        if header_nbytes > MAX_SAFETENSORS_HEADER_BYTES or 8 + header_nbytes > file_nbytes:
            raise CorruptFileError(f"{what} {path} is corrupt: its header length {header_nbytes} does not fit the file ({file_nbytes} bytes).")
        header_bytes = handle.read(header_nbytes)
    header = parse_json_bytes(header_bytes, f"{what} {path}", max_depth=3)
    if not isinstance(header, dict):
        raise CorruptFileError(f"{what} {path} is corrupt: its header is not a JSON object.")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFileError(f"{what} {path} is corrupt: '__metadata__' must map strings to strings.")
    tensors, ranges = {}, []
    for name, entry in header.items():
        problem = _safetensors_entry_problem(entry)
        if problem:
            raise CorruptFileError(f"{what} {path} is corrupt: tensor {name!r:.100} {problem}.")
        tensors[name] = (entry["dtype"], tuple(entry["shape"]))
        ranges.append(tuple(entry["data_offsets"]))
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise CorruptFileError(f"{what} {path} is corrupt: the tensors overlap or leave a gap at byte {position} of the data.")
        position = end
    if 8 + header_nbytes + position != file_nbytes:
        problem = "truncated" if file_nbytes < 8 + header_nbytes + position else "corrupt (larger than its tensors justify)"
        raise CorruptFileError(f"{what} {path} is {problem}: its tensors need {8 + header_nbytes + position} bytes, the file has {file_nbytes}.")
    return tensors


def _safetensors_entry_problem(entry) -> str:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        return "must be an object with exactly dtype, shape and data_offsets"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_ITEMSIZE:
        return f"has dtype {dtype!r:.40}, expected one of {sorted(SAFETENSORS_ITEMSIZE)}"
    if not isinstance(shape, list) or len(shape) > 32 or not all(is_int(n) and n >= 0 for n in shape):
        return "needs a shape of at most 32 non-negative integers"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(is_int(n) and n >= 0 for n in offsets) or offsets[0] > offsets[1]:
        return "needs data_offsets [begin, end] with 0 <= begin <= end"
    count = 1
    for n in shape:
        count *= n
    if offsets[1] - offsets[0] != count * SAFETENSORS_ITEMSIZE[dtype]:
        return f"has {offsets[1] - offsets[0]} bytes, its shape and dtype need {count * SAFETENSORS_ITEMSIZE[dtype]}"
    return ""
