"""Fetch data files into a cache folder and verify them by checksum.

Checksums are SHA-256 of the *decompressed* content: mirrors recompress the
``.gz`` files (Debian's Fashion-MNIST ``.gz`` files differ byte-wise from the
upstream ones but hold identical IDX data), and the content digest verifies
all of them alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from hashlearn.data.idx import read_file_bytes
from hashlearn.errors import CorruptFileError


def default_cache_dir() -> Path:
    """``$HASHLEARN_CACHE_DIR``, else ``$XDG_CACHE_HOME/hashlearn``, else ``~/.cache/hashlearn``."""
    if os.environ.get("HASHLEARN_CACHE_DIR"):
        return Path(os.environ["HASHLEARN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hashlearn"


def content_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the file's content after gzip decompression (when compressed)."""
    return hashlib.sha256(read_file_bytes(path)).hexdigest()


def verify_content(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raise :class:`CorruptFileError` unless the decompressed content of ``path`` has ``expected_sha256``."""
    actual = content_sha256(path)
    if actual != expected_sha256:
        raise CorruptFileError(
            f"{Path(path).name}: checksum mismatch: expected content SHA-256 {expected_sha256}, got {actual}; "
            "the file is corrupt or a different version. Delete it and fetch it again."
        )


def fetch(url: str, destination: str | os.PathLike, expected_sha256: str, *, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` unless a verified copy is already there.

    The file is written to a temporary name, verified, then renamed, so an
    interrupted or tampered download never appears under the final name.
    """
    import urllib.request  # only needed here; keeps `import hashlearn.data` light

    destination = Path(destination)
    if destination.is_file():
        try:
            verify_content(destination, expected_sha256)
            return destination
        except CorruptFileError:
            destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            shutil.copyfileobj(response, out)
        try:
            verify_content(tmp_name, expected_sha256)
        except CorruptFileError as error:
            raise CorruptFileError(f"download of {url} failed verification: {error}") from error
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return destination
