"""The service benchmark's hostile-client part runs and every attack is answered 4xx (slow: ~1 min)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hostile_benchmark_smoke(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--quick", "--only", "hostile", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr[-3000:]
    hostile = json.loads((tmp_path / "serve.json").read_text())["hostile"]
    statuses = [row["status"] for row in hostile["attacks"] if row["seconds"] is not None]
    assert statuses and all(isinstance(s, int) and 400 <= s < 500 for s in statuses), hostile["attacks"]
    assert hostile["server_alive"] and hostile["during"]["errors"] == 0
    assert "## Hostile clients" in (tmp_path / "serve.md").read_text()
