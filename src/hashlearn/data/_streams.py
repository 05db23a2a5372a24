"""Reading files that may be gzip-compressed as bounded streams.

``gzip.decompress`` inflates a whole file into memory with no limit (a 1 MB file became
1 GiB), and ``BufferedReader.read(n)`` allocates ``n`` bytes before it knows how many the
file holds, so a forged length field costs memory by itself. :class:`BoundedReader`
returns at most what the data holds and at most ``max_nbytes`` in all, decompressing in
chunks; the caller asks for what a validated header declares. gzip is detected by
content (``1f 8b``), not by the file name, and multi-member gzip files are read whole.

>>> import gzip, io
>>> reader = BoundedReader(io.BytesIO(gzip.compress(b"abc" * 4)), "x.gz", max_nbytes=100)
>>> reader.read(5), reader.read()
(b'abcab', b'cabcabc')
"""

from __future__ import annotations

import zlib

from hashlearn.errors import CorruptFileError

GZIP_MAGIC = b"\x1f\x8b"
#: the most bytes a compressed file may inflate to unless the caller allows more
MAX_DECOMPRESSED_NBYTES = 1 << 30
_CHUNK = 1 << 16  # inflated at a time: a read holds about five of these besides its result (input, tail, output, buffer, copy)


class BoundedReader:
    """A read-only, file-like view of ``raw`` (an open binary file), decompressed when it is gzip.

    ``read(n)`` never allocates more than the bytes it returns; reading past
    ``max_nbytes`` of (decompressed) content raises :class:`CorruptFileError`, as does a
    damaged or truncated gzip stream.
    """

    def __init__(self, raw, source: str, max_nbytes: int = MAX_DECOMPRESSED_NBYTES):
        self._raw, self.source, self.max_nbytes = raw, source, max_nbytes
        head = raw.read(2)
        self.compressed = head == GZIP_MAGIC
        self._input = head  # compressed bytes not yet inflated, or raw bytes not yet buffered
        self._inflater = zlib.decompressobj(wbits=31) if self.compressed else None
        self._buffer = bytearray()  # content read from the source, not yet returned
        self._position = 0  # content bytes returned so far

    def _more(self, wanted: int) -> bytes:
        """Up to ``wanted`` more content bytes from the source (at most one chunk); ``b""`` at the end."""
        wanted = min(wanted, _CHUNK)
        if not self.compressed:
            data, self._input = (self._input, b"") if self._input else (self._raw.read(wanted), b"")
            return data
        while True:
            if self._inflater.eof:  # a member ended: another may follow
                rest = self._inflater.unused_data or self._raw.read(_CHUNK)
                if not rest:
                    return b""
                self._inflater, self._input = zlib.decompressobj(wbits=31), rest
            if not self._input:
                self._input = self._raw.read(_CHUNK)
                if not self._input:
                    raise CorruptFileError(f"{self.source}: the gzip stream is truncated or corrupt (it ends early); delete the file and fetch it again.")
            try:
                out = self._inflater.decompress(self._input, wanted)
            except zlib.error as error:
                raise CorruptFileError(f"{self.source}: the gzip stream is truncated or corrupt ({error}); delete the file and fetch it again.") from None
            self._input = self._inflater.unconsumed_tail
            if out:
                return out

    def _fill(self, n: int) -> None:
        """Buffer at least ``n`` bytes, or all that is left (the cap is checked as content arrives)."""
        while len(self._buffer) < n:
            chunk = self._more(n - len(self._buffer))
            if not chunk:
                return
            self._buffer += chunk
            if self._position + len(self._buffer) > self.max_nbytes:
                raise CorruptFileError(f"{self.source}: the content exceeds the limit of {self.max_nbytes} bytes.")

    def _take(self, n: int) -> bytes:
        self._fill(n)
        if n >= len(self._buffer):
            data, self._buffer = bytes(self._buffer), bytearray()
        else:
            with memoryview(self._buffer) as view:
                data = bytes(view[:n])  # one copy (a bytearray slice would make two)
            del self._buffer[:n]
        self._position += len(data)
        return data

    # --- file-like API (what pickle.Unpickler and the IDX reader use) ------------------------
    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self._take(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        return self._take(n)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            if not self.compressed and not self._buffer and not self._input:  # straight from the file: no copy
                want = min(len(view) - done, self.max_nbytes - self._position + 1)
                got = self._raw.readinto(view[done : done + want]) if want > 0 else 0
                if not got:
                    break
                done, self._position = done + got, self._position + got
                if self._position > self.max_nbytes:
                    raise CorruptFileError(f"{self.source}: the content exceeds the limit of {self.max_nbytes} bytes.")
                continue
            chunk = self._take(min(len(view) - done, _CHUNK))
            if not chunk:
                break
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        return done

    def readline(self, limit: int = -1) -> bytes:
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                return self._take(end + 1 if limit < 0 else min(end + 1, limit))
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            searched = len(self._buffer)
            self._fill(len(self._buffer) + (1 << 16))
            if len(self._buffer) == searched:  # the end of the content
                return self._take(searched)

    def at_end(self) -> bool:
        """Whether all content has been read (reads at most one more byte)."""
        self._fill(1)
        return not self._buffer

    def tell(self) -> int:
        return self._position

    def declared_size(self) -> int | None:
        """The uncompressed size (mod 2**32) a gzip file's last member declares (its ISIZE
        trailer), ``None`` for plain files; read without moving the stream."""
        if not self.compressed:
            return None
        here = self._raw.tell()
        try:
            self._raw.seek(-4, 2)
            trailer = self._raw.read(4)
        finally:
            self._raw.seek(here)
        return int.from_bytes(trailer, "little") if len(trailer) == 4 else None


def open_bounded(path, what: str = "file", max_nbytes: int = MAX_DECOMPRESSED_NBYTES):
    """``(open file, BoundedReader)`` of a regular file (see :func:`hashlearn._io.regular_file`)."""
    from hashlearn._io import regular_file

    path, _ = regular_file(path, what)
    handle = open(path, "rb")
    try:
        return handle, BoundedReader(handle, path.name, max_nbytes)
    except BaseException:
        handle.close()
        raise
