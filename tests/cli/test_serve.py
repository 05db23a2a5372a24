"""``hashlearn serve`` as a user runs it: built by ``hashlearn index build``, served by a
subprocess, asked with a plain standard-library HTTP client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from hashlearn.codes import reference_search

SRC = Path(__file__).resolve().parents[2] / "src"


def test_serve_subprocess(tmp_path):
    rng = np.random.default_rng(51)
    codes = rng.integers(0, 256, size=(200, 4), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("HASHLEARN_API_KEY", None)
    build = subprocess.run([sys.executable, "-m", "hashlearn", "index", "build", "--codes", str(tmp_path / "codes.npy"),
                            "--factory", "MIH2", "-o", str(tmp_path / "i.hlx"), "-q"], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "hashlearn", "serve", "--index", str(tmp_path / "i.hlx"), "--host", "127.0.0.1", "--port", "0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        assert port != 0
        body = json.dumps({"queries": [codes[5].tobytes().hex()], "k": 3}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/search", data=body), timeout=20) as response:
            result = json.loads(response.read())
        assert result["ids"] == reference_search(codes[5:6], codes, 3).ids.tolist()
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/search", data=b'{"topk": 3}'), timeout=20)
            raise AssertionError("an unknown key was accepted")
        except urllib.error.HTTPError as error:
            assert error.code == 422 and json.loads(error.read())["error"].startswith("topk: unknown key")
    finally:
        process.terminate()
        process.wait(10)


def test_serve_help_lists_the_limits():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-m", "hashlearn", "serve", "--help"], capture_output=True, text=True, env=env)
    assert result.returncode == 0
    for option in ("--api-key", "--writable", "--max-body", "--header-timeout", "--max-connections", "--max-scan"):
        assert option in result.stdout
