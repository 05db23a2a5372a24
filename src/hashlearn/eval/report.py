"""Run directories and reports: a markdown table, metrics.json and PR-curve plots."""

from __future__ import annotations

import time
from pathlib import Path

from hashlearn._io import atomic_write_json, atomic_write_text


def new_run_dir(root: str | Path = "runs", name: str | None = None) -> Path:
    """A fresh ``root/<timestamp>`` folder (suffixed if it already exists)."""
    root = Path(root)
    stem = name or time.strftime("%Y%m%d-%H%M%S")
    path = root / stem
    suffix = 1
    while path.exists():
        path = root / f"{stem}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def format_table(rows: list[dict], columns: list[str], floats: str = ".4f") -> str:
    """A GitHub markdown table of ``rows`` (dicts) restricted to ``columns``."""

    def cell(value):
        if isinstance(value, float):
            return format(value, floats)
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def plot_pr_curves(curves: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Precision-recall curves over Hamming radii, one line per label, as a PNG file (headless:
    drawn on a ``Figure`` with the Agg canvas; the application's matplotlib backend is untouched)."""
    from hashlearn.eval.plots import pr_curve_figure, save_figure

    return save_figure(pr_curve_figure(curves, title=title), path)


def write_report(run_dir: Path, title: str, sections: list[tuple[str, str]], metrics: dict) -> Path:
    """``report.md`` (title + markdown sections) and ``metrics.json`` in ``run_dir``."""
    body = [f"# {title}", ""]
    for heading, text in sections:
        body += [f"## {heading}", "", text, ""]
    atomic_write_json(run_dir / "metrics.json", metrics)
    return atomic_write_text(run_dir / "report.md", "\n".join(body))
