"""``hashlearn serve`` as a user runs it: a subprocess answering real HTTP requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np

from hashlearn.codes import reference_search
from hashlearn.index.flat import FlatIndex
from hashlearn.index.io import save_index


def test_serve_subprocess(tmp_path):
    rng = np.random.default_rng(51)
    codes = rng.integers(0, 256, size=(200, 4), dtype=np.uint8)
    index = FlatIndex(32)
    index.add(codes)
    path = save_index(index, tmp_path / "i.hlx")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "hashlearn", "serve", "--index", str(path), "--port", "0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        body = json.dumps({"queries": [codes[5].tobytes().hex()], "k": 3}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/search", data=body), timeout=20) as response:
            result = json.loads(response.read())
        assert result["ids"] == reference_search(codes[5:6], codes, 3).ids.tolist()
    finally:
        process.terminate()
        process.wait(10)
