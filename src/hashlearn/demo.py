"""The main job: learn codes on the default data, search, evaluate, report.

``hashlearn demo`` (what ``make demo`` runs) fits LSH and ITQ at 16, 32 and 64
bits on the protocol's train split of Fashion-MNIST pixels (falling back to
scikit-learn's digits, announced, when Fashion-MNIST is not installed), encodes
database and queries, evaluates mAP@1000 and P@1000, prints a table and writes
``runs/<timestamp>/`` with ``report.md``, ``metrics.json``, ``demo.json`` (the
demo's settings) and a PR-curve plot. It then trains one deep method with and
without the one-loss ``+hswd`` quantizer (``DemoConfig.deep_methods``).

Every model is saved as a run in ``runs/<timestamp>/<method>-<bits>/`` (config,
split, model, codes of the database and queries), so ``hashlearn evaluate``,
``encode``, ``index build``, ``attack`` (deep models) and ``report`` accept it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split
from hashlearn.errors import MissingDependencyError
from hashlearn.eval import evaluate_codes
from hashlearn.eval.report import format_table, new_run_dir, plot_pr_curves, write_report
from hashlearn.methods import SHALLOW_METHODS

COLUMNS = ["method", "bits", "mAP@1000", "P@1000", "fit_s", "encode_s"]


@dataclass
class DemoConfig:
    dataset: str = "fashion-mnist"
    fallback_dataset: str = "digits"
    protocol: str = "default"
    methods: list[str] = field(default_factory=lambda: ["lsh", "itq"])
    bits: list[int] = field(default_factory=lambda: [16, 32, 64])
    k: int = 1000
    seed: int = 0
    data_dir: str | None = None
    #: deep method trained with and without the one-loss quantizer (empty: skip)
    deep_methods: list[str] = field(default_factory=lambda: ["csq", "csq+hswd"])
    deep_bits: int = 32
    deep_epochs: int = 4


def load_default_data(config: DemoConfig, say=print):
    """The configured dataset, or the fallback with a message saying why and how to fix it."""
    kwargs = {"data_dir": config.data_dir} if config.data_dir else {}
    try:
        return load_dataset(config.dataset, **kwargs)
    except (FileNotFoundError, MissingDependencyError, ValueError) as error:
        say(f"NOTE: {config.dataset} is not available ({error}).")
        say(f"NOTE: falling back to {config.fallback_dataset!r}. Install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) for the full demo.")
        return load_dataset(config.fallback_dataset)


def demo_run_config(config: DemoConfig, dataset_name: str, method: str, n_bits: int):
    """The :class:`~hashlearn.runs.RunConfig` of one model of the demo."""
    from hashlearn.runs import resolve_config

    overrides = [f"method.name={method}", f"method.n_bits={n_bits}", f"data.dataset={dataset_name}",
                 f"data.protocol={config.protocol}", f"data.seed={config.seed}", f"trainer.seed={config.seed}"]
    if config.data_dir and dataset_name == config.dataset:
        overrides.append(f"data.data_dir={config.data_dir}")
    if method not in SHALLOW_METHODS:
        overrides.append(f"trainer.epochs={config.deep_epochs}")
    return resolve_config(overrides=overrides)


def run_model(config: DemoConfig, dataset, method: str, n_bits: int, run_dir: Path):
    """Train one model into the run ``run_dir``; encode its database and queries (kept in the run); codes and timings."""
    from hashlearn.runs import encode_parts, train_run

    start = time.perf_counter()
    train_run(demo_run_config(config, dataset.name, method, n_bits), run_dir, dataset=dataset)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    encoded = encode_parts(run_dir, ("database", "query"), dataset=dataset)
    encode_seconds = time.perf_counter() - start
    return encoded["database"][0], encoded["query"][0], fit_seconds, encode_seconds


def run_demo(config: DemoConfig | None = None, run_root: str | Path = "runs", say=print) -> tuple[Path, list[dict]]:
    config = config or DemoConfig()
    dataset = load_default_data(config, say)
    split = make_split(dataset, config.protocol, seed=config.seed)
    features = np.asarray(dataset.data, dtype=np.float32).reshape(len(dataset), -1)
    db_labels, query_labels = split.take(dataset.labels, "database"), split.take(dataset.labels, "query")
    say(f"dataset {dataset.name}: {len(dataset)} items, {features.shape[1]} features; split {split.sizes()} (seed {config.seed})")

    run_dir = new_run_dir(run_root)
    rows, curves = [], {}
    jobs = [(method, n_bits) for n_bits in config.bits for method in config.methods]
    jobs += [(method, config.deep_bits) for method in config.deep_methods]
    for method, n_bits in jobs:
        if method not in SHALLOW_METHODS:
            say(f"  training {method} ({n_bits} bits, {config.deep_epochs} epochs, selected on the validation split) ...")
        db_codes, query_codes, fit_s, encode_s = run_model(config, dataset, method, n_bits, run_dir / f"{method}-{n_bits}")
        scores = evaluate_codes(query_codes, db_codes, query_labels, db_labels, k=config.k, with_pr_curve=True)
        curves[f"{method} {n_bits}"] = scores.pop("pr_curve")
        row = {"method": method, "bits": n_bits, **scores, "fit_s": fit_s, "encode_s": encode_s, "run": f"{method}-{n_bits}"}
        rows.append(row)
        say(f"  {method:>4} {n_bits:>3} bits  mAP@{config.k} {row[f'mAP@{config.k}']:.4f}  P@{config.k} {row[f'P@{config.k}']:.4f}")

    atomic_write_json(run_dir / "demo.json", {**asdict(config), "dataset_used": dataset.name})
    plot_pr_curves(curves, run_dir / "pr_curves.png", title=f"{dataset.name}: PR within Hamming radius")
    columns = [c.replace("1000", str(config.k)) for c in COLUMNS]
    table = format_table(rows, columns)
    write_report(
        run_dir,
        f"hashlearn demo on {dataset.name}",
        [
            ("Setup", f"Protocol `{split.protocol}` (seed {split.seed}): {split.sizes()}. {split.meta.get('description', '')}\n"
                      f"Shallow methods are fitted on the train split's raw features ({features.shape[1]}-d); deep methods "
                      f"({', '.join(config.deep_methods) or 'none'}) train a small CNN (images) or MLP (vectors) for {config.deep_epochs} epochs "
                      "and keep the epoch with the best validation mAP (never the queries). The database and queries are encoded and "
                      "ranked by Hamming distance, ties by ascending id. `+hswd` replaces the method's own quantization term by the "
                      "per-bit sliced Wasserstein distance to a Bernoulli(0.5) target. Each model is a run in the folder named "
                      "in the table's `run` column (`hashlearn evaluate --model RUN` and the other commands accept it)."),
            ("Results", format_table(rows, [*columns, "run"])),
            ("Precision-recall", "![PR curves](pr_curves.png)"),
        ],
        {"dataset": dataset.name, "split": split.sizes(), "config": asdict(config), "results": rows, "pr_curves": curves},
    )
    say("")
    say(table)
    say(f"\nreport: {run_dir / 'report.md'}")
    return run_dir, rows
