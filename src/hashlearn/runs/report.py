"""The report workflow: ``report.html`` and ``report.md`` of a run, and several runs compared.

:func:`write_run_report` reads what a run directory holds -- config, training
history, metrics (with PR and P@k curves), attacks, backdoor record, detection
results -- and writes a self-contained ``report.html`` (plots inline) and a
``report.md`` next to it. Every workflow that writes a run (train, evaluate,
attack, backdoor, detect) calls it last, so both reports always describe the
run as it is. :func:`compare_runs` puts several runs on one page (mAP vs bits,
PR curves overlaid, one metrics table); ``hashlearn report`` wraps both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hashlearn.runs.run import Run, _read_json, load_npy, load_run

#: example inputs an attack keeps for its report: ``attack/<name>_examples.npy`` = stack of (clean, adversarial)
N_EXAMPLES = 6


def attack_examples_path(run: Run, attack: str) -> Path:
    return run.attack_dir / f"{attack}_examples.npy"


def save_attack_examples(run: Run, attack: str, clean: np.ndarray, adversarial: np.ndarray) -> Path:
    """Keep the first few clean and adversarial queries of an attack (for its report)."""
    from hashlearn.runs.run import save_npy

    clean = np.asarray(clean, dtype=np.float32)[:N_EXAMPLES]
    adversarial = np.asarray(adversarial, dtype=np.float32)[:N_EXAMPLES]
    if clean.shape != adversarial.shape:
        raise ValueError(f"clean and adversarial examples must have the same shape, got {clean.shape} and {adversarial.shape}.")
    return save_npy(attack_examples_path(run, attack), np.stack([clean, adversarial]))


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _json_files(folder: Path) -> dict[str, dict]:
    if not folder.is_dir():
        return {}
    return {path.stem: _read_json(path) for path in sorted(folder.glob("*.json"))}


def _metrics(run: Run) -> dict | None:
    return _read_json(run.metrics_path) if run.metrics_path.is_file() else None


def _describe(run: Run) -> tuple[str, str, list[tuple[str, object]]]:
    config = run.config
    kind = "backdoor run" if run.is_backdoor else "run"
    title = f"{config.method.name} · {config.method.n_bits} bits · {config.data.dataset}"
    subtitle = f"hashlearn {kind} {run.path.resolve().name} ({run.path})"
    setup = [
        ("method", config.method.name), ("code length (bits)", config.method.n_bits), ("dataset", config.data.dataset),
        ("features", config.data.features), ("protocol", config.data.protocol), ("split seed", config.data.seed),
    ]
    if not config.method.is_shallow:
        setup += [("epochs", config.trainer.epochs), ("learning rate", config.trainer.lr), ("batch size", config.trainer.batch_size)]
    if config.backdoor is not None:
        setup += [("backdoor attack", config.backdoor.attack), ("victim", config.backdoor.victim), ("poison rate", config.backdoor.rate)]
    return title, subtitle, setup


def _latent_embedding(run: Run):
    """``(points, labels, poisoned, noise)`` of the backdoor run's saved t-SNE, or ``None`` when it has none."""
    from hashlearn.runs.backdoor import TSNE, TSNE_ROWS

    folder = run.backdoor_dir
    if not ((folder / TSNE).is_file() and (folder / TSNE_ROWS).is_file() and (folder / "poisoned_y.npy").is_file()):
        return None
    rows, points = load_npy(folder / TSNE_ROWS), load_npy(folder / TSNE)
    labels = load_npy(folder / "poisoned_y.npy")[rows]
    poisoned = np.isin(rows, load_npy(folder / "poison_indices.npy"))
    noise = np.isin(rows, load_npy(folder / "noise_indices.npy")) if (folder / "noise_indices.npy").is_file() else None
    return points, labels, poisoned, noise


def add_latent_embedding(page, run: Run) -> None:
    """The t-SNE figure of clean vs poisoned latent features (backdoor runs that saved one)."""
    from hashlearn.eval.plots import latent_scatter_figure

    embedding = _latent_embedding(run)
    if embedding is None:
        return
    points, labels, poisoned, noise = embedding
    page.figure(latent_scatter_figure(points, labels, poisoned, noise, title="t-SNE of latent features (training set sample)"),
                f"t-SNE of the backdoored model's penultimate-layer features on {len(points)} training inputs: clean ones coloured "
                "by label, poisoned ones (trigger + target label) as black crosses. Poison that forms its own cluster is what "
                "activation clustering and spectral signatures can find; poison mixed into the target class is not.",
                alt="t-SNE of clean vs poisoned latent features")


def run_report(run: Run | str | Path):
    """The :class:`~hashlearn.eval.html.HtmlReport` of a run: a section for everything it holds."""
    from hashlearn.eval.html import (HtmlReport, add_attack, add_audit_summary, add_backdoor, add_crossmodal_attacks, add_crossmodal_retrieval,
                                     add_detection, add_privacy, add_retrieval, add_training, crossmodal_attack_row)

    run = _as_run(run)
    title, subtitle, setup = _describe(run)
    page = HtmlReport(title, subtitle)
    page.heading("Setup")
    page.key_values(setup)
    history = run.load_history()
    if history or not run.config.method.is_shallow:
        metric_name = "validation mAP" if run.config.method.name != "unsupervised" else "validation recall 10@10"
        add_training(page, history, run.load_train_result(), metric_name=metric_name)
    metrics = _metrics(run)
    if metrics is not None and metrics.get("cross_modal"):
        add_crossmodal_retrieval(page, metrics)
    elif metrics is not None:
        add_retrieval(page, metrics, label=f"{run.config.method.name} {run.config.method.n_bits}")
    elif not run.is_backdoor:
        page.heading("Retrieval")
        page.paragraph(f"Not evaluated yet: `hashlearn evaluate --model {run.path}` adds the metrics, PR and P@k curves.", note=True)
    if run.is_backdoor and (run.backdoor_dir / "backdoor.json").is_file():
        record = _read_json(run.backdoor_dir / "backdoor.json")
        examples, titles = None, ()
        poisoned, indices = run.backdoor_dir / "poisoned_X.npy", run.backdoor_dir / "poison_indices.npy"
        if poisoned.is_file() and indices.is_file():
            chosen = load_npy(indices)[:N_EXAMPLES]
            examples = np.load(poisoned, mmap_mode="r", allow_pickle=False)[chosen]
            titles = [f"train item {int(i)}" for i in chosen]
        add_backdoor(page, record, examples, titles)
        add_latent_embedding(page, run)
    attacks = _json_files(run.attack_dir)
    crossmodal = {name: row for name, report in attacks.items() if (row := crossmodal_attack_row(name, report)) is not None}
    if crossmodal:
        add_crossmodal_attacks(page, list(crossmodal.values()))
    for name, report in attacks.items():
        path = attack_examples_path(run, name)
        examples = tuple(load_npy(path)) if path.is_file() else None
        add_attack(page, name, report, examples)
    detections = _json_files(run.detect_dir)
    if detections:
        add_detection(page, detections)
    privacy = _privacy(run)
    if privacy is not None:
        add_privacy(page, *privacy)
    audit = run.audit_dir / "audit.json"
    if audit.is_file():
        add_audit_summary(page, _read_json(audit))
        page.paragraph(f"The audit's full page: `{run.audit_dir / 'report.html'}`.", note=True)
    return page


def _privacy(run: Run) -> tuple[dict, np.ndarray | None] | None:
    """The run's privacy report and its example reconstructions (``None`` when there is none)."""
    path = run.privacy_dir / "privacy.json"
    if not path.is_file():
        return None
    examples = run.privacy_dir / "examples.npy"
    return _read_json(path), (load_npy(examples) if examples.is_file() else None)


def run_markdown(run: Run | str | Path) -> str:
    """``report.md``: the same facts as ``report.html`` as markdown tables (no plots)."""
    from hashlearn.eval.html import (crossmodal_attack_row, crossmodal_direction_rows, format_value, markdown_table, privacy_rows,
                                     retrieval_scalars, scalar_items)

    run = _as_run(run)
    title, subtitle, setup = _describe(run)

    def table(pairs) -> list[str]:
        lines = ["| name | value |", "|---|---|"]
        return lines + [f"| {name} | {format_value(value)} |" for name, value in pairs] + [""]

    lines = [f"# {title}", "", subtitle, "", "## Setup", "", *table(setup)]
    history = run.load_history()
    if history:
        lines += ["## Training", "", "| epoch | train loss | validation metric | seconds |", "|---|---|---|---|"]
        lines += [f"| {r.get('epoch')} | {format_value(r.get('train_loss'))} | {format_value(r.get('val_metric'))} | {format_value(r.get('seconds'))} |" for r in history]
        lines.append("")
    def rows_table(rows) -> list[str]:
        return [*markdown_table(rows), ""]

    metrics = _metrics(run)
    if metrics is not None and metrics.get("cross_modal"):
        lines += ["## Cross-modal retrieval", "", *rows_table(crossmodal_direction_rows(metrics))]
    elif metrics is not None:
        lines += ["## Retrieval", "", *table(retrieval_scalars(metrics))]
    if run.is_backdoor and (run.backdoor_dir / "backdoor.json").is_file():
        record = _read_json(run.backdoor_dir / "backdoor.json")
        lines += ["## Backdoor", "", *table(scalar_items(record.get("metrics", {})))]
        embedding = _latent_embedding(run)
        if embedding is not None:
            lines += [f"t-SNE of latent features ({len(embedding[0])} training inputs, {int(embedding[2].sum())} poisoned): "
                      "see `report.html`.", ""]
    crossmodal = [row for name, report in _json_files(run.attack_dir).items() if (row := crossmodal_attack_row(name, report))]
    if crossmodal:
        lines += ["## Cross-modal attacks", "", *rows_table(crossmodal)]
    for name, report in _json_files(run.attack_dir).items():
        lines += [f"## Attack: {name}", "", *table([(k, v) for k, v in scalar_items(report) if k != "attack_repr"])]
    for name, report in _json_files(run.detect_dir).items():
        lines += [f"## Detection: {name}", "", *table(scalar_items(report))]
    privacy = _privacy(run)
    if privacy is not None:
        lines += ["## Privacy: reconstruction from released representations", "", *rows_table(privacy_rows(privacy[0]))]
    if (run.audit_dir / "audit.json").is_file():
        rows = _read_json(run.audit_dir / "audit.json").get("rows", [])
        if rows:
            lines += ["## Security audit: query attacks and transfer", "", *rows_table(rows),
                      f"The audit's full page: `{run.audit_dir / 'report.html'}`.", ""]
    lines += ["Plots: see `report.html` (self-contained, next to this file).", ""]
    return "\n".join(lines)


def write_run_report(run: Run | str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into the run (atomically); returns their paths."""
    from hashlearn._io import atomic_write_text

    run = _as_run(run)
    html_path = run_report(run).write(run.report_html_path)
    md_path = atomic_write_text(run.report_md_path, run_markdown(run))
    return html_path, md_path


def comparison_entry(run: Run | str | Path) -> dict:
    """What :func:`~hashlearn.eval.html.comparison_report` needs of one evaluated run."""
    run = _as_run(run)
    metrics = _metrics(run)
    if metrics is None:
        raise FileNotFoundError(f"run {run.path} has no metrics to compare; run `hashlearn evaluate --model {run.path}` first.")
    config = run.config
    return {"label": run.path.resolve().name, "method": config.method.name, "n_bits": config.method.n_bits,
            "dataset": config.data.dataset, "metrics": metrics, "history": run.load_history()}


def compare_runs(runs: Sequence[Run | str | Path], output: str | Path, title: str = "hashlearn: runs compared") -> Path:
    """One self-contained page comparing evaluated runs (mAP vs bits, PR and P@k curves overlaid, a table)."""
    from hashlearn.eval.html import comparison_report

    if not runs:
        raise ValueError("compare_runs needs at least one run directory, got none.")
    entries = [comparison_entry(run) for run in runs]
    labels = [entry["label"] for entry in entries]
    for i, entry in enumerate(entries):  # two runs in folders of the same name: tell them apart
        if labels.count(entry["label"]) > 1:
            entry["label"] = str(Path(runs[i].path if isinstance(runs[i], Run) else runs[i]))
    return comparison_report(entries, title=title).write(output)


__all__ = ["N_EXAMPLES", "compare_runs", "comparison_entry", "run_markdown", "run_report", "save_attack_examples", "write_run_report"]
