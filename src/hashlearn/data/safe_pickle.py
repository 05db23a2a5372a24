"""A restricted unpickler for array data that others pickled (CIFAR-10 batches, Animal-MNIST).

hashlearn never pickles anything itself, but some standard data sets are
only published as pickles, and ``pickle.load`` on a downloaded file runs any
code the file names. :class:`ArrayUnpickler` resolves only the few globals
that rebuild numpy arrays (and ``_codecs.encode`` and ``bytes``, which
protocol-2 pickles use for bytes); builtin containers, strings, bytes and numbers need no global
at all. Anything else -- ``os.system``, ``builtins.eval``, any class -- is
refused with :class:`~hashlearn.errors.CorruptFileError` before it runs, and
object arrays (which could smuggle arbitrary objects) are refused too.

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
import zlib
from pathlib import Path

import numpy as np

from hashlearn.errors import CorruptFileError


def _safe_dtype(*args, **kwargs) -> np.dtype:
    dtype = np.dtype(*args, **kwargs)
    if dtype.hasobject:
        raise CorruptFileError(f"refusing to unpickle an object array (dtype {dtype}): it could hold arbitrary objects.")
    return dtype


def _safe_reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise CorruptFileError(f"refusing to reconstruct {cls!r}: only numpy.ndarray is allowed.")
    return np.ndarray.__new__(np.ndarray, shape, _safe_dtype(dtype_code))


def _safe_codecs_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str):
        raise CorruptFileError("refusing _codecs.encode on a non-string argument.")
    return codecs.encode(text, encoding, errors)


def _safe_bytes(*args):
    if args and not isinstance(args[0], (bytes, str)):  # bytes(10**12) would allocate a terabyte
        raise CorruptFileError("refusing bytes() of a non-string argument.")
    return bytes(*args)


def _safe_frombuffer(buffer, dtype, shape, order):
    array = np.frombuffer(buffer, dtype=_safe_dtype(dtype)).reshape(shape, order=order)
    return array.copy(order="K")


#: (module, name) -> the only objects a pickle may refer to
_ALLOWED = {
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,  # protocol 5 out-of-band arrays
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("builtins", "bytes"): _safe_bytes,  # protocol 2 writes b"" as bytes()
    ("__builtin__", "bytes"): _safe_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("_codecs", "encode"): _safe_codecs_encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only numpy array reconstruction globals."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise CorruptFileError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays and builtin containers are allowed "
                "(a pickle naming other globals can run arbitrary code)."
            ) from None

    def persistent_load(self, pid):
        raise CorruptFileError("refusing to unpickle a persistent id.")


def safe_loads(data: bytes, *, encoding: str = "ASCII") -> object:
    """Unpickle ``data`` with :class:`ArrayUnpickler`; ``encoding="bytes"`` for Python 2 pickles."""
    try:
        return ArrayUnpickler(io.BytesIO(data), encoding=encoding).load()
    except CorruptFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise CorruptFileError(f"not a valid pickle: {type(error).__name__}: {error}") from error


def safe_load_file(path: str | os.PathLike, *, encoding: str = "ASCII") -> object:
    """Unpickle a file (gzip-compressed or not) with :class:`ArrayUnpickler`."""
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise CorruptFileError(f"{path.name}: the gzip stream is truncated or corrupt ({error}).") from error
    try:
        return safe_loads(raw, encoding=encoding)
    except CorruptFileError as error:
        raise CorruptFileError(f"{path.name}: {error}") from error
