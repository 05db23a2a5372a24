"""Every user mistake is one line on stderr and exit status 2, through the real command; a bug prints its traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hashlearn.cli.main import main, user_error_message

SRC = str(Path(__file__).resolve().parents[2] / "src")


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("hashlearn ") and "error:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def hashlearn(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "HASHLEARN_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "hashlearn", *args], capture_output=True, text=True, env=env, timeout=120, **kwargs)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["encode", "--model", "R", "--dataset", "digits", "--batch-size", "-5"], ["--batch-size", "integer >= 1", "-5"]),
        (["evaluate", "--model", "R", "--radius", "-1"], ["--radius", "integer >= 0"]),
        (["evaluate", "--model", "R", "-k", "0"], ["-k/--k", "integer >= 1"]),
        (["search", "--index", "i.hlx", "--queries", "q.npy", "--k", "zero"], ["-k/--k"]),
        (["attack", "--model", "R", "--steps", "0"], ["--steps"]),
        (["backdoor", "--attack", "badnets", "--rate", "1.5", "--run-dir", "R"], ["--rate", "(0, 1]"]),
        (["train", "--bits", "-8"], ["--bits"]),
        (["demo", "--deep-epochs", "0"], ["--deep-epochs"]),
        (["features", "digits", "--limit", "-1"], ["--limit"]),
    ],
)
def test_out_of_range_options(argv, needles, capsys):
    assert main(argv) == 2
    one_line_error(capsys, *needles)


def test_config_mistakes(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"trainer": {"lr": 0.1,}}')
    (tmp_path / "bad.toml").write_text("[trainer\nlr = 0.1")
    base = ["train", "--dataset", "digits", "-q", "--run-dir", str(tmp_path / "r")]
    assert main([*base, "--config", str(tmp_path / "bad.json")]) == 2
    one_line_error(capsys, "not valid JSON")
    assert main([*base, "--config", str(tmp_path / "bad.toml")]) == 2
    one_line_error(capsys, "not valid TOML")
    assert main([*base, "--config", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path))
    assert main([*base, "--set", "model.hidden=[-1]"]) == 2
    one_line_error(capsys, "model.hidden", "[-1]")
    assert main([*base, "--set", "trainer.device=cuda:9"]) == 2
    one_line_error(capsys, "cuda:9")
    assert main([*base, "--set", "trainer.device=toaster"]) == 2
    one_line_error(capsys, "toaster")
    assert not (tmp_path / "r" / "model").exists()


def test_folders_where_files_are_expected(digits_run, tmp_path, capsys):
    assert main(["search", "--index", str(tmp_path), "--queries", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path))
    assert main(["encode", "--model", str(digits_run), "--input", str(tmp_path), "-o", str(tmp_path / "c.npy")]) == 2
    one_line_error(capsys, str(tmp_path))
    assert main(["index", "build", "--codes", str(tmp_path), "-o", str(tmp_path / "i.hlx")]) == 2
    one_line_error(capsys, str(tmp_path))
    (tmp_path / "out.hlx").mkdir()
    np.save(tmp_path / "codes.npy", np.zeros((4, 2), np.uint8))
    assert main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "-o", str(tmp_path / "out.hlx")]) == 2
    one_line_error(capsys, "out.hlx")


def test_damaged_runs(digits_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    (run / "split" / "split.json").write_text("{broken")
    assert main(["evaluate", "--model", str(run), "-q"]) == 2
    one_line_error(capsys, "split.json", "not valid JSON")
    (run / "split" / "split.json").write_text(json.dumps({"format_version": 1}))
    assert main(["attack", "--model", str(run), "-q"]) == 2
    one_line_error(capsys)
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "digits", "bogus": 1}}))
    assert main(["evaluate", "--model", str(run), "-q"]) == 2
    one_line_error(capsys, "unknown config key 'data.bogus'")


def test_input_spec_is_enforced(digits_run, tmp_path, capsys):
    """uint8 0-255 images are converted (and told); float 0-255 values, --eps 8 and --radius 99 on 16 bits are refused."""
    from hashlearn.data import load_dataset
    from hashlearn.runs import load_run

    X = load_dataset("digits").data[:30]
    model = load_run(digits_run).load_model()
    assert model.input_spec.value_range == (0.0, 1.0) and model.input_spec.integer_scale == 16
    np.save(tmp_path / "raw.npy", np.round(X * 16).astype(np.uint8))  # sklearn's raw digits: counts 0-16
    assert main(["encode", "--model", str(digits_run), "--input", str(tmp_path / "raw.npy"), "-o", str(tmp_path / "c.npy")]) == 0
    assert "converted --input" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), model.encode(X))
    np.save(tmp_path / "scaled.npy", (X * 255).astype(np.float32))
    assert main(["encode", "--model", str(digits_run), "--input", str(tmp_path / "scaled.npy"), "-o", str(tmp_path / "d.npy")]) == 2
    one_line_error(capsys, "[0, 255]", "[0, 1]")
    assert not (tmp_path / "d.npy").exists()
    np.save(tmp_path / "wide.npy", np.zeros((3, 100), np.float32))
    assert main(["encode", "--model", str(digits_run), "--input", str(tmp_path / "wide.npy"), "-o", str(tmp_path / "e.npy")]) == 2
    one_line_error(capsys, "(100,)", "(64,)")
    assert main(["attack", "--model", str(digits_run), "--eps", "8", "-q"]) == 2
    one_line_error(capsys, "eps=8", "input range [0, 1]")
    assert main(["evaluate", "--model", str(digits_run), "--radius", "99", "-q"]) == 2
    one_line_error(capsys, "radius", "[0, 16]", "99")


def test_port_in_use(tmp_path):
    from hashlearn.index.flat import FlatIndex
    from hashlearn.index.io import save_index

    index = FlatIndex(16)
    index.add(np.zeros((3, 2), np.uint8))
    path = save_index(index, tmp_path / "i.hlx")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hashlearn("serve", "--index", str(path), "--port", str(port), "-q")
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in result.stderr and "in use" in err[0], result.stderr


def test_closed_pipe_is_not_a_traceback(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "codes.npy", rng.integers(0, 256, (2000, 8), dtype=np.uint8))
    assert main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "-o", str(tmp_path / "i.hlx"), "-q"]) == 0
    command = (f"{sys.executable} -m hashlearn search --index {tmp_path / 'i.hlx'} --queries {tmp_path / 'codes.npy'} -k 50 | head -n 1; "
               "exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})
    assert result.stdout.startswith("0\t0:0") and len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "closed" in result.stderr


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB tmpfs (needs the right to mount; skipped where there is none)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the ENOSPC message is checked by test_disk_full_message")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_disk_full(tiny_filesystem, tmp_path, capsys):
    np.save(tmp_path / "codes.npy", np.random.default_rng(1).integers(0, 256, (40_000, 8), dtype=np.uint8))  # 320 KB
    assert main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "-o", str(tiny_filesystem / "db.hlx"), "-q"]) == 2
    one_line_error(capsys, "no space left")
    assert list(tiny_filesystem.iterdir()) == []  # the atomic write left no half-written or temporary file


def test_disk_full_message():
    message = user_error_message(OSError(errno.ENOSPC, "No space left on device", "/mnt/db.hlx"))
    assert "no space left" in message and "/mnt/db.hlx" in message


def test_a_bug_prints_its_traceback_and_asks_to_report(monkeypatch, capsys):
    import hashlearn.runs

    def broken(*args, **kwargs):
        raise RuntimeError("an internal invariant failed")

    monkeypatch.setattr(hashlearn.runs, "evaluate_run", broken)
    assert main(["evaluate", "--model", "R", "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "an internal invariant failed" in err and "bug in hashlearn" in err and "report" in err


def test_the_longest_codes_work_end_to_end_and_longer_ones_are_refused_up_front(tmp_path, capsys):
    from hashlearn.index.base import MAX_BITS
    from hashlearn.runs.config import MAX_BITS as RUN_MAX_BITS

    assert RUN_MAX_BITS == MAX_BITS == 1024
    run = tmp_path / "wide"
    assert main(["train", "--method", "csq", "--bits", "1024", "--dataset", "digits", "--epochs", "1", "-q",
                 "--set", "model.hidden=[32]", "--set", "data.n_train=100", "--set", "data.n_database=300", "--run-dir", str(run)]) == 0
    assert main(["evaluate", "--model", str(run), "-k", "50", "--radius", "1024", "-q"]) == 0
    assert main(["index", "build", "--model", str(run), "--factory", "MIH", "-o", str(tmp_path / "w.hlx"), "-q"]) == 0
    assert main(["encode", "--model", str(run), "--dataset", "digits", "--part", "query", "-o", str(tmp_path / "q.npy"), "-q"]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "w.hlx"), "--queries", str(tmp_path / "q.npy"), "-k", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 200 and all(len(row["ids"]) == 3 for row in results)
    assert np.load(tmp_path / "q.npy").shape == (200, 128)
    for method in ("csq", "itq"):
        assert main(["train", "--method", method, "--bits", "2048", "--dataset", "digits", "-q", "--run-dir", str(tmp_path / "x")]) == 2
        one_line_error(capsys, "method.n_bits", "at most 1024", "2048")
        assert not (tmp_path / "x").exists()
