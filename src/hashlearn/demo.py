"""The main job: learn codes on the default data, search, evaluate, report.

``hashlearn demo`` (what ``make demo`` runs) fits LSH and ITQ at 16, 32 and 64
bits on the protocol's train split of Fashion-MNIST pixels (falling back to
scikit-learn's digits, announced, when Fashion-MNIST is not installed), encodes
database and queries, evaluates mAP@1000 and P@1000, prints a table and writes
``runs/<timestamp>/`` with ``report.md``, ``metrics.json``, ``config.json``,
the split and a PR-curve plot. It then trains one deep method with and without
the one-loss ``+hswd`` quantizer (``DemoConfig.deep_methods``).
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
from hashlearn.methods import build_shallow

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


def run_shallow(method: str, n_bits: int, X_train, X_db, X_query, seed: int):
    """Fit on train, encode database and queries; return codes and timings."""
    estimator = build_shallow(method, n_bits=n_bits, random_state=seed)
    start = time.perf_counter()
    estimator.fit(X_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    db_codes, query_codes = estimator.encode(X_db), estimator.encode(X_query)
    encode_seconds = time.perf_counter() - start
    return db_codes, query_codes, fit_seconds, encode_seconds


def run_deep(method: str, n_bits: int, split, data, labels, config: DemoConfig):
    """Train a deep hash model (small CNN on images, MLP on vectors) on the train split,
    select the epoch on the validation split, encode database and queries."""
    from hashlearn.runs.deep import train_deep_method

    start = time.perf_counter()
    model, result = train_deep_method(
        method, n_bits, split.take(data, "train"), split.take(labels, "train"),
        split.take(data, "validation"), split.take(labels, "validation"),
        epochs=config.deep_epochs, seed=config.seed,
    )
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    db_codes, query_codes = model.encode(split.take(data, "database")), model.encode(split.take(data, "query"))
    encode_seconds = time.perf_counter() - start
    return db_codes, query_codes, fit_seconds, encode_seconds


def run_demo(config: DemoConfig | None = None, run_root: str | Path = "runs", say=print) -> tuple[Path, list[dict]]:
    config = config or DemoConfig()
    dataset = load_default_data(config, say)
    split = make_split(dataset, config.protocol, seed=config.seed)
    features = np.asarray(dataset.data, dtype=np.float32).reshape(len(dataset), -1)
    X_train, X_db, X_query = (split.take(features, part) for part in ("train", "database", "query"))
    db_labels, query_labels = split.take(dataset.labels, "database"), split.take(dataset.labels, "query")
    say(f"dataset {dataset.name}: {len(dataset)} items, {features.shape[1]} features; split {split.sizes()} (seed {config.seed})")

    rows, curves = [], {}
    for n_bits in config.bits:
        for method in config.methods:
            db_codes, query_codes, fit_s, encode_s = run_shallow(method, n_bits, X_train, X_db, X_query, config.seed)
            scores = evaluate_codes(query_codes, db_codes, query_labels, db_labels, k=config.k, with_pr_curve=True)
            curves[f"{method} {n_bits}"] = scores.pop("pr_curve")
            row = {"method": method, "bits": n_bits, **scores, "fit_s": fit_s, "encode_s": encode_s}
            rows.append(row)
            say(f"  {method:>4} {n_bits:>3} bits  mAP@{config.k} {row[f'mAP@{config.k}']:.4f}  P@{config.k} {row[f'P@{config.k}']:.4f}")

    images = np.asarray(dataset.data, dtype=np.float32) if dataset.modality == "image" else features
    for method in config.deep_methods:
        say(f"  training {method} ({config.deep_bits} bits, {config.deep_epochs} epochs, selected on the validation split) ...")
        db_codes, query_codes, fit_s, encode_s = run_deep(method, config.deep_bits, split, images, dataset.labels, config)
        scores = evaluate_codes(query_codes, db_codes, query_labels, db_labels, k=config.k, with_pr_curve=True)
        curves[f"{method} {config.deep_bits}"] = scores.pop("pr_curve")
        row = {"method": method, "bits": config.deep_bits, **scores, "fit_s": fit_s, "encode_s": encode_s}
        rows.append(row)
        say(f"  {method:>4} {config.deep_bits:>3} bits  mAP@{config.k} {row[f'mAP@{config.k}']:.4f}  P@{config.k} {row[f'P@{config.k}']:.4f}")

    run_dir = new_run_dir(run_root)
    split.save(run_dir)
    atomic_write_json(run_dir / "config.json", {**asdict(config), "dataset_used": dataset.name})
    plot_pr_curves(curves, run_dir / "pr_curves.png", title=f"{dataset.name}: PR within Hamming radius")
    table = format_table(rows, [c.replace("1000", str(config.k)) for c in COLUMNS])
    write_report(
        run_dir,
        f"hashlearn demo on {dataset.name}",
        [
            ("Setup", f"Protocol `{split.protocol}` (seed {split.seed}): {split.sizes()}. {split.meta.get('description', '')}\n"
                      f"Shallow methods are fitted on the train split's raw features ({features.shape[1]}-d); deep methods "
                      f"({', '.join(config.deep_methods) or 'none'}) train a small CNN (images) or MLP (vectors) for {config.deep_epochs} epochs "
                      "and keep the epoch with the best validation mAP (never the queries). The database and queries are encoded and "
                      "ranked by Hamming distance, ties by ascending id. `+hswd` replaces the method's own quantization term by the "
                      "per-bit sliced Wasserstein distance to a Bernoulli(0.5) target."),
            ("Results", table),
            ("Precision-recall", "![PR curves](pr_curves.png)"),
        ],
        {"dataset": dataset.name, "split": split.sizes(), "config": asdict(config), "results": rows, "pr_curves": curves},
    )
    say("")
    say(table)
    say(f"\nreport: {run_dir / 'report.md'}")
    return run_dir, rows
