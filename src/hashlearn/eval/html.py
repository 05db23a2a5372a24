"""Self-contained HTML reports: one file, inline CSS, plots as inline base64 PNG.

:class:`HtmlReport` builds a page (headings, text, tables, figures) and writes
it atomically. The ``add_*`` functions turn what a run records (training
history, retrieval metrics, an attack's or a backdoor's results, detection
rates) into sections; :func:`comparison_report` puts several runs side by side.
They take plain data (dicts and arrays as the run files hold them), so this
module knows no run layout: :mod:`hashlearn.runs.report` reads a run directory
and calls them. The page has no external assets (no scripts, fonts, styles or
images fetched from anywhere) and opens from a file or an e-mail attachment.

>>> page = HtmlReport("demo")
>>> page.table([{"method": "itq", "mAP@1000": 0.41234}], caption="results")
>>> html = page.render()
>>> '<td class="num">0.4123</td>' in html, "<script" in html, "http" in html
(True, False, False)
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import numbers
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

_CSS = """
:root { color-scheme: light; }
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1f2328;
       background: #f6f8fa; margin: 0; line-height: 1.45; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh;
       box-shadow: 0 0 0 1px #d0d7de; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.08em; margin: 22px 0 8px; }
p.subtitle { color: #57606a; margin: 0 0 18px; }
p.note { color: #57606a; font-size: 0.92em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; }
p.caption { color: #57606a; margin: 14px 0 0; font-size: 0.92em; }
td.best { font-weight: 700; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfcfd; }
figure { margin: 10px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9em; margin-top: 4px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.row > figure { flex: 1 1 440px; min-width: 320px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.9em; background: #f6f8fa;
       padding: 1px 4px; border-radius: 4px; }
footer { margin-top: 36px; color: #8c959f; font-size: 0.85em; }
"""


def format_value(value, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals (scientific when tiny or huge), the rest as text."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 10 ** -digits):
            return f"{value:.{max(1, digits - 1)}e}"
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def scalar_items(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """The scalar entries of a (nested) dict, flattened to ``("a.b", value)`` pairs; lists of
    more than 8 items and dicts of curves are left out (they are plotted, not tabulated)."""
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += scalar_items(value, prefix=f"{name}.")
        elif isinstance(value, (list, tuple)):
            if len(value) <= 8 and all(not isinstance(v, (Mapping, list, tuple)) for v in value):
                items.append((name, list(value)))
        else:
            items.append((name, value))
    return items


class HtmlReport:
    """A report page, built section by section and rendered to one self-contained HTML file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = str(title)
        self.subtitle = str(subtitle)
        self._parts: list[str] = []
        self.n_figures = 0

    # --- content ---------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> None:
        if level not in (2, 3, 4):
            raise ValueError(f"level must be 2, 3 or 4 (the page title is the only h1), got {level!r}.")
        self._parts.append(f"<h{level}>{html.escape(str(text))}</h{level}>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        """Plain text (escaped); `backticks` become code spans."""
        pieces = html.escape(str(text)).split("`")
        body = "".join(f"<code>{piece}</code>" if i % 2 else piece for i, piece in enumerate(pieces))
        self._parts.append(f'<p class="note">{body}</p>' if note else f"<p>{body}</p>")

    def table(
        self, rows: Sequence[Mapping], columns: Sequence[str] | None = None, *, caption: str = "", digits: int = 4,
        highlight_max: Sequence[str] = (),
    ) -> None:
        """Rows of dicts; ``columns`` (default: every key, in first-seen order) picks and orders them.
        The largest number of each column in ``highlight_max`` is set in bold."""
        rows = list(rows)
        best = {}
        for column in highlight_max:
            values = [row.get(column) for row in rows if _is_number(row.get(column)) and not math.isnan(row.get(column))]
            if len(values) > 1:
                best[column] = max(values)
        if columns is None:
            columns = list(dict.fromkeys(key for row in rows for key in row))
        out = [f'<p class="caption">{html.escape(caption)}</p>'] if caption else []
        out.append("<table>")
        out.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>")
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column)
                css = ' class="num"' if _is_number(value) else ""
                if column in best and value == best[column]:
                    css = ' class="num best"'
                cells.append(f"<td{css}>{html.escape(format_value(value, digits))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self._parts.append("\n".join(out))

    def key_values(self, mapping: Mapping | Iterable[tuple[str, object]], *, caption: str = "", digits: int = 4) -> None:
        """A two-column table (name, value)."""
        pairs = list(mapping.items()) if isinstance(mapping, Mapping) else list(mapping)
        self.table([{"name": k, "value": v} for k, v in pairs], ["name", "value"], caption=caption, digits=digits)

    def figure(self, fig, caption: str = "", *, alt: str = "") -> bool:
        """An inline PNG: a matplotlib ``Figure`` or PNG bytes; ``None`` adds nothing (returns False)."""
        if fig is None:
            return False
        if isinstance(fig, (bytes, bytearray)):
            png = bytes(fig)
        else:
            from hashlearn.eval.plots import figure_to_png

            png = figure_to_png(fig)
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError("figure must be a matplotlib Figure or PNG bytes; the bytes given are not a PNG.")
        data = base64.b64encode(png).decode("ascii")
        label = html.escape(alt or caption or "figure", quote=True)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img alt="{label}" src="data:image/png;base64,{data}">{cap}</figure>')
        self.n_figures += 1
        return True

    def begin_row(self) -> None:
        """Figures added until :meth:`end_row` sit side by side (wrapping on narrow screens)."""
        self._parts.append('<div class="row">')

    def end_row(self) -> None:
        self._parts.append("</div>")

    # --- output ----------------------------------------------------------------------
    def render(self) -> str:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        subtitle = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        body = "\n".join(self._parts)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{subtitle}\n{body}\n"
            f"<footer>Written by hashlearn on {stamp}. Self-contained: plots are inline PNG images.</footer>\n"
            "</main>\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page atomically (a temp file and a rename)."""
        from hashlearn._io import atomic_write_text

        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"the report path {path} is a folder; give a file name such as {path / 'report.html'}.")
        return atomic_write_text(path, self.render())


# ---------------------------------------------------------------------------------------
# sections from what runs record
# ---------------------------------------------------------------------------------------
def add_training(page: HtmlReport, history: Sequence[Mapping], train_result: Mapping | None = None, *, metric_name: str = "validation mAP") -> None:
    """Loss and validation metric per epoch (plot + summary) from the Trainer's history rows."""
    from hashlearn.eval.plots import training_curves_figure

    page.heading("Training")
    if not history:
        page.paragraph("This run has no training history (a shallow method is fitted in one step).", note=True)
        return
    page.figure(training_curves_figure(history, metric_name=metric_name), f"Training loss and {metric_name} per epoch.")
    summary = {"epochs run": len(history)}
    if train_result:
        for key in ("best_epoch", "best_metric", "stopped_early", "seconds_per_epoch", "seconds_to_best"):
            if key in train_result:
                summary[key.replace("_", " ")] = train_result[key]
    last = history[-1]
    summary["final training loss"] = last.get("train_loss")
    page.key_values(summary, caption="Training summary")
    rows = [{"epoch": r.get("epoch"), "train loss": r.get("train_loss"), metric_name: r.get("val_metric"), "lr": r.get("lr"), "seconds": r.get("seconds")} for r in history]
    if len(rows) > 30:  # long runs: every n-th epoch and the last one
        step = math.ceil(len(rows) / 30)
        rows = rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else [])
    page.table(rows, caption="Per epoch")


def _metric_rank(name: str) -> int:
    """Headline metrics first (mAP@k, P@k, P/R within a radius, recall), then speed, then the rest."""
    if name.startswith("mAP@"):
        return 0
    if name.startswith("P@r=") or name.startswith("R@r="):
        return 2
    if name.startswith("P@"):
        return 1
    if name.startswith("recall"):
        return 3
    if name.startswith("search"):
        return 4
    return 5


def retrieval_scalars(metrics: Mapping) -> list[tuple[str, object]]:
    """The scalar entries of a metrics dict, headline metrics first (a stable sort keeps the rest in order)."""
    items = [(k, v) for k, v in scalar_items(metrics) if not k.startswith(("pr_curve", "pk_curve"))]
    return sorted(items, key=lambda item: _metric_rank(item[0]))


def add_retrieval(page: HtmlReport, metrics: Mapping, *, label: str = "this run") -> None:
    """Metrics table, PR curve and P@k curve (the curves when the metrics hold them)."""
    from hashlearn.eval.plots import pk_curve_figure, pr_curve_figure

    page.heading("Retrieval")
    page.key_values(retrieval_scalars(metrics), caption="Metrics (queries against the database, ranked by Hamming distance, ties by ascending id)")
    curves = [("pr_curve", pr_curve_figure, "Precision and recall of the items within Hamming radius r = 0, 1, 2, ... (one point per radius).")]
    curves.append(("pk_curve", pk_curve_figure, "Precision among the top k results."))
    present = [(key, draw, caption) for key, draw, caption in curves if isinstance(metrics.get(key), Mapping)]
    if not present:
        page.paragraph("No PR or P@k curve in these metrics (unlabelled data, or an older run).", note=True)
        return
    page.begin_row()
    for key, draw, caption in present:
        page.figure(draw({label: metrics[key]}), caption)
    page.end_row()


def _clean_vs_attacked(report: Mapping) -> dict[str, dict[str, float]]:
    groups = {}
    for key, value in report.items():
        if key.startswith("clean_") and _is_number(value):
            name = key[len("clean_"):]
            for prefix in ("adv_", "attacked_", "backdoor_", "triggered_"):
                other = report.get(prefix + name)
                if _is_number(other):
                    label = {"map": "mAP", "tmap": "t-mAP"}.get(name, name)
                    groups[label] = {"clean": float(value), {"adv": "attacked"}.get(prefix.rstrip("_"), prefix.rstrip("_")): float(other)}
    return groups


def add_attack(page: HtmlReport, name: str, report: Mapping, examples: tuple[np.ndarray, np.ndarray] | None = None, *, n_examples: int = 6) -> None:
    """Clean vs attacked metrics (bars + table) and a few example inputs (clean, adversarial, difference)."""
    from hashlearn.eval.plots import grouped_bar_figure, image_grid_figure

    page.heading(f"Attack: {name}")
    if "attack_repr" in report:
        where = [f"{report['n_queries']} queries" if "n_queries" in report else "", f"{report['n_database']} database items" if "n_database" in report else ""]
        page.paragraph(f"`{report['attack_repr']}`" + (f" ({', '.join(w for w in where if w)})." if any(where) else "."))
    groups = _clean_vs_attacked(report)
    if groups:
        page.figure(grouped_bar_figure(groups, title="Clean vs attacked", ylabel="score"), "Retrieval quality of the clean queries and of their adversarial versions.")
    measured = [(k, v) for k, v in scalar_items(report) if k not in ("attack_repr",)]
    first = ("clean_", "adv_", "success_rate", "bits_", "linf", "rmse")
    measured.sort(key=lambda item: next((i for i, p in enumerate(first) if item[0].startswith(p)), len(first)))
    page.key_values(measured, caption="All measurements")
    if examples is not None:
        clean, adv = (np.asarray(a, dtype=np.float32)[:n_examples] for a in examples)
        diff = adv - clean
        scale = float(np.abs(diff).max()) or 1.0
        low, high = float(min(clean.min(), adv.min())), float(max(clean.max(), adv.max()))
        fig = image_grid_figure(
            [list(clean), list(adv), list(0.5 + 0.5 * diff / scale)],
            ["clean", "adversarial", f"difference\n(x{0.5 / scale:.3g})"],
            [f"query {i}" for i in range(len(clean))],
            value_ranges=[(low, high), (low, high), (0.0, 1.0)],
        )
        if not page.figure(fig, "Example queries: clean input, adversarial input, and their difference (amplified; grey = 0)."):
            page.paragraph("The inputs are feature vectors, not images; no examples shown.", note=True)


#: the four retrieval directions of a cross-modal run: (query side, database side)
CROSSMODAL_DIRECTIONS = {"I->T": ("image", "text"), "T->I": ("text", "image"), "I->I": ("image", "image"), "T->T": ("text", "text")}


def crossmodal_direction_rows(metrics: Mapping) -> list[dict]:
    """One row per direction (``I->T``, ...) with its metrics (``mAP@all``, ``mAP@k``, ``P@k``, ...) as columns."""
    rows = []
    for direction, (query, database) in CROSSMODAL_DIRECTIONS.items():
        prefix = f"{direction} "
        values = {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix) and _is_number(value)}
        if values:
            rows.append({"direction": direction, "queries": query, "database": database, **values})
    return rows


def add_crossmodal_retrieval(page: HtmlReport, metrics: Mapping) -> None:
    """A cross-modal run's retrieval: a table per direction and the PR curves of all directions on one plot."""
    from hashlearn.eval.plots import pr_curve_figure

    page.heading("Cross-modal retrieval")
    rows = crossmodal_direction_rows(metrics)
    page.table(rows, caption="Image queries against the database texts (I->T) and images (I->I), text queries against the database "
                             "images (T->I) and texts (T->T); ranked by Hamming distance, ties by ascending id; relevant = a shared label",
               highlight_max=[c for c in rows[0] if c.startswith(("mAP", "P@"))] if rows else ())
    shown = {"direction", "queries", "database"}
    rest = [(k, v) for k, v in scalar_items({k: v for k, v in metrics.items() if k != "pr_curves"})
            if not any(k.startswith(f"{d} ") for d in CROSSMODAL_DIRECTIONS) and k not in shown]
    page.key_values(rest, caption="Run")
    curves = {d: c for d, c in (metrics.get("pr_curves") or {}).items() if isinstance(c, Mapping) and "precision" in c}
    if curves:
        page.figure(pr_curve_figure(curves, title="Precision-recall per direction (Hamming radius sweep)"),
                    "Precision and recall of the items within Hamming radius r = 0, 1, 2, ... for each direction.")
    else:
        page.paragraph("No PR curves in these metrics.", note=True)


def crossmodal_attack_row(name: str, report: Mapping) -> dict | None:
    """The cross- and same-modality mAP of a cross-modal attack report, before and after; None for other reports."""
    modality = report.get("modality")
    if modality not in ("image", "text"):
        return None
    cross, same = ("I->T", "I->I") if modality == "image" else ("T->I", "T->T")
    values = {key: report.get(f"{when} {direction} mAP") for when in ("clean", "attacked") for direction in (cross, same)
              for key in [f"{when} {direction}"]}
    if not all(_is_number(v) for v in values.values()):
        return None
    row = {"attack": name, "query": modality, "budget": f"{report.get('norm')} {format_value(report.get('eps'))}",
           "steps": report.get("steps"), "cross": cross, "cross clean": values[f"clean {cross}"],
           "cross attacked": values[f"attacked {cross}"],
           "cross ratio": values[f"attacked {cross}"] / max(values[f"clean {cross}"], 1e-12), "same": same,
           "same clean": values[f"clean {same}"], "same attacked": values[f"attacked {same}"],
           "same ratio": values[f"attacked {same}"] / max(values[f"clean {same}"], 1e-12)}
    for key in ("mean distortion", "mean bits flipped", "mean bits from paired", "n_queries"):
        if key in report:
            row[key.replace("mean ", "")] = report[key]
    return row


def add_crossmodal_attacks(page: HtmlReport, rows: Sequence[Mapping]) -> None:
    """Cross-modal attacks (CMLA, HAG) side by side: cross- and same-modality mAP before and after (bars + table)."""
    from hashlearn.eval.plots import grouped_bar_figure

    page.heading("Cross-modal attacks")
    page.paragraph("CMLA perturbs a query of one modality within its budget so that its cross-modal retrieval fails (the cross "
                   "ratio falls) while its same-modality retrieval looks untouched (the same ratio stays near 1); HAG pushes the "
                   "query's code away from its own code and ignores the pairing. Ratios are attacked / clean mAP@all.")
    groups = {}
    for row in rows:
        for side in ("cross", "same"):
            groups[f"{row['attack']}\n{row[side]}"] = {"clean": row[f"{side} clean"], "attacked": row[f"{side} attacked"]}
    page.figure(grouped_bar_figure(groups, title="Clean vs attacked mAP@all", ylabel="mAP@all"),
                "Cross-modal and same-modality mAP of the clean queries and of their adversarial versions.")
    page.table(rows, caption="Cross-modal attacks on the run's query pairs")


def add_backdoor(page: HtmlReport, record: Mapping, examples: Sequence[np.ndarray] | None = None, example_titles: Sequence[str] = ()) -> None:
    """A backdoor run's attack parameters, clean and backdoor metrics, trigger visibility, poisoned examples."""
    from hashlearn.eval.plots import grouped_bar_figure, image_grid_figure

    page.heading("Backdoor")
    metrics = dict(record.get("metrics", {}))
    numbers_only = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    if numbers_only:
        page.figure(grouped_bar_figure({k: {"value": v} for k, v in numbers_only.items()}, title="Backdoor metrics", ylabel="value"),
                    "Clean quality of the backdoored model and the attack's success (ASR: share of triggered inputs sent to the target).")
    page.key_values(scalar_items(metrics), caption="Metrics")
    if record.get("attack"):
        page.key_values(scalar_items(record["attack"]), caption="Attack parameters")
    if record.get("visibility"):
        page.key_values(scalar_items(record["visibility"]), caption="Trigger visibility (perturbation of triggered inputs)")
    if examples is not None and len(examples):
        fig = image_grid_figure([list(np.asarray(examples, dtype=np.float32))], ["poisoned"], list(example_titles))
        if not page.figure(fig, "Poisoned training inputs (the trigger applied), as the victim saw them."):
            page.paragraph("The inputs are feature vectors, not images; no examples shown.", note=True)


def add_detection(page: HtmlReport, reports: Mapping[str, Mapping]) -> None:
    """TPR / FPR of each poison detector (and the metrics after retraining without the flagged items)."""
    from hashlearn.eval.plots import grouped_bar_figure

    page.heading("Poison detection")
    rows = [{"defense": name, "flagged": r.get("n_flagged"), "TPR": r.get("tpr"), "FPR": r.get("fpr")} for name, r in reports.items()]
    page.figure(grouped_bar_figure({name: {"TPR": r.get("tpr", math.nan), "FPR": r.get("fpr", math.nan)} for name, r in reports.items()},
                                   title="Detection rates", ylabel="rate"),
                "TPR: share of the poisoned training items flagged; FPR: share of the clean items flagged.")
    page.table(rows, caption="Detectors")
    for name, report in reports.items():
        if isinstance(report.get("after_retraining"), Mapping):
            page.key_values(scalar_items(report["after_retraining"]), caption=f"{name}: metrics after retraining without the flagged items")
        if isinstance(report.get("settings"), Mapping):
            page.key_values(scalar_items(report["settings"]), caption=f"{name}: settings")


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, digits: int = 4) -> list[str]:
    """The lines of a markdown table of ``rows`` (dicts; ``columns`` default: every key, first-seen order).

    >>> markdown_table([{"a": 1, "b": 0.5}])
    ['| a | b |', '|---|---|', '| 1 | 0.5000 |']
    """
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(format_value(row.get(c), digits) for c in columns) + " |" for row in rows]


def privacy_rows(report: Mapping) -> list[dict]:
    """One row per released representation and per baseline of a privacy report (``privacy/privacy.json``)."""
    k = report.get("k")
    metric = f"mAP@{k}" if k else "task metric"
    rows = []
    released = report.get("representations", {})
    order = ["features", "outputs", "codes"]  # floats first, as the workflow computes them
    for kind, values in sorted(released.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)):
        rows.append({"released": kind, "what": f"{values.get('dim')} {'bits' if values.get('dtype') == 'bits' else 'floats'}",
                     metric: values.get(metric), "PSNR (dB)": values.get("psnr"), "SSIM": values.get("ssim"), "MSE": values.get("mse")})
    for name, values in report.get("baselines", {}).items():
        rows.append({"released": f"baseline: {name}", "what": "no representation", metric: None,
                     "PSNR (dB)": values.get("psnr"), "SSIM": values.get("ssim"), "MSE": values.get("mse")})
    return rows


def add_privacy(page: HtmlReport, report: Mapping, examples: np.ndarray | None = None) -> None:
    """Reconstruction quality and task metric of each released representation, baselines, example reconstructions."""
    from hashlearn.eval.plots import image_grid_figure

    page.heading("Privacy: reconstruction from released representations")
    page.paragraph(f"Threat: {report.get('threat', 'a decoder trained from representations back to inputs')}. "
                   f"{report.get('n_auxiliary')} auxiliary pairs, {report.get('n_queries')} attacked queries; decoder `{report.get('decoder')}`. "
                   "Higher PSNR / SSIM means more of the input leaks; the baselines show what an attacker gets from no "
                   "representation (mean input) and from the label alone (class mean).")
    page.table(privacy_rows(report), caption="Reconstruction of the queries (PSNR averaged per item, SSIM with an 11x11 Gaussian window)")
    if examples is not None and len(examples) >= 2:
        names = list(report.get("example_rows", ["original"]))[: len(examples)]
        titles = [name if i == 0 else f"from {name}" for i, name in enumerate(names)]
        fig = image_grid_figure([list(np.asarray(row, dtype=np.float32)) for row in examples[: len(titles)]], titles,
                                [f"query {i}" for i in range(len(examples[0]))],
                                value_ranges=[(0.0, report.get("data_range", 1.0))] * len(titles))
        if not page.figure(fig, "Queries and their reconstructions from each released representation."):
            page.paragraph("The inputs are feature vectors, not images; no examples shown.", note=True)


def add_audit_summary(page: HtmlReport, record: Mapping) -> None:
    """The audit's summary: one row per attack and transfer check, then codes vs floats under reconstruction."""
    settings = record.get("settings", {})
    page.heading("Security audit: summary")
    rows = list(record.get("rows", []))
    k = settings.get("k")
    if rows:
        page.paragraph(f"Each attack perturbs the same {settings.get('n_queries')} queries within {settings.get('budget')} and is scored "
                       f"against the same {settings.get('n_database')} database items; drop = clean mAP - attacked mAP (larger is worse "
                       "for the system). Targeted attacks also list the target-label t-mAP (higher is worse). Seconds are wall time on this machine.")
        page.table(rows, caption=f"Query attacks and transfer (mAP@{k})")
    privacy = record.get("privacy")
    if privacy:
        reps = privacy.get("representations", {})
        page.paragraph("Reconstruction of the queries by a decoder trained on auxiliary (input, representation) pairs: "
                       "higher PSNR / SSIM = more of the input leaks. Compare codes with the floats of the same model and with the "
                       "class-mean baseline (what the label alone reveals).")
        page.table(privacy_rows(privacy), caption="Privacy: codes vs floats")
        codes, floats = reps.get("codes"), reps.get("outputs")
        base = privacy.get("baselines", {}).get("class mean (label known)")
        if codes and floats:
            verdict = (f"Codes: {codes['psnr']:.2f} dB PSNR vs {floats['psnr']:.2f} dB from the float outputs of the same width "
                       f"({codes['psnr'] - floats['psnr']:+.2f} dB).")
            if base and codes["psnr"] >= base["psnr"] - 0.25:
                verdict += (f" Hashing does not protect class-level content: the codes reconstruct at least as well as the class mean "
                            f"({base['psnr']:.2f} dB).")
            page.paragraph(verdict)


# ---------------------------------------------------------------------------------------
# several runs side by side
# ---------------------------------------------------------------------------------------
def main_metric(metrics: Mapping) -> str | None:
    """The headline metric of a metrics dict: mAP@k first, else recall..@k, else P@k."""
    for prefix in ("mAP@", "recall", "P@"):
        for key, value in metrics.items():
            if key.startswith(prefix) and _is_number(value):
                return key
    return None


def comparison_report(runs: Sequence[Mapping], title: str = "hashlearn: runs compared") -> HtmlReport:
    """One page for several runs. Each run is a dict with ``label``, ``method``, ``n_bits``,
    ``dataset`` and ``metrics`` (its metrics dict, curves included when recorded), and
    optionally ``history``: mAP vs bits per method, PR and P@k curves overlaid, one table."""
    from hashlearn.eval.plots import bits_figure, pk_curve_figure, pr_curve_figure, training_curves_figure

    if not runs:
        raise ValueError("comparison_report needs at least one run, got none.")
    datasets = sorted({str(r.get("dataset")) for r in runs})
    page = HtmlReport(title, f"{len(runs)} runs on {', '.join(datasets)}")
    if len(datasets) > 1:
        page.paragraph("These runs use different datasets: their metrics are not comparable with each other.", note=True)
    metric = next((m for m in (main_metric(r["metrics"]) for r in runs) if m), None)
    columns = ["run", "method", "bits", "dataset"]
    rows = []
    for run in runs:
        row = {"run": run["label"], "method": run.get("method"), "bits": run.get("n_bits"), "dataset": run.get("dataset")}
        for key, value in retrieval_scalars(run["metrics"]):
            if _is_number(value) and ("@" in key or key.startswith(("recall", "search"))):
                row[key] = value
                if key not in columns:
                    columns.append(key)
        rows.append(row)
    page.heading("Metrics")
    page.table(rows, columns, caption="One row per run (the best value of each metric in bold)",
               highlight_max=[c for c in columns[4:] if not c.startswith("search")] + [c for c in columns if c.startswith("search")])
    if metric:
        series: dict[str, list] = {}
        for run in runs:
            value = run["metrics"].get(metric)
            if _is_number(value) and run.get("n_bits"):
                series.setdefault(f"{run.get('method')} ({run.get('dataset')})" if len(datasets) > 1 else str(run.get("method")), []).append((int(run["n_bits"]), float(value)))
        if series:
            page.heading(f"{metric} vs code length")
            page.figure(bits_figure(series, metric_name=metric), f"{metric} of each method at each code length (one point per run).")
    pr = {r["label"]: r["metrics"]["pr_curve"] for r in runs if isinstance(r["metrics"].get("pr_curve"), Mapping)}
    pk = {r["label"]: r["metrics"]["pk_curve"] for r in runs if isinstance(r["metrics"].get("pk_curve"), Mapping)}
    if pr or pk:
        page.heading("Curves")
        page.begin_row()
        if pr:
            page.figure(pr_curve_figure(pr), "Precision-recall within Hamming radius, all runs.")
        if pk:
            page.figure(pk_curve_figure(pk), "Precision at k, all runs.")
        page.end_row()
    missing = [r["label"] for r in runs if "pr_curve" not in r["metrics"]]
    if missing:
        page.paragraph(f"No curves recorded for: {', '.join(missing)}.", note=True)
    trained = [r for r in runs if r.get("history")]
    if trained:
        page.heading("Training")
        for run in trained:
            page.figure(training_curves_figure(run["history"]), f"{run['label']}: training loss and validation metric per epoch.")
    return page
