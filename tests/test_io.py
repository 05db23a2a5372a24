"""Atomic writes (issue 12): file modes follow the umask, re-saves keep the mode, and an
interrupted or killed save leaves the old file and no temporary file."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hashlearn._io import atomic_write_bytes, current_umask, read_versioned_json, regular_file
from hashlearn.errors import CorruptFileError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    def set_umask(mask):
        os.umask(mask)
        return mask

    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


def test_new_files_get_the_umask_mode(tmp_path, umask):
    """Everything was saved 0600 whatever the umask."""
    for mask, want in [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)]:
        umask(mask)
        assert current_umask() == mask
        path = atomic_write_bytes(tmp_path / f"new-{mask:o}", b"data")
        assert _mode(path) == want
        plain = tmp_path / f"plain-{mask:o}"
        plain.write_bytes(b"x")  # what open() gives: the reference
        assert _mode(plain) == want


def test_resave_keeps_the_mode(tmp_path, umask):
    """Re-saving a 0644 index made it unreadable to others (0600)."""
    umask(0o077)
    path = tmp_path / "index.hlx"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o644
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"newer")
    assert _mode(path) == 0o640


def test_writing_onto_a_directory_is_a_typed_error(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        atomic_write_bytes(tmp_path, b"x")


_WRITER = textwrap.dedent("""
    import signal, sys, time
    from hashlearn._io import atomic_write_chunks

    # what an interactive process has (a background job inherits both signals ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def chunks():
        yield b"new" * 1000
        print("writing", flush=True)
        while True:  # a long save: the signal arrives mid-write
            time.sleep(0.01)
            yield b"more"

    atomic_write_chunks(sys.argv[1], chunks())
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_save_removes_the_temp_file_and_keeps_the_old_file(tmp_path, signum):
    """SIGTERM during a save left a temp file behind (the old file always survived)."""
    target = tmp_path / "index.hlx"
    target.write_bytes(b"old contents")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert process.stdout.readline() == b"writing\n"
        temps = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
        assert len(temps) == 1  # the save is in progress
        time.sleep(0.05)
        process.send_signal(signum)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signum  # died of the signal (Python re-raises an unhandled SIGINT)
    assert os.listdir(tmp_path) == ["index.hlx"]
    assert target.read_bytes() == b"old contents"


def test_handler_is_restored_after_a_save(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    atomic_write_bytes(tmp_path / "x", b"1")
    assert signal.getsignal(signal.SIGTERM) is before


def test_regular_file_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        regular_file(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        regular_file(tmp_path / "missing" / "deeper")
    with pytest.raises(IsADirectoryError):
        regular_file(tmp_path)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        regular_file(tmp_path / "zero")
    (tmp_path / "f").write_bytes(b"abc")
    assert regular_file(tmp_path / "f")[1] == 3


@pytest.mark.parametrize("content, match", [
    (b"[" * 50_000 + b"]" * 50_000, "nests deeper"),
    (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"format_version": true}', "format version"),
    (b'{"format_version": -1}', "format version"),
    (b"[1, 2]", "JSON object"),
])
def test_versioned_json_refuses_hostile_content(tmp_path, content, match):
    path = tmp_path / "meta.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=match):
        read_versioned_json(path, 1)


def test_versioned_json_is_size_capped(tmp_path, monkeypatch):
    import hashlearn._io as io_module

    monkeypatch.setattr(io_module, "MAX_JSON_BYTES", 100)
    path = tmp_path / "meta.json"
    path.write_text('{"x": "' + "a" * 200 + '"}')
    with pytest.raises(CorruptFileError, match="more than the 100"):
        read_versioned_json(path, 1)


def test_sha256_file_reads_into_one_small_buffer(tmp_path, traced_peak):
    """The checksum read 1 MiB chunks (a new bytes object each): a model load's traced peak was
    three times its weights for a 0.5 MiB file."""
    import hashlib

    from hashlearn._io import sha256_file

    data = os.urandom(4 << 20)
    (tmp_path / "blob").write_bytes(data)
    digest, peak = traced_peak(lambda: sha256_file(tmp_path / "blob"))
    assert digest == hashlib.sha256(data).hexdigest()
    assert peak < 256 << 10
