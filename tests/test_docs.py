"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one file run in order in one namespace (a later block may use what
an earlier one defined), in a temporary working directory. A block preceded by
``<!-- docs-test: skip (reason) -->`` is not run; the reason must be given and
the skipped blocks are listed (see test_skipped_blocks_are_few_and_explained).
"""

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test: skip \((?P<reason>[^)]*)\) -->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[str, str | None]]:
    """``(code, skip reason or None)`` of every python block, in order."""
    return [(m["code"], m["reason"]) for m in BLOCK.finditer(path.read_text(encoding="utf-8"))]


def test_the_block_parser(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n```python\na = 1\n```\n```bash\nls\n```\n<!-- docs-test: skip (slow) -->\n```python\nb = 2\n```\n")
    assert python_blocks(doc) == [("a = 1\n", None), ("b = 2\n", "slow")]


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{path.stem}"}
    printed = io.StringIO()
    for number, (code, skip) in enumerate(python_blocks(path), start=1):
        if skip is not None:
            continue
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{path.relative_to(ROOT)} (python block {number})", "exec"), namespace)  # noqa: S102
    # every example shows its output: each file that runs blocks prints something
    assert printed.getvalue().strip(), f"{path.name}: no block prints its result"
    if path.name == "README.md":
        assert float(printed.getvalue().split()[-1]) == pytest.approx(0.6633, abs=5e-4)  # the value the README states


def test_skipped_blocks_are_few_and_explained():
    skipped = [(p.name, reason) for p in DOC_FILES for _, reason in python_blocks(p) if reason is not None]
    assert all(len(reason) > 20 for _, reason in skipped), skipped
    assert len(skipped) <= 2, skipped
