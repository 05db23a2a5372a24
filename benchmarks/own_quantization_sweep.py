"""The sweep that chose the weight of a method's OWN quantization term (``eta``), on validation only.

``defaults_sweep.py`` chose every method's learning rate and epochs at 32 bits with
the loss's class defaults. The full-protocol table then showed ``triplet`` (its own
quantization: ``eta * mean (u - sign(u))^2``, eta 0.1) far below ``triplet+reg`` at
16 and 64 bits on EfficientNet-Lite0 features (mAP@1000 0.471 vs 0.769 at 16 bits),
and below ITQ at 16 bits. The triplet hinge works on distances normalised by the
code length, so its gradients are much smaller than the pairwise likelihood's, and
the same ``eta`` that suits DPSH saturates ``tanh`` before the codes separate.

For each method here, every ``eta`` of ``ETAS`` is trained at 16, 32 and 64 bits
(the registered lr and epochs of the input kind, Adam, batch 128, seed 0) on the
Fashion-MNIST default protocol through frozen EfficientNet-Lite0
(``protocol_data.py``); selection uses the VALIDATION split only (mAP@1000 of
validation codes against training codes, the trainer's model-selection metric).
The chosen ``eta`` is the one with the best mean validation mAP over the three code
lengths; it is written into the loss's default (``losses/triplet.py``).

    PYTHONPATH=src nice -n 10 python benchmarks/own_quantization_sweep.py [--methods triplet]

Resumable: cells in ``benchmarks/results/own_quantization_sweep.json`` are skipped.
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
DATASET, KIND = "fmnist-efficientnet", "efficientnet"
ETAS = [0.1, 0.03, 0.01, 0.003, 0.0]
BITS = [16, 32, 64]
BATCH_SIZE, SEED = 128, 0


def train_cell(data: dict, method: str, n_bits: int, eta: float) -> dict:
    from hashlearn.losses import training_defaults
    from hashlearn.runs.deep import build_deep_method
    from hashlearn.train import Trainer, TrainConfig

    defaults = training_defaults(method, KIND)
    model, objective = build_deep_method(method, n_bits, data["n_classes"], data["X_train"].shape[1:], seed=SEED, eta=eta)
    config = TrainConfig(epochs=defaults["epochs"], batch_size=BATCH_SIZE, lr=defaults["lr"], seed=SEED)
    cpu = time.process_time()
    result = Trainer(config).fit(model, objective, train=(data["X_train"], data["y_train"]), val=(data["X_validation"], data["y_validation"]))
    return {"method": method, "n_bits": n_bits, "eta": eta, "lr": defaults["lr"], "epochs": defaults["epochs"],
            "best_val": result.best_metric, "best_epoch": result.best_epoch, "cpu_seconds": time.process_time() - cpu,
            "load_average": os.getloadavg()[0]}


def choose(cells: list[dict], method: str) -> float | None:
    """The eta with the best mean validation mAP over the code lengths (only etas run at every length)."""
    by_eta: dict = {}
    for cell in cells:
        if cell["method"] == method:
            by_eta.setdefault(cell["eta"], {})[cell["n_bits"]] = cell["best_val"]
    complete = {eta: values for eta, values in by_eta.items() if set(values) == set(BITS)}
    if not complete:
        return None
    return max(complete, key=lambda eta: (sum(complete[eta].values()) / len(BITS), eta))


def summarize(results: dict) -> str:
    lines = ["# Own-quantization weight (eta), chosen on validation", "",
             f"Machine: {results['machine']}. Written by `benchmarks/own_quantization_sweep.py` (its docstring says why and how).", "",
             f"Fashion-MNIST default protocol through frozen EfficientNet-Lite0: 5,000 train, 1,000 validation; "
             f"validation mAP@1000 against the training codes; seed {SEED}; registered lr and epochs of the `{KIND}` kind; "
             "the queries are not used.", ""]
    for method in dict.fromkeys(c["method"] for c in results["cells"]):
        chosen = choose(results["cells"], method)
        lines += [f"## {method}", "", "| eta | " + " | ".join(f"{b} bits" for b in BITS) + " | mean | chosen |",
                  "|---" * (len(BITS) + 3) + "|"]
        for eta in ETAS:
            values = {c["n_bits"]: c["best_val"] for c in results["cells"] if c["method"] == method and c["eta"] == eta}
            if not values:
                continue
            cols = [f"{values[b]:.4f}" if b in values else "-" for b in BITS]
            mean = f"{sum(values.values()) / len(values):.4f}" if len(values) == len(BITS) else "-"
            lines.append(f"| {eta:g} | " + " | ".join(cols) + f" | {mean} | {'yes' if eta == chosen else ''} |")
        lines.append("")
    loads = sorted(c["load_average"] for c in results["cells"])
    if loads:
        lines.append(f"Load average while the cells ran (1-minute, measured after each cell): median {loads[len(loads) // 2]:.1f}, "
                     f"max {loads[-1]:.1f}; CPU seconds per cell are in the JSON.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["triplet"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    json_path, md_path = RESULTS / "own_quantization_sweep.json", RESULTS / "own_quantization_sweep.md"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"cells": []}
    results["machine"] = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, shared), torch {torch.__version__}, {args.threads} thread"
    done = {(c["method"], c["n_bits"], c["eta"]) for c in results["cells"]}
    data = load_parts(DATASET, parts_wanted=("train", "validation"))
    for method in args.methods:
        for n_bits in BITS:
            for eta in ETAS:
                if (method, n_bits, eta) in done:
                    continue
                cell = train_cell(data, method, n_bits, eta)
                results["cells"].append(cell)
                print(json.dumps(cell), flush=True)
                atomic_write_json(json_path, results)
                atomic_write_text(md_path, summarize(results))
        print(method, "chosen eta:", choose(results["cells"], method), flush=True)
    atomic_write_text(md_path, summarize(results))


if __name__ == "__main__":
    main()
