"""A restricted unpickler for array data that others pickled (CIFAR-10 batches, Animal-MNIST).

hashlearn never pickles anything itself, but some standard data sets are only published
as pickles, and ``pickle.load`` on a downloaded file runs any code the file names.
Loading here takes three steps:

1. **Scan** (:func:`scan_pickle`): every opcode is walked without building anything;
   every length field must be backed by bytes that are really there (CPython's unpickler
   allocates a ``BINBYTES8`` length *before* reading it: a 40-byte pickle could ask for
   1.6 GB), memo indices must come in order (from 0, or from 1 as Python 2's cPickle
   numbered them), and opcodes that build arbitrary objects (``INST``, ``OBJ``,
   ``NEWOBJ``, extension codes, persistent ids) are refused. The stream is read in
   256 KiB chunks: a pickle of a million small objects costs a second or two, no more.
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
``max_nbytes``) in all (the scan stops there; the load only follows a scan that passed).
Every problem is a :class:`~hashlearn.errors.CorruptFileError`. Arrays are returned
read-only when they share the pickle's own bytes (no copy). The published CIFAR-10
batches were written by Python 2 (dtype names and array data as byte strings); with
``encoding="bytes"`` their data is read straight into the array's buffer, so a batch
costs its array once (plus the 256 KiB read chunks), not twice. Python 3 writes array
data at protocol 2 as a latin-1 ``str`` passed to ``_codecs.encode``; the unpickler would
hold that data three times (UTF-8, ``str``, ``bytes``): here it is transcoded in 64 KiB
pieces into one ``bytes`` object (see :class:`_Rewritten`).

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
from hashlearn.data._streams import GZIP_MAGIC, BoundedReader
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
_SKIP_CHUNK = 1 << 18
_TRANSCODE_CHUNK = 1 << 16  # UTF-8 bytes transcoded to latin-1 at a time


# --- 1. scan -----------------------------------------------------------------------------------
# One entry per opcode byte: (name, how its argument is read, fixed width or length-prefix width,
# whether that integer is signed, what the scan must do besides skipping it).
_NONE, _FIXED, _LINES, _COUNTED = range(4)
_PLAIN, _REFUSED, _PUT, _GET, _MEMOIZE, _STOP = range(6)
_PREFIX_WIDTH = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _opcode_table() -> list:
    table = [None] * 256
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            how = (_NONE, 0, False)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            how = (_LINES, 2 if arg.name == "stringnl_noescape_pair" else 1, False)
        elif arg.n >= 0:
            how = (_FIXED, arg.n, arg.name == "int4")
        else:
            how = (_COUNTED, _PREFIX_WIDTH[arg.n], arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
        action = (_REFUSED if op.name in _REFUSED_OPCODES else _PUT if op.name in _MEMO_PUT else _GET if op.name in _MEMO_GET
                  else _MEMOIZE if op.name == "MEMOIZE" else _STOP if op.name == "STOP" else _PLAIN)
        table[ord(op.code.encode("latin-1"))] = (op.name, *how, action)
    return table


_TABLE = _opcode_table()
_LARGE_STRING = 1 << 16
_LOOKAHEAD = 16  # more than the longest fixed part of an opcode (1 code byte + an 8-byte argument)


class _Window:
    """A stream read in chunks; ``data[pos:]`` is what has not been consumed yet."""

    def __init__(self, stream, source: str, max_nbytes: int | None):
        self.stream, self.source, self.max_nbytes = stream, source, max_nbytes
        self.data, self.pos, self.base = b"", 0, 0  # base: the stream offset of data[0]
        self.ended = False  # the stream returned b"": not asked again (the last opcodes would each ask)

    def fill(self, wanted: int) -> None:
        """Make at least ``wanted`` unconsumed bytes available if the stream holds them."""
        while len(self.data) - self.pos < wanted and not self.ended:
            chunk = self.stream.read(_SKIP_CHUNK)
            if not chunk:
                self.ended = True
                return
            self.base += self.pos
            self.data = self.data[self.pos :] + chunk
            self.pos = 0
            self.check_cap()

    def check_cap(self, extra: int = 0) -> None:
        if self.max_nbytes is not None and self.base + self.pos + extra > self.max_nbytes:
            raise CorruptFileError(f"{self.source}: the content exceeds the limit of {self.max_nbytes} bytes.")

    def skip(self, length: int, visit=None) -> bool:
        """Consume ``length`` bytes without keeping them; ``False`` if the stream ends first.

        ``visit``, if given, is called on each piece of the consumed bytes (a memoryview)."""
        held = len(self.data) - self.pos
        if length <= held:
            if visit is not None:
                with memoryview(self.data) as view:
                    visit(view[self.pos : self.pos + length])
            self.pos += length
            return True
        if visit is not None and held:
            with memoryview(self.data) as view:
                visit(view[self.pos :])
        length -= held
        self.base, self.data, self.pos = self.base + len(self.data), b"", 0
        while length:
            chunk = self.stream.read(min(length, _SKIP_CHUNK))
            if not chunk:
                return False
            if visit is not None:
                visit(memoryview(chunk))
            length -= len(chunk)
            self.base += len(chunk)
        return True


def scan_pickle(stream, source: str = "<bytes>", max_nbytes: int | None = None, large_binstrings: list | None = None,
                latin1_strings: list | None = None) -> int:
    """Walk the opcodes of the pickle in ``stream`` (anything with ``read``); returns their count.

    ``large_binstrings``, if given, receives the stream offsets of the ``BINSTRING``
    opcodes that announce at least :data:`_LARGE_STRING` bytes (see :class:`_Rewritten`).
    ``latin1_strings``, if given, receives ``(offset, utf8_nbytes, latin1_nbytes)`` of each
    large ``BINUNICODE``/``BINUNICODE8`` that is the first argument of ``_codecs.encode``
    (how Python 3 writes ``bytes``, such as array data, at protocol 2), holds only
    characters below U+0100 and is not fetched from the memo again: the load reads those
    as ``BINBYTES`` of their latin-1 encoding (:class:`_Rewritten`).

    Length fields are checked by skipping the bytes they announce, so nothing is
    allocated for them; past ``max_nbytes`` of content the scan stops. The stream is
    read in 256 KiB chunks and the opcodes are decoded from those (a pickle of a million
    small objects takes a second or two, not one ``read`` call per opcode).
    """
    window = _Window(stream, source, max_nbytes)
    n_ops, memo_size, table = 0, 0, _TABLE
    data, pos, end = b"", 0, 0
    # what the latin-1 rewrite must know: whether the top of the stack is the _codecs.encode global,
    # which memo slots hold that global, and which hold a candidate string (fetching one again disqualifies it)
    top_is_encode, encode_slots, candidate_slots, candidates, last_candidate = False, set(), {}, [], None
    while True:
        if pos + _LOOKAHEAD > end:
            window.pos = pos
            window.check_cap()
            window.fill(_LOOKAHEAD)
            data, pos = window.data, window.pos
            end = len(data)
            if pos >= end:
                raise CorruptFileError(f"{source}: not a valid pickle: it ends before its STOP opcode.")
        entry = table[data[pos]]
        if entry is None:
            raise CorruptFileError(f"{source}: not a valid pickle: unknown opcode {data[pos : pos + 1]!r} at opcode {n_ops}.")
        name, kind, width, signed, action = entry
        n_ops += 1
        pos += 1
        value = None
        if action == _REFUSED:
            raise CorruptFileError(f"{source}: refusing pickle opcode {name} (it builds arbitrary objects).")
        if kind == _FIXED or kind == _COUNTED:
            if pos + width > end:
                raise CorruptFileError(f"{source}: not a valid pickle: {name} is truncated.")
            value = int.from_bytes(data[pos : pos + width], "little", signed=signed)
            pos += width
            if kind == _COUNTED:
                if value < 0:
                    raise CorruptFileError(f"{source}: not a valid pickle: {name} announces a negative length.")
                if large_binstrings is not None and value >= _LARGE_STRING and name == "BINSTRING":
                    large_binstrings.append(window.base + pos - width - 1)
                if top_is_encode and latin1_strings is not None and value >= _LARGE_STRING and name in ("BINUNICODE", "BINUNICODE8"):
                    offset, count = window.base + pos - width - 1, _Latin1Count()
                    window.pos = pos
                    window.check_cap(value)
                    if not window.skip(value, count):
                        raise CorruptFileError(f"{source}: not a valid pickle: {name} announces more bytes than the file holds (truncated?).")
                    data, pos = window.data, window.pos
                    end = len(data)
                    top_is_encode, last_candidate = False, None
                    if count.latin1:
                        candidates.append([offset, value, value - count.continuation, True])
                        last_candidate = len(candidates) - 1
                    continue
                if pos + value > end:  # past the window: the bytes must exist; nothing is kept
                    window.pos = pos
                    window.check_cap(value)
                    if not window.skip(value):
                        raise CorruptFileError(f"{source}: not a valid pickle: {name} announces more bytes than the file holds (truncated?).")
                    data, pos = window.data, window.pos
                    end = len(data)
                else:
                    pos += value
        elif kind == _LINES:
            window.pos = pos
            value = _skip_lines(window, width, name)
            data, pos = window.data, window.pos
            end = len(data)
        if action == _PLAIN:
            top_is_encode, last_candidate = name == "GLOBAL" and value == [b"_codecs\n", b"encode\n"], None
            continue
        if action == _PUT or action == _MEMOIZE:
            index = memo_size if action == _MEMOIZE else value
            # writers number their memo entries 0, 1, 2, ... (Python 2's cPickle, which wrote the
            # published CIFAR-10 batches, from 1); an index far ahead would make the C unpickler
            # grow its memo table to that size, so at most one entry may be skipped
            if not 0 <= index <= memo_size + 1:
                raise CorruptFileError(f"{source}: not a valid pickle: memo index {index} out of order (the memo holds {memo_size}).")
            memo_size = max(memo_size, index + 1)
            (encode_slots.add if top_is_encode else encode_slots.discard)(index)
            if last_candidate is not None:
                candidate_slots[index] = last_candidate
            else:
                candidate_slots.pop(index, None)
        elif action == _GET:
            if not 0 <= value < memo_size:
                raise CorruptFileError(f"{source}: not a valid pickle: memo index {value} was never stored.")
            top_is_encode, last_candidate = value in encode_slots, None
            if value in candidate_slots:  # the string is used twice: it stays a str
                candidates[candidate_slots[value]][3] = False
        elif action == _STOP:
            if latin1_strings is not None:
                latin1_strings.extend((offset, n_in, n_out) for offset, n_in, n_out, usable in candidates if usable)
            return n_ops


class _Latin1Count:
    """Visits UTF-8 bytes: counts continuation bytes; ``latin1`` stays true while no byte
    starts a character above U+00FF (lead bytes from 0xC4 on; 0xC0/0xC1 fail decoding later)."""

    def __init__(self):
        self.continuation, self.latin1 = 0, True

    def __call__(self, piece) -> None:
        for start in range(0, len(piece), _TRANSCODE_CHUNK):  # small slices: the temporaries stay small
            if not self.latin1:
                return
            values = np.frombuffer(piece[start : start + _TRANSCODE_CHUNK], dtype=np.uint8)
            if np.count_nonzero(values >= 0xC4):
                self.latin1 = False
                return
            self.continuation += int(np.count_nonzero((values & 0xC0) == 0x80))


def _skip_lines(window: _Window, lines: int, name: str):
    """Consume ``lines`` newline-terminated lines; returns the last as an int for memo opcodes,
    else the lines (of a streamed line, its first 64 bytes).

    A line longer than what the window holds is streamed through (only its first bytes
    are kept), so a long line costs no more memory than a short one."""
    text, texts, streamed = b"", [], False
    for _ in range(lines):
        window.fill(256)
        end = window.data.find(b"\n", window.pos)
        if end >= 0:
            text, window.pos = window.data[window.pos : end + 1], end + 1
            texts.append(text)
            continue
        text, streamed = window.data[window.pos : window.pos + 64], True
        window.base, window.data, window.pos = window.base + len(window.data), b"", 0
        while True:
            chunk = window.stream.read(_SKIP_CHUNK)
            if not chunk:
                raise CorruptFileError(f"{window.source}: not a valid pickle: {name} lacks its newline-terminated argument.")
            end = chunk.find(b"\n")
            if len(text) < 64:
                text += chunk[: 64 - len(text) if end < 0 else min(end + 1, 64 - len(text))]
            if end >= 0:
                window.data, window.pos = chunk, end + 1
                break
            window.base += len(chunk)
            window.check_cap()
        texts.append(text)
    if name in _MEMO_PUT | _MEMO_GET:
        if streamed:  # only its first bytes were kept: the index the unpickler would read is unknown
            raise CorruptFileError(f"{window.source}: not a valid pickle: a memo index line longer than any index ({text[:20]!r}...).")
        try:
            return int(text)
        except ValueError:
            raise CorruptFileError(f"{window.source}: not a valid pickle: bad memo index {text[:20]!r}.") from None
    return texts


# --- 2. unpickle into stand-ins --------------------------------------------------------------------
def _text(value):
    """Python 2 pickles hold ``str`` as bytes (unpickled with ``encoding="bytes"``): short
    ASCII bytes become text, anything else is returned as it is (and refused later)."""
    if isinstance(value, bytes) and len(value) <= 8:
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return value
    return value


class _Dtype:
    """What ``numpy.dtype(...)`` in a pickle asked for; a real dtype only after checks."""

    def __init__(self, spec, align=False, copy=True):
        self.spec, self.byteorder = _text(spec), None
        self.resolve()  # refused at once: an object array's million elements are never unpickled

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(_text(state[1]), str):
            raise CorruptFileError("refusing a numpy dtype with an unexpected pickled state.")
        if any(part is not None for part in state[2:5]):  # subarray, names, fields
            raise CorruptFileError("refusing a structured or sub-array dtype: only plain numeric arrays are allowed.")
        self.byteorder = _text(state[1])

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
    if not isinstance(text, (str, bytes)) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or errors != "strict":
        raise CorruptFileError("refusing _codecs.encode other than a string to latin1/utf-8 bytes.")
    if isinstance(text, bytes):  # a large string the load read as its latin-1 bytes (see _Rewritten)
        if encoding in ("latin1", "latin-1"):
            return text
        text = text.decode("latin-1")  # exactly the string the pickle held
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


class _Rewritten:
    """The pickle stream with some large strings read as bytes, so that each costs its size once.

    ``rewrites`` are ``(offset, n_in, n_out)`` of opcodes in the stream, by offset:

    * ``BINSTRING`` (``n_in is None``): Python 2 pickles (the published CIFAR-10 batches)
      hold array data as ``BINSTRING``; with ``encoding="bytes"`` it unpickles to the same
      ``bytes`` as ``BINBYTES``, with the same layout (a 4-byte length, then the data), but
      CPython's unpickler reads ``BINSTRING`` into a buffer and copies it, while it reads
      ``BINBYTES`` straight into the result. Only the opcode byte changes.
    * ``BINUNICODE``/``BINUNICODE8`` of ``n_in`` UTF-8 bytes and ``n_out`` characters below
      U+0100, the first argument of ``_codecs.encode`` (Python 3 writes ``bytes`` so at
      protocol 2): read as the ``BINBYTES``/``BINBYTES8`` of its latin-1 encoding, which
      is what ``_codecs.encode(text, "latin1")`` returns. The unpickler would hold the UTF-8
      buffer, the ``str`` and the encoded ``bytes`` (three copies); here the UTF-8 bytes are
      transcoded in 64 KiB pieces straight into the one ``bytes`` object.
    """

    _BYTES_FOR = {pickle.BINUNICODE: (pickle.BINBYTES, 4), pickle.BINUNICODE8: (pickle.BINBYTES8, 8)}

    def __init__(self, stream, rewrites: list[tuple[int, int | None, int | None]]):
        self.stream, self.rewrites, self.next = stream, rewrites, 0
        self.position = 0  # offset in the underlying stream
        self.pending = b""  # rewritten bytes not handed out yet (an opcode header or a transcoded piece)
        self.utf8_left = self.latin1_left = 0  # of the string being transcoded
        self.decoder = None

    def _until_rewrite(self) -> int:
        return self.rewrites[self.next][0] - self.position if self.next < len(self.rewrites) else -1

    def _raw(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.position += len(data)
        return data

    def _piece(self, n: int) -> bytes:
        """At most ``n`` (>= 1) bytes of the rewritten stream; ``b""`` at its end."""
        while True:
            if self.pending:
                data, self.pending = self.pending[:n], self.pending[n:]
                return data
            if self.utf8_left:
                raw = self._raw(min(self.utf8_left, _TRANSCODE_CHUNK))
                if not raw:
                    raise CorruptFileError("not a valid pickle: a string is truncated (did the file change while it was read?).")
                self.utf8_left -= len(raw)
                try:
                    self.pending = self.decoder.decode(raw, final=not self.utf8_left).encode("latin-1")
                except (UnicodeDecodeError, UnicodeEncodeError) as error:
                    raise CorruptFileError(f"not a valid pickle: a latin-1 string: {error}") from None
                self.latin1_left -= len(self.pending)
                if self.latin1_left < 0 or (not self.utf8_left and self.latin1_left):
                    raise CorruptFileError("not a valid pickle: a string changed while it was read.")
                continue
            until = self._until_rewrite()
            if until != 0:
                return self._raw(n if until < 0 else min(n, until))
            _, n_in, n_out = self.rewrites[self.next]
            self.next += 1
            code = self._raw(1)
            if n_in is None:  # BINSTRING -> BINBYTES
                self.pending = pickle.BINBYTES if code == pickle.BINSTRING else code
                continue
            new_code, width = self._BYTES_FOR.get(code, (None, 0))
            if new_code is None or len(self._raw(width)) != width:
                raise CorruptFileError("not a valid pickle: it changed while it was read.")
            self.pending = new_code + n_out.to_bytes(width, "little")
            self.utf8_left, self.latin1_left = n_in, n_out
            self.decoder = codecs.getincrementaldecoder("utf-8")()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        if not self.pending and not self.utf8_left and (self._until_rewrite() < 0 or self._until_rewrite() >= n):
            return self._raw(n)  # the common case: nothing to rewrite in these bytes
        pieces = []
        while n > 0:
            piece = self._piece(n)
            if not piece:
                break
            pieces.append(piece)
            n -= len(piece)
        return b"".join(pieces)

    def readinto(self, buffer) -> int:
        with memoryview(buffer).cast("B") as view:
            filled = 0
            while filled < len(view):
                wanted, until = len(view) - filled, self._until_rewrite()
                if not self.pending and not self.utf8_left and until != 0:  # plain bytes: straight into the buffer
                    got = self.stream.readinto(view[filled : filled + (wanted if until < 0 else min(wanted, until))])
                    if not got:
                        break
                    self.position += got
                    filled += got
                    continue
                piece = self._piece(wanted)
                if not piece:
                    break
                view[filled : filled + len(piece)] = piece
                filled += len(piece)
        return filled

    def readline(self, size: int = -1) -> bytes:
        if self.pending or self.utf8_left:
            raise CorruptFileError("not a valid pickle: a line argument inside a string.")
        line = self.stream.readline(size)
        until = self._until_rewrite()
        if 0 <= until < len(line):
            raise CorruptFileError("not a valid pickle: it changed while it was read.")
        self.position += len(line)
        return line


def _load(make_stream, source: str, encoding: str, max_nbytes: int | None = None):
    try:
        large_binstrings, latin1_strings = ([] if encoding == "bytes" else None), []
        scan_pickle(make_stream(), source, max_nbytes, large_binstrings, latin1_strings)
        stream = make_stream()
        rewrites = sorted([(offset, None, None) for offset in large_binstrings or ()] + latin1_strings)
        if rewrites:
            stream = _Rewritten(stream, rewrites)
        return _resolve(ArrayUnpickler(stream, encoding=encoding).load())
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
        # inflated in chunks, at most max_nbytes; its readinto fills the caller's buffer
        # without an intermediate copy (GzipFile.readinto reads a whole copy first)
        return BoundedReader(handle, path.name, max_nbytes)

    try:
        return _load(stream, path.name, encoding, max_nbytes)
    finally:
        for handle in reversed(handles):
            handle.close()
