"""The sweep that chose loss settings the defaults sweep left at their class defaults, on validation only.

``defaults_sweep.py`` chose every method's learning rate and epochs at 32 bits with
each loss's class defaults. The full-protocol table then showed two methods at or
below ITQ on EfficientNet-Lite0 features:

* ``triplet`` with its own quantization (``eta * mean (u - sign(u))^2``, eta 0.1):
  mAP@1000 0.471 at 16 bits against ITQ's 0.634 and ``triplet+reg``'s 0.769. The
  triplet hinge works on distances normalised by the code length, so its gradients
  are much smaller than the pairwise likelihood's, and the ``eta`` that suits DPSH
  saturates ``tanh`` before the codes separate. Swept: ``eta``.
* ``dsdh`` on the multi-label openmoji-tags set: 0.239 at 16 bits, ITQ 0.239. Its
  classifier fits 167 multi-hot labels by squared error. Swept: ``classification``
  (``"mse"``, the paper's, against ``"ce"``, cross-entropy on the normalised labels),
  on the single-label and the multi-label data.

Each value is trained at 16, 32 and 64 bits (the registered lr and epochs of the
``efficientnet`` kind, Adam, batch 128, seed 0) on the datasets named in ``SWEEPS``
(``protocol_data.py``: frozen EfficientNet-Lite0 features, the default protocols).
Selection uses the VALIDATION split only (mAP@1000 of validation codes against
training codes, the trainer's model-selection metric); the queries are never used.
A dataset's choice is the value with the best mean validation mAP over the code
lengths; the registered default (``losses/registry.py``) is the choice for the data
it applies to.

    PYTHONPATH=src nice -n 10 python benchmarks/loss_settings_sweep.py [--methods triplet dsdh]

Resumable: cells in ``benchmarks/results/loss_settings_sweep.json`` are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from protocol_data import load_parts  # noqa: E402

from hashlearn._io import atomic_write_json, atomic_write_text  # noqa: E402
from hashlearn._progress import set_quiet  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KIND = "efficientnet"
#: method -> (the loss keyword swept, its values, the datasets it is chosen on)
SWEEPS = {
    "triplet": ("eta", [0.1, 0.03, 0.01, 0.003, 0.0], ["fmnist-efficientnet"]),
    "dsdh": ("classification", ["mse", "ce"], ["fmnist-efficientnet", "openmoji-efficientnet"]),
}
BITS = [16, 32, 64]
BATCH_SIZE, SEED = 128, 0


def train_cell(data: dict, dataset: str, method: str, n_bits: int, keyword: str, value) -> dict:
    from hashlearn.losses import training_defaults
    from hashlearn.runs.deep import build_deep_method
    from hashlearn.train import Trainer, TrainConfig

    defaults = training_defaults(method, KIND)
    model, objective = build_deep_method(method, n_bits, data["n_classes"], data["X_train"].shape[1:], seed=SEED, **{keyword: value})
    config = TrainConfig(epochs=defaults["epochs"], batch_size=BATCH_SIZE, lr=defaults["lr"], seed=SEED)
    cpu = time.process_time()
    result = Trainer(config).fit(model, objective, train=(data["X_train"], data["y_train"]), val=(data["X_validation"], data["y_validation"]))
    return {"method": method, "dataset": dataset, "n_bits": n_bits, "keyword": keyword, "value": value, "lr": defaults["lr"],
            "epochs": defaults["epochs"], "best_val": result.best_metric, "best_epoch": result.best_epoch,
            "cpu_seconds": time.process_time() - cpu, "load_average": os.getloadavg()[0]}


def choose(cells: list[dict], method: str, dataset: str):
    """The value with the best mean validation mAP over the code lengths (only values run at every length)."""
    by_value: dict = {}
    for cell in cells:
        if cell["method"] == method and cell["dataset"] == dataset:
            by_value.setdefault(json.dumps(cell["value"]), {})[cell["n_bits"]] = cell["best_val"]
    complete = {value: runs for value, runs in by_value.items() if set(runs) == set(BITS)}
    if not complete:
        return None
    return json.loads(max(complete, key=lambda value: sum(complete[value].values()) / len(BITS)))


def summarize(results: dict) -> str:
    lines = ["# Loss settings chosen on validation", "",
             f"Machine: {results['machine']}. Written by `benchmarks/loss_settings_sweep.py` (its docstring says why and how).", "",
             "Default protocols through frozen EfficientNet-Lite0 (Fashion-MNIST: 5,000 train, 1,000 validation; openmoji-tags: "
             "1,200 train, 170 validation); validation mAP@1000 against the training codes; seed "
             f"{SEED}; the registered lr and epochs of the `{KIND}` kind; the queries are not used.", ""]
    for method, (keyword, values, datasets) in SWEEPS.items():
        for dataset in datasets:
            cells = [c for c in results["cells"] if c["method"] == method and c["dataset"] == dataset]
            if not cells:
                continue
            chosen = choose(results["cells"], method, dataset)
            lines += [f"## {method}: `{keyword}` on {dataset}", "",
                      f"| {keyword} | " + " | ".join(f"{b} bits" for b in BITS) + " | mean | chosen |", "|---" * (len(BITS) + 3) + "|"]
            for value in values:
                runs = {c["n_bits"]: c["best_val"] for c in cells if c["value"] == value}
                if not runs:
                    continue
                cols = [f"{runs[b]:.4f}" if b in runs else "-" for b in BITS]
                mean = f"{sum(runs.values()) / len(runs):.4f}" if len(runs) == len(BITS) else "-"
                lines.append(f"| {value} | " + " | ".join(cols) + f" | {mean} | {'yes' if value == chosen else ''} |")
            lines.append("")
    loads = sorted(c["load_average"] for c in results["cells"])
    if loads:
        lines.append(f"Load average while the cells ran (1-minute, measured after each cell): median {loads[len(loads) // 2]:.1f}, "
                     f"max {loads[-1]:.1f}; CPU seconds per cell are in the JSON.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    json_path, md_path = RESULTS / "loss_settings_sweep.json", RESULTS / "loss_settings_sweep.md"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"cells": []}
    results["machine"] = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, shared), torch {torch.__version__}, {args.threads} thread"
    done = {(c["method"], c["dataset"], c["n_bits"], json.dumps(c["value"])) for c in results["cells"]}
    for method in args.methods:
        keyword, values, datasets = SWEEPS[method]
        for dataset in datasets:
            data = None
            for n_bits in BITS:
                for value in values:
                    if (method, dataset, n_bits, json.dumps(value)) in done:
                        continue
                    data = data or load_parts(dataset, parts_wanted=("train", "validation"))
                    cell = train_cell(data, dataset, method, n_bits, keyword, value)
                    results["cells"].append(cell)
                    print(json.dumps(cell), flush=True)
                    atomic_write_json(json_path, results)
                    atomic_write_text(md_path, summarize(results))
            print(method, dataset, "chosen:", choose(results["cells"], method, dataset), flush=True)
    atomic_write_text(md_path, summarize(results))


if __name__ == "__main__":
    main()
