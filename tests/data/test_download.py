"""Checksums and the verified fetch, exercised through file:// URLs (no network here)."""

import gzip
import hashlib
from pathlib import Path

import pytest

from hashlearn.data.download import content_sha256, default_cache_dir, fetch, verify_content
from hashlearn.data.vision import FASHION_MNIST_DEBIAN_DIR, FASHION_MNIST_SHA256
from hashlearn.errors import CorruptFileError

needs_debian_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_DEBIAN_DIR / "train-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)


def test_content_sha256_ignores_the_compression(tmp_path):
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"
    (tmp_path / "raw").write_bytes(payload)
    (tmp_path / "fast.gz").write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    (tmp_path / "best.gz").write_bytes(gzip.compress(payload, compresslevel=9, mtime=123))
    expected = hashlib.sha256(payload).hexdigest()
    assert {content_sha256(tmp_path / name) for name in ("raw", "fast.gz", "best.gz")} == {expected}


@needs_debian_fashion
def test_debian_fashion_mnist_matches_the_pinned_checksums():
    for name, sha256 in FASHION_MNIST_SHA256.items():
        verify_content(FASHION_MNIST_DEBIAN_DIR / name, sha256)


def test_verify_rejects_a_modified_file(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(b"original"))
    verify_content(path, hashlib.sha256(b"original").hexdigest())
    path.write_bytes(gzip.compress(b"tampered"))
    with pytest.raises(CorruptFileError, match="f.gz: checksum mismatch"):
        verify_content(path, hashlib.sha256(b"original").hexdigest())


def test_fetch_downloads_verifies_and_reuses(tmp_path):
    source = tmp_path / "server" / "file.gz"
    source.parent.mkdir()
    source.write_bytes(gzip.compress(b"payload"))
    sha256 = hashlib.sha256(b"payload").hexdigest()
    destination = tmp_path / "cache" / "file.gz"
    assert fetch(source.as_uri(), destination, sha256) == destination
    assert destination.read_bytes() == source.read_bytes()
    source.unlink()  # a verified copy is reused without touching the URL
    assert fetch(source.as_uri(), destination, sha256) == destination


def test_fetch_refuses_a_bad_download_and_leaves_nothing(tmp_path):
    source = tmp_path / "file.gz"
    source.write_bytes(gzip.compress(b"not what was expected"))
    destination = tmp_path / "cache" / "file.gz"
    with pytest.raises(CorruptFileError, match="failed verification"):
        fetch(source.as_uri(), destination, hashlib.sha256(b"payload").hexdigest())
    assert list(destination.parent.iterdir()) == []


def test_fetch_replaces_a_damaged_cached_copy(tmp_path):
    source = tmp_path / "file.gz"
    source.write_bytes(gzip.compress(b"payload"))
    destination = tmp_path / "cache" / "file.gz"
    destination.parent.mkdir()
    destination.write_bytes(gzip.compress(b"stale"))
    fetch(source.as_uri(), destination, hashlib.sha256(b"payload").hexdigest())
    assert gzip.decompress(destination.read_bytes()) == b"payload"


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HASHLEARN_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("HASHLEARN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == Path(tmp_path / "xdg" / "hashlearn")
