"""The sweep that chose the registered training defaults of every deep method, per input kind.

For each input kind -- ``pixels`` (Fashion-MNIST images, small CNN),
``efficientnet`` (Fashion-MNIST through frozen EfficientNet-Lite0, MLP head) and
``minilm`` (20 Newsgroups through frozen all-MiniLM-L6-v2, MLP head) -- every
deep method is trained with its own quantization term at each learning rate of
``LEARNING_RATES[kind]`` for ``MAX_EPOCHS[kind]`` epochs (Adam, batch 128,
32 bits, seed 0, no schedule, so the validation curve of one run gives every
shorter epoch budget too). Then ``+hswd`` is trained at the chosen rate with
each weight of ``QUANTIZATION_WEIGHTS`` for the kind's best methods (pixels: the
default method; features: the top three); the kind's weight is the one with the best
mean validation mAP over them, and methods not swept take it.

Selection uses the VALIDATION split only (mAP@1000 of validation codes against
training codes, the trainer's model-selection metric); the queries are never
looked at. Chosen per method and kind:

* ``lr``: the rate with the best validation mAP (any epoch);
* ``epochs``: the fewest epochs whose validation mAP is within ``EPOCH_TOLERANCE``
  of that run's best;
* ``quantization_weight``: the ``+hswd`` weight with the best validation mAP;
* the default method of a kind: the best validation mAP among the methods.

    PYTHONPATH=src nice -n 10 python benchmarks/defaults_sweep.py [--kinds pixels efficientnet minilm]

Resumable: cells already in ``benchmarks/results/defaults_sweep.json`` are skipped;
the markdown is rewritten after every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from protocol_data import load_parts  # noqa: E402

from hashlearn._io import atomic_write_json, atomic_write_text  # noqa: E402
from hashlearn._progress import set_quiet  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KIND_DATA = {"pixels": "fmnist-pixels", "efficientnet": "fmnist-efficientnet", "minilm": "20ng-minilm"}
#: most likely defaults first: a CNN cell costs minutes on the shared cores, so the pixels sweep may stop early
METHODS = ["csq", "greedyhash", "dsdh", "dch", "hashnet", "dpsh", "dbdh", "triplet"]
LEARNING_RATES = {"pixels": [1e-3, 3e-3], "efficientnet": [3e-4, 1e-3, 3e-3], "minilm": [1e-3, 3e-3, 1e-2]}
MAX_EPOCHS = {"pixels": 8, "efficientnet": 12, "minilm": 30}
QUANTIZATION_WEIGHTS = [0.01, 0.1, 1.0]
EPOCH_TOLERANCE = 0.005
N_BITS, BATCH_SIZE, SEED = 32, 128, 0


def build(method: str, n_bits: int, n_classes: int, input_shape, seed: int, quantization_weight=None):
    try:
        from hashlearn.runs.deep import build_deep_method
    except ImportError:  # before the runs package existed
        from hashlearn.methods.deep import build_deep_method
    return build_deep_method(method, n_bits, n_classes, input_shape, seed=seed, quantization_weight=quantization_weight)


def train_cell(data: dict, method: str, lr: float, epochs: int, quantization_weight=None) -> dict:
    from hashlearn.train import Trainer, TrainConfig

    model, objective = build(method, N_BITS, data["n_classes"], data["X_train"].shape[1:], SEED, quantization_weight)
    config = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, lr=lr, seed=SEED)
    cpu = time.process_time()
    result = Trainer(config).fit(model, objective, train=(data["X_train"], data["y_train"]), val=(data["X_validation"], data["y_validation"]))
    curve = [row["val_metric"] for row in result.history]
    return {"val_curve": curve, "best_val": max(curve), "best_epoch": result.best_epoch,
            "cpu_seconds_per_epoch": result.cpu_seconds_per_epoch, "cpu_seconds": time.process_time() - cpu}


def shortest_epochs(curve: list[float], tolerance: float = EPOCH_TOLERANCE) -> int:
    """Fewest epochs whose validation metric is within ``tolerance`` of the curve's best."""
    best = max(curve)
    return next(epoch for epoch, value in enumerate(curve, start=1) if value >= best - tolerance)


def choose(cells: list[dict]) -> dict:
    """Per kind and method: lr, epochs, quantization weight; per kind: the default method."""
    chosen: dict = {}
    for kind in KIND_DATA:
        own = [c for c in cells if c["kind"] == kind and c["stage"] == "lr"]
        methods = {}
        for method in dict.fromkeys(c["method"] for c in own):
            runs = [c for c in own if c["method"] == method]
            best = max(runs, key=lambda c: (c["best_val"], -c["lr"]))
            entry = {"lr": best["lr"], "epochs": shortest_epochs(best["val_curve"]), "val_mAP": best["best_val"]}
            weights = [c for c in cells if c["kind"] == kind and c["stage"] == "qw" and c["method"] == method + "+hswd"]
            if weights:
                top = max(weights, key=lambda c: c["best_val"])
                entry.update(quantization_weight=top["quantization_weight"], hswd_val_mAP=top["best_val"])
            methods[method] = entry
        if methods:
            default = max(methods, key=lambda m: methods[m]["val_mAP"])
            chosen[kind] = {"default_method": default, "methods": methods}
            swept = [c for c in cells if c["kind"] == kind and c["stage"] == "qw"]
            if swept:  # the kind's weight: best mean validation mAP over the methods it was swept for
                by_weight = {}
                for c in swept:
                    by_weight.setdefault(c["quantization_weight"], []).append(c["best_val"])
                complete = {w: v for w, v in by_weight.items() if len(v) == max(len(x) for x in by_weight.values())}
                chosen[kind]["quantization_weight"] = max(complete, key=lambda w: sum(complete[w]) / len(complete[w]))
    return chosen


def summarize(results: dict) -> str:
    cells, chosen = results["cells"], choose(results["cells"])
    lines = ["# Training defaults: the validation sweep", "",
             f"Machine: {results['machine']}. {N_BITS} bits, batch {BATCH_SIZE}, Adam, seed {SEED}, no schedule; each method with its "
             "own quantization term. Metric: validation mAP@1000 (validation codes against training codes) -- the "
             "queries are never used. `epochs` is the fewest epochs within "
             f"{EPOCH_TOLERANCE} of the run's best validation mAP; the `+hswd` weight is chosen the same way.", "",
             "Data: " + "; ".join(f"{kind}: {KIND_DATA[kind]} (train {results['sizes'].get(kind, {}).get('train', '?')}, "
                                  f"validation {results['sizes'].get(kind, {}).get('validation', '?')})" for kind in KIND_DATA) + ".", "",
             "    PYTHONPATH=src nice -n 10 python benchmarks/defaults_sweep.py", ""]
    for kind in KIND_DATA:
        kind_cells = [c for c in cells if c["kind"] == kind]
        if not kind_cells:
            lines += [f"## {kind}", "", "not run", ""]
            continue
        lrs = LEARNING_RATES[kind]
        lines += [f"## {kind} ({KIND_DATA[kind]}, up to {MAX_EPOCHS[kind]} epochs)", "",
                  "Best validation mAP@1000 (epoch) per learning rate; CPU s/epoch at the chosen rate.", "",
                  "| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen lr | epochs | +hswd weight: val mAP | CPU s/epoch |",
                  "|---|" + "---|" * (len(lrs) + 4)]
        for method, entry in chosen.get(kind, {}).get("methods", {}).items():
            row = []
            for lr in lrs:
                cell = next((c for c in kind_cells if c["stage"] == "lr" and c["method"] == method and c["lr"] == lr), None)
                row.append(f"{cell['best_val']:.3f} ({cell['best_epoch']})" if cell else "-")
            qw = [c for c in kind_cells if c["stage"] == "qw" and c["method"] == method + "+hswd"]
            qw_text = ", ".join(f"{c['quantization_weight']:g}: {c['best_val']:.3f}" for c in sorted(qw, key=lambda c: c["quantization_weight"])) or "-"
            cost = next(c["cpu_seconds_per_epoch"] for c in kind_cells if c["stage"] == "lr" and c["method"] == method and c["lr"] == entry["lr"])
            lines.append(f"| {method} | " + " | ".join(row) + f" | {entry['lr']:g} | {entry['epochs']} | {qw_text} | {cost:.2f} |")
        if kind in chosen:
            best = chosen[kind]["default_method"]
            lines += ["", f"Default method for `{kind}`: **{best}** (validation mAP@1000 {chosen[kind]['methods'][best]['val_mAP']:.3f}).", ""]
    lines += ["## Chosen defaults (written into the loss registry)", "", "```json", json.dumps(chosen, indent=1), "```", ""]
    return "\n".join(lines)


def cell_key(cell: dict) -> tuple:
    return (cell["kind"], cell["stage"], cell["method"], cell["lr"], cell.get("quantization_weight"))


def merged_results(machine: str) -> dict:
    """Every part file's cells (first occurrence of a cell wins) and sizes."""
    merged, seen = {"cells": [], "sizes": {}, "machine": machine}, set()
    paths = sorted(RESULTS.glob("defaults_sweep-*.json"))
    if (RESULTS / "defaults_sweep.json").exists():
        paths.append(RESULTS / "defaults_sweep.json")
    for path in paths:
        loaded = json.loads(path.read_text())
        merged["sizes"].update(loaded.get("sizes", {}))
        for cell in loaded.get("cells", []):
            if cell_key(cell) not in seen:
                seen.add(cell_key(cell))
                merged["cells"].append(cell)
    return merged


def write_merged(machine: str) -> None:
    merged = merged_results(machine)
    merged["chosen"] = choose(merged["cells"])
    atomic_write_json(RESULTS / "defaults_sweep.json", merged)
    atomic_write_text(RESULTS / "defaults_sweep.md", summarize(merged))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(KIND_DATA), choices=list(KIND_DATA))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stage", choices=["lr", "qw", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_quiet(True)
    from hashlearn.losses import LOSSES

    methods = [m for m in args.methods if m in LOSSES]
    # one part file per process (several kinds can run in parallel), merged into defaults_sweep.json/.md
    part_path = RESULTS / f"defaults_sweep-{'-'.join(args.kinds)}.json"
    part = json.loads(part_path.read_text()) if part_path.exists() else {"cells": [], "sizes": {}}
    machine = f"{platform.machine()}, {os.cpu_count()} shared cores, torch {torch.__version__}, {args.threads} thread(s)"
    done = {cell_key(c) for c in merged_results(machine)["cells"]}

    def record(cell):
        part["cells"].append(cell)
        print(json.dumps(cell), flush=True)
        atomic_write_json(part_path, part)
        write_merged(machine)

    for kind in args.kinds:
        data = load_parts(KIND_DATA[kind], ("train", "validation"), sweep=True)
        part["sizes"][kind] = {name: int(len(data[f"y_{name}"])) for name in ("train", "validation")}
        if args.stage in ("lr", "both"):
            for method in methods:
                for lr in LEARNING_RATES[kind]:
                    if (kind, "lr", method, lr, None) not in done:
                        done.add((kind, "lr", method, lr, None))
                        cell = train_cell(data, method, lr, MAX_EPOCHS[kind])
                        record({"kind": kind, "stage": "lr", "method": method, "lr": lr, "load_average": os.getloadavg()[0], **cell})
        if args.stage in ("qw", "both"):
            kind_choice = choose(merged_results(machine)["cells"]).get(kind, {})
            chosen = kind_choice.get("methods", {})
            # the weight is swept for the kind's best methods only (pixels: the default; features: the top 3) --
            # a CNN run costs minutes on the shared cores; the other methods take the kind's weight
            ranked = sorted(chosen, key=lambda m: -chosen[m]["val_mAP"])
            qw_methods = ranked[:1] if kind == "pixels" else ranked[:3]
            for method in qw_methods:
                if method not in chosen:
                    continue
                entry = chosen[method]
                for weight in QUANTIZATION_WEIGHTS:
                    if (kind, "qw", method + "+hswd", entry["lr"], weight) not in done:
                        cell = train_cell(data, method + "+hswd", entry["lr"], max(entry["epochs"], 2), weight)
                        record({"kind": kind, "stage": "qw", "method": method + "+hswd", "lr": entry["lr"], "quantization_weight": weight,
                                "load_average": os.getloadavg()[0], **cell})
    write_merged(machine)


if __name__ == "__main__":
    main()
