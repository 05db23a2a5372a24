"""The README's workflow block, run verbatim (each line a real `hashlearn` subprocess) on digits.

The block is parsed from README.md, so this test breaks when the README drifts from the code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- workflow:"


def workflow_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(MARKER)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, "no ```bash block after the workflow marker in README.md"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_workflow_block_names_every_step():
    commands = " ".join(workflow_lines())
    for step in ("train", "evaluate", "index build --model", "search", "attack", "backdoor", "detect", "audit", "report"):
        assert f"hashlearn {step}" in commands, step


def test_readme_workflow_runs_verbatim(tmp_path):
    shim = tmp_path / ".venv" / "bin" / "hashlearn"  # what `make demo` installs, pointing at this checkout
    shim.parent.mkdir(parents=True)
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m hashlearn \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HASHLEARN_QUIET": "1", "OMP_NUM_THREADS": "1"}
    for line in workflow_lines():
        result = subprocess.run(["bash", "-c", f"set -o pipefail; {line}"], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"README line failed: {line}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, line
    runs = tmp_path / "runs"
    metrics = json.loads((runs / "csq" / "metrics.json").read_text())
    assert metrics["mAP@100"] > 0.3
    assert (runs / "csq" / "codes" / "database_codes.npy").exists() and (runs / "db.hlx").exists()
    attack = json.loads((runs / "csq" / "attack" / "hag.json").read_text())
    assert attack["adv_map"] < attack["clean_map"] and attack["linf_max"] <= 8 / 255 + 1e-6
    assert np.load(runs / "csq" / "attack" / "hag_adv.npy").shape == (200, 64)
    prosgan = json.loads((runs / "csq" / "attack" / "prosgan.json").read_text())
    assert prosgan["linf_max"] <= 8 / 255 + 1e-6 and (runs / "csq" / "attack" / "prosgan_generator" / "prosgan.safetensors").exists()
    detection = json.loads((runs / "bd" / "detect" / "spectral.json").read_text())
    assert detection["n_flagged"] > 0
    audit = json.loads((runs / "csq" / "audit" / "audit.json").read_text())
    assert audit["checks"] == ["attacks", "transfer", "privacy"] and len(audit["rows"]) == 4
    assert "Security audit: summary" in (runs / "csq" / "audit" / "report.html").read_text()
    for run in ("csq", "bd"):
        page = (runs / run / "report.html").read_text()
        assert page.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in page, run
    assert 'alt="t-SNE of clean vs poisoned latent features"' in (runs / "bd" / "report.html").read_text()
