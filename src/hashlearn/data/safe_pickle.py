"""A restricted unpickler for array data that others pickled (CIFAR-10 batches, Animal-MNIST).

hashlearn never pickles anything itself, but some standard data sets are only published
as pickles, and ``pickle.load`` on a downloaded file runs any code the file names.
Loading here takes three steps:

1. **Scan** (:func:`scan_pickle`): every opcode is walked without building anything;
   every length field must be backed by bytes that are really there (CPython's unpickler
   allocates a ``BINBYTES8`` length *before* reading it: a 40-byte pickle could ask for
   1.6 GB), memo indices must be sane, and opcodes that build arbitrary objects
   (``INST``, ``OBJ``, ``NEWOBJ``, extension codes, persistent ids) are refused.
2. **Unpickle** with :class:`ArrayUnpickler`, which resolves only the few globals that
   rebuild numpy arrays (and ``_codecs.encode`` / ``bytes``, which protocol-2 pickles use
   for bytes), each to a stand-in that records its arguments; anything else --
   ``os.system``, ``builtins.eval``, any class -- is refused before it runs.
3. **Check** the result: arrays become real only here, and only plain bool, integer or
   float arrays whose data is exactly as long as their shape and dtype say (object,
   structured and sub-array dtypes are refused; no array is allocated beyond the bytes the
   file holds). The result may only hold those arrays, ``dict``, ``list``, ``tuple``,
   ``str``, ``bytes``, ``int``, ``float``, ``bool`` and ``None``.

Gzip files are decompressed as a stream, at most :data:`MAX_PICKLE_NBYTES` (or
``max_nbytes``) in all (the scan stops there; the load only follows a scan that passed). Every problem is a :class:`~hashlearn.errors.CorruptFileError`.
Arrays are returned read-only when they share the pickle's own bytes (no copy).

>>> import pickle, numpy as np
>>> safe_loads(pickle.dumps({"data": np.arange(3, dtype=np.uint8)}))["data"]
array([0, 1, 2], dtype=uint8)
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import pickletools
import zlib
from pathlib import Path

import numpy as np

from hashlearn._io import regular_file
from hashlearn.data._streams import GZIP_MAGIC
from hashlearn.errors import CorruptFileError

#: the most (decompressed) bytes a pickle may hold unless the caller allows more
MAX_PICKLE_NBYTES = 1 << 30
#: how deep the unpickled containers may nest
MAX_DEPTH = 32
_NUMERIC_KINDS = "biuf"
_REFUSED_OPCODES = {"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER"}
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_SKIP_CHUNK = 1 << 20


# --- 1. scan -----------------------------------------------------------------------------------
def scan_pickle(stream, source: str = "<bytes>", max_nbytes: int | None = None) -> int:
    """Walk the opcodes of the pickle in ``stream`` (``read`` / ``readline`` / ``tell``); returns
    their count. Length fields are checked by skipping the bytes they announce in chunks, so
    nothing is allocated for them; past ``max_nbytes`` of content the scan stops."""
    n_ops, memo_size = 0, 0
    while True:
        if max_nbytes is not None and stream.tell() > max_nbytes:
            raise CorruptFileError(f"{source}: the content exceeds the limit of {max_nbytes} bytes.")
        code = stream.read(1)
        if not code:
            raise CorruptFileError(f"{source}: not a valid pickle: it ends before its STOP opcode.")
        op = _OPCODES.get(code)
        if op is None:
            raise CorruptFileError(f"{source}: not a valid pickle: unknown opcode {code!r} at opcode {n_ops}.")
        if op.name in _REFUSED_OPCODES:
            raise CorruptFileError(f"{source}: refusing pickle opcode {op.name} (it builds arbitrary objects).")
        n_ops += 1
        value = _skip_argument(stream, op, source, max_nbytes)
        if op.name in _MEMO_PUT or op.name == "MEMOIZE":
            index = memo_size if op.name == "MEMOIZE" else value
            if not 0 <= index <= memo_size:  # a writer numbers its memo entries 0, 1, 2, ...
                raise CorruptFileError(f"{source}: not a valid pickle: memo index {index} out of order (the memo holds {memo_size}).")
            memo_size = max(memo_size, index + 1)
        elif op.name in _MEMO_GET and not 0 <= value < memo_size:
            raise CorruptFileError(f"{source}: not a valid pickle: memo index {value} was never stored.")
        if op.name == "STOP":
            return n_ops


def _skip_argument(stream, op, source: str, max_nbytes: int | None):
    """Consume ``op``'s argument; returns it for the small integer kinds (memo indices)."""
    arg = op.arg
    if arg is None:
        return None
    if arg.n == pickletools.UP_TO_NEWLINE:
        lines = 2 if arg.name == "stringnl_noescape_pair" else 1
        text = b""
        for _ in range(lines):
            limit = -1 if max_nbytes is None else max(1, max_nbytes - stream.tell() + 1)
            text = stream.readline(limit)  # a line is never longer than the content cap
            if not text.endswith(b"\n"):
                raise CorruptFileError(f"{source}: not a valid pickle: {op.name} lacks its newline-terminated argument.")
        if op.name in _MEMO_PUT | _MEMO_GET:
            try:
                return int(text)
            except ValueError:
                raise CorruptFileError(f"{source}: not a valid pickle: bad memo index {text[:20]!r}.") from None
        return None
    if arg.n >= 0:
        data = _read_exactly(stream, arg.n, op, source)
        return int.from_bytes(data, "little", signed=arg.name == "int4")
    prefix = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
              pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}[arg.n]
    length = int.from_bytes(_read_exactly(stream, prefix, op, source), "little", signed=arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
    if length < 0:
        raise CorruptFileError(f"{source}: not a valid pickle: {op.name} announces a negative length.")
    while length:  # skip in chunks: the bytes must exist, nothing is kept
        chunk = stream.read(min(length, _SKIP_CHUNK))
        if not chunk:
            raise CorruptFileError(f"{source}: not a valid pickle: {op.name} announces more bytes than the file holds (truncated?).")
        length -= len(chunk)
        if max_nbytes is not None and stream.tell() > max_nbytes:
            raise CorruptFileError(f"{source}: the content exceeds the limit of {max_nbytes} bytes.")
    return None


def _read_exactly(stream, n: int, op, source: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise CorruptFileError(f"{source}: not a valid pickle: {op.name} is truncated.")
    return data


# --- 2. unpickle into stand-ins --------------------------------------------------------------------
class _Dtype:
    """What ``numpy.dtype(...)`` in a pickle asked for; a real dtype only after checks."""

    def __init__(self, spec, align=False, copy=True):
        self.spec, self.byteorder = spec, None
        self.resolve()  # refused at once: an object array's million elements are never unpickled

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], str):
            raise CorruptFileError("refusing a numpy dtype with an unexpected pickled state.")
        if any(part is not None for part in state[2:5]):  # subarray, names, fields
            raise CorruptFileError("refusing a structured or sub-array dtype: only plain numeric arrays are allowed.")
        self.byteorder = state[1]

    def resolve(self) -> np.dtype:
        if not isinstance(self.spec, str) or len(self.spec) > 8:
            raise CorruptFileError(f"refusing the dtype {self.spec!r:.40}: only plain numeric arrays are allowed.")
        try:
            dtype = np.dtype(self.spec)
        except (TypeError, ValueError, SyntaxError):
            raise CorruptFileError(f"refusing the dtype {self.spec!r:.40}: not a numpy dtype.") from None
        if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise CorruptFileError(f"refusing to unpickle an array of dtype {dtype}: only plain numeric arrays (no object arrays) are allowed.")
        if self.byteorder in ("<", ">"):
            dtype = dtype.newbyteorder(self.byteorder)
        elif self.byteorder not in (None, "|", "="):
            raise CorruptFileError(f"refusing a dtype with byte order {self.byteorder!r:.10}.")
        return dtype


class _Array:
    """A pickled ``ndarray`` (``_reconstruct`` + ``__setstate__``), built only by :func:`_resolve`."""

    def __init__(self):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise CorruptFileError("refusing an ndarray with an unexpected pickled state.")
        _, shape, dtype, fortran, data = state
        return _array_from(data, dtype, shape, "F" if fortran is True else "C")


def _array_from(data, dtype, shape, order) -> np.ndarray:
    """An array on ``data`` (no copy) after checking dtype, shape and the exact byte count."""
    if not isinstance(dtype, _Dtype):
        raise CorruptFileError("refusing an ndarray whose dtype is not a pickled numpy dtype.")
    dtype = dtype.resolve()
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise CorruptFileError(f"refusing an ndarray of shape {shape!r:.60}: expected a tuple of non-negative integers.")
    if not isinstance(data, (bytes, bytearray)):
        raise CorruptFileError(f"refusing an ndarray whose data is a {type(data).__name__}, not bytes (an object array?).")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise CorruptFileError(f"refusing an ndarray of shape {shape} and dtype {dtype}: it needs {count * dtype.itemsize} bytes, the pickle holds {len(data)}.")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)


def _reconstruct(cls, shape, dtype_code):
    if cls is not _NDARRAY:
        raise CorruptFileError(f"refusing to reconstruct {cls!r:.80}: only numpy.ndarray is allowed.")
    return _Array()


def _frombuffer(buffer, dtype, shape, order):  # protocol 5 arrays (in-band)
    return _array_from(buffer, dtype, shape, order if order in ("C", "F") else "C")


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or errors != "strict":
        raise CorruptFileError("refusing _codecs.encode other than a string to latin1/utf-8 bytes.")
    try:
        return codecs.encode(text, encoding, errors)
    except UnicodeEncodeError as error:
        raise CorruptFileError(f"not a valid pickle: {error}") from None


def _bytes(*args):
    if not args:
        return b""
    if not isinstance(args[0], (bytes, str)) or len(args) > 2:  # bytes(10**12) would allocate a terabyte
        raise CorruptFileError("refusing bytes() of a non-string argument.")
    try:
        return bytes(*args)
    except (TypeError, LookupError, UnicodeEncodeError) as error:
        raise CorruptFileError(f"not a valid pickle: bytes{args!r:.60}: {error}") from None


class _NdarrayClass:
    """What ``numpy.ndarray`` resolves to: usable only as ``_reconstruct``'s first argument.

    Calling it (``ndarray(shape, "O")`` builds object arrays, ``ndarray((10**9,))``
    allocates gigabytes from a 40-byte pickle) is refused.
    """

    def __call__(self, *args, **kwargs):
        raise CorruptFileError("refusing to call numpy.ndarray directly (it allocates any shape and builds object arrays).")


_NDARRAY = _NdarrayClass()

#: (module, name) -> the only objects a pickle may refer to
_ALLOWED = {
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("builtins", "bytes"): _bytes,  # protocol 2 writes b"" as bytes()
    ("__builtin__", "bytes"): _bytes,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("_codecs", "encode"): _codecs_encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only numpy array reconstruction globals (to stand-ins)."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise CorruptFileError(
                f"refusing to unpickle global {module:.100}.{name:.100}: only numpy arrays and builtin containers are allowed "
                "(a pickle naming other globals can run arbitrary code)."
            ) from None

    def persistent_load(self, pid):
        raise CorruptFileError("refusing to unpickle a persistent id.")


# --- 3. check the result ---------------------------------------------------------------------------
_LEAVES = (str, bytes, bytearray, int, float, bool, type(None))


def _resolve(value, depth: int = 0):
    """The unpickled value with stand-ins turned into checked arrays; refuses anything else."""
    if depth > MAX_DEPTH:
        raise CorruptFileError(f"refusing containers nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, _Array):
        return value.resolve()
    if isinstance(value, np.ndarray):  # from _frombuffer: already checked
        return value
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, list):
        return [_resolve(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(_resolve(item, depth + 1) for item in value)
    if isinstance(value, dict):
        resolved = {}
        for key, item in value.items():
            if not isinstance(key, (str, bytes, int)):
                raise CorruptFileError(f"refusing a dict key of type {type(key).__name__}.")
            resolved[key] = _resolve(item, depth + 1)
        return resolved
    raise CorruptFileError(f"refusing to unpickle a {type(value).__name__}: only numeric arrays, lists, tuples, dicts, strings and numbers are allowed.")


def _load(make_stream, source: str, encoding: str, max_nbytes: int | None = None):
    try:
        scan_pickle(make_stream(), source, max_nbytes)
        return _resolve(ArrayUnpickler(make_stream(), encoding=encoding).load())
    except CorruptFileError as error:
        if str(error).startswith(f"{source}: "):
            raise
        raise CorruptFileError(f"{source}: {error}") from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError,
            LookupError, UnicodeDecodeError, RecursionError, zlib.error, gzip.BadGzipFile) as error:
        raise CorruptFileError(f"{source}: not a valid pickle: {type(error).__name__}: {str(error)[:300]}") from error


def safe_loads(data: bytes, *, encoding: str = "ASCII") -> object:
    """Unpickle ``data`` with :class:`ArrayUnpickler`; ``encoding="bytes"`` for Python 2 pickles."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}.")
    return _load(lambda: io.BytesIO(data), "<bytes>", encoding)


def safe_load_file(path: str | os.PathLike, *, encoding: str = "ASCII", max_nbytes: int = MAX_PICKLE_NBYTES) -> object:
    """Unpickle a file (gzip-compressed or not, detected by content) with :class:`ArrayUnpickler`.

    The file is streamed twice -- the scan, which bounds the content by ``max_nbytes`` and
    every length field by the bytes really present, then the load -- and never inflated
    into memory as a whole.
    """
    path, _ = regular_file(path, "pickle file")
    handles = []

    def stream():
        handle = open(path, "rb")
        handles.append(handle)
        compressed = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        if not compressed:
            return handle
        inflated = gzip.GzipFile(fileobj=handle, mode="rb")
        handles.append(inflated)
        return inflated

    try:
        return _load(stream, path.name, encoding, max_nbytes)
    finally:
        for handle in reversed(handles):
            handle.close()
