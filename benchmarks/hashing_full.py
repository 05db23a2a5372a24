"""The full-protocol deep hashing table (``benchmarks/hashing.py --full``).

Every deep method x {own quantization, +reg, +swd, +hswd} x {16, 32, 64} bits x
3 seeds on Fashion-MNIST pixels (small CNN, default protocol: 5,000 train,
1,000 validation, 1,000 queries, the full 69,000-item database) and on frozen
EfficientNet-Lite0 features (MLP head; database sub-sampled, see
``protocol_data.py``), each trained with the method's registered defaults for
that input kind (``benchmarks/results/defaults_sweep.md``). Also the paper
preset of the quantizers (``"paper"``: sampled Bernoulli target per call, 10,000
SWD projections, weight 0.1) at the same training budget, and the shallow
baselines (ITQ, LSH, PCAH; NAC on the features) per code length.

Per cell: mAP@5000 (the seed's protocol), mAP@1000, P@1000, precision within
Hamming radius 2 on the queries; validation mAP (model selection), best
epoch, process CPU seconds per training epoch (one torch thread), wall
seconds to the best validation epoch, and the code diagnostics of the
database codes (bit entropy, bit correlation, Hamming gap of similar vs
dissimilar pairs, quantization error).

Cells run in priority order (32 bits / seed 0 / every method first, then
+hswd vs own on more seeds, then the other code lengths); every finished cell
is appended to ``benchmarks/results/hashing-full.json`` and the tables in
``hashing.md`` are rewritten, so an interrupted run resumes where it stopped:

    PYTHONPATH=src nohup nice -n 10 python benchmarks/hashing.py --full &
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from protocol_data import EFFICIENTNET_DB_EXTRA, load_parts  # noqa: E402

from hashlearn._io import atomic_write_json, atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DATASETS = {"fmnist-pixels": "pixels", "fmnist-efficientnet": "efficientnet"}
METHODS = ["csq", "greedyhash", "dsdh", "dch", "hashnet", "dpsh", "dbdh", "triplet"]
VARIANTS = ["", "+reg", "+swd", "+hswd"]
PRESET_VARIANTS = ["+swd@paper", "+hswd@paper"]
BITS = [16, 32, 64]
SEEDS = [0, 1, 2]
#: the official one-loss code's quantizer settings (README and losses/distributional_quantization_losses.py)
PAPER_QUANTIZER = {"swd": {"n_projections": 10000}, "hswd": {"target": "sample"}}
PAPER_WEIGHT = 0.1


def plan() -> list[tuple]:
    """(dataset, method, n_bits, seed) in priority order."""
    cells: list[tuple] = []

    def add(datasets, methods, bits, seeds):
        for seed in seeds:
            for n_bits in bits:
                for dataset in datasets:
                    for method in methods:
                        if (dataset, method, n_bits, seed) not in cells:
                            cells.append((dataset, method, n_bits, seed))

    own = METHODS
    hswd = [m + "+hswd" for m in METHODS]
    everything = [m + v for m in METHODS for v in VARIANTS]
    add(["fmnist-efficientnet"], own, [32], [0])          # every method vs ITQ on features (cheap)
    add(["fmnist-pixels"], [m for pair in zip(own, hswd) for m in pair], [32], [0])  # +hswd vs own, pixels
    add(["fmnist-efficientnet"], everything, [32], [0])
    add(["fmnist-efficientnet"], [m + v for m in METHODS for v in PRESET_VARIANTS], [32], [0])
    add(["fmnist-pixels"], everything, [32], [0])
    add(["fmnist-efficientnet"], own + hswd, [32], [1, 2])
    add(["fmnist-pixels"], own + hswd, [32], [1, 2])
    add(["fmnist-efficientnet"], everything, [16, 64], [0])
    add(["fmnist-pixels"], everything, [16, 64], [0])
    add(list(DATASETS), everything, BITS, SEEDS)
    return cells


def training_defaults(method: str, kind: str) -> dict:
    """lr, epochs and quantization weight of ``method`` for inputs of ``kind`` (the registered defaults)."""
    from hashlearn.losses import training_defaults as registered

    return registered(method, kind)


def build(method: str, n_bits: int, n_classes: int, input_shape, seed: int, quantization_weight, quantizer_kwargs):
    from hashlearn.runs.deep import build_deep_method

    return build_deep_method(method, n_bits, n_classes, input_shape, seed=seed, quantization_weight=quantization_weight,
                             quantizer_kwargs=quantizer_kwargs)


def evaluate(query_codes, db_codes, y_query, y_db) -> dict:
    from hashlearn.eval import metrics

    precision, _ = metrics.precision_recall_at_radius(query_codes, db_codes, y_query, y_db, radius=2)
    return {"mAP@5000": metrics.mean_average_precision(query_codes, db_codes, y_query, y_db, k=5000),
            "mAP@1000": metrics.mean_average_precision(query_codes, db_codes, y_query, y_db, k=1000),
            "P@1000": metrics.precision_at_k(query_codes, db_codes, y_query, y_db, k=1000),
            "P@r=2": float(precision)}


def run_cell(data: dict, kind: str, name: str, n_bits: int, seed: int) -> dict:
    from hashlearn.eval.diagnostics import code_diagnostics
    from hashlearn.train import Trainer, TrainConfig

    method, _, preset = name.partition("@")
    base = method.split("+")[0]
    defaults = training_defaults(base, kind)
    weight, quantizer_kwargs = defaults.get("quantization_weight"), None
    if preset == "paper":
        quantizer = method.split("+")[1]
        quantizer_kwargs = dict(PAPER_QUANTIZER[quantizer])
        weight = PAPER_WEIGHT
    model, objective = build(method, n_bits, data["n_classes"], data["X_train"].shape[1:], seed, weight, quantizer_kwargs)
    config = TrainConfig(epochs=defaults["epochs"], lr=defaults["lr"], batch_size=128, seed=seed)
    started = time.perf_counter()
    result = Trainer(config).fit(model, objective, train=(data["X_train"], data["y_train"]), val=(data["X_validation"], data["y_validation"]))
    train_wall = time.perf_counter() - started
    db_outputs = model.transform(data["X_database"])
    from hashlearn.codes import sign_to_codes

    db_codes, query_codes = sign_to_codes(db_outputs), model.encode(data["X_query"])
    diagnostics = code_diagnostics(db_codes, data["y_database"], db_outputs, max_items=2000)
    diagnostics.pop("hamming_histograms")
    diagnostics.pop("bit_share_of_ones")
    return {**evaluate(query_codes, db_codes, data["y_query"], data["y_database"]),
            "val_mAP@1000": result.best_metric, "best_epoch": result.best_epoch, "epochs": defaults["epochs"], "lr": defaults["lr"],
            "quantization_weight": weight if "+" in method else None, "cpu_seconds_per_epoch": result.cpu_seconds_per_epoch,
            "seconds_to_best": result.seconds_to_best, "train_wall_seconds": train_wall, "diagnostics": diagnostics}


def baselines(data: dict, kind: str, n_bits: int) -> list[dict]:
    from hashlearn.methods import build_shallow

    flat = {part: data[f"X_{part}"].reshape(len(data[f"X_{part}"]), -1) for part in ("train", "query", "database")}
    rows = []
    for name in ["itq", "lsh", "pcah"] + (["nac"] if kind != "pixels" else []):
        cpu = time.process_time()
        hasher = build_shallow(name, n_bits=n_bits, random_state=0).fit(flat["train"])
        row = {"method": name, "n_bits": n_bits, **evaluate(hasher.encode(flat["query"]), hasher.encode(flat["database"]), data["y_query"], data["y_database"]),
               "fit_cpu_seconds": time.process_time() - cpu}
        rows.append(row)
    return rows


# --- tables -------------------------------------------------------------------------------
def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summarize(results: dict, coverage_note: str = "") -> str:
    runs, machine = results["runs"], results.get("machine", "")
    lines = ["# Deep hashing at full protocol size: locality losses x quantizers", "",
             f"Machine: {machine}. Command: `PYTHONPATH=src nohup nice -n 10 python benchmarks/hashing.py --full &` "
             "(resumes from `hashing-full.json`).", "",
             "Protocol: Fashion-MNIST default split (seed 0): 5,000 train, 1,000 validation (model selection), 1,000 queries "
             "(100 per class, from the test split). **pixels**: small CNN on 28x28 images, the full 69,000-item database. "
             f"**efficientnet**: frozen EfficientNet-Lite0 features (64 px, tf-lite normalization) + MLP head; database "
             f"sub-sampled to the 5,000 train items + {EFFICIENTNET_DB_EXTRA:,} other database items (10,000; see `protocol_data.py`). "
             "Each method is trained with its registered defaults for the input kind (lr, epochs, quantization weight: "
             "`defaults_sweep.md`), Adam, batch 128, one torch thread, the best validation epoch kept. "
             "`+q` = the method's own quantization term off, `weight * q` added; `@paper` = the official one-loss code's quantizer "
             "settings (Bernoulli target sampled per call, 10,000 SWD projections, weight 0.1) at hashlearn's training budget "
             "(its 200 epochs at lr 1e-5 do not fit on two shared cores).", ""]
    if coverage_note:
        lines += [coverage_note, ""]
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["method"], run["n_bits"]), []).append(run)
    base_rows = {(b["dataset"], b["method"], b["n_bits"]): b for b in results.get("baselines", [])}
    for dataset in DATASETS:
        bits = sorted({b for (d, _, b) in groups if d == dataset} | {b for (d, _, b) in base_rows if d == dataset})
        if not bits:
            continue
        lines += [f"## {dataset}", ""]
        for metric in ("mAP@5000", "mAP@1000", "P@1000", "P@r=2"):
            lines += [f"### {metric} (mean ± std over seeds; [n] = seeds run)", "",
                      "| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---|" * len(bits)]
            for name in ("itq", "lsh", "pcah", "nac"):
                cells = [f"{base_rows[(dataset, name, b)][metric]:.3f}" if (dataset, name, b) in base_rows else "-" for b in bits]
                if any(c != "-" for c in cells):
                    lines.append(f"| {name} (shallow) | " + " | ".join(cells) + " |")
            for method in METHODS:
                for variant in VARIANTS + PRESET_VARIANTS:
                    name = method + variant
                    cells = []
                    for b in bits:
                        group = groups.get((dataset, name, b), [])
                        cells.append(_mean_std([r[metric] for r in group]) + (f" [{len(group)}]" if len(group) > 1 else "") if group else "-")
                    if any(c != "-" for c in cells):
                        lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += paired_table(groups, dataset, bits) + [""]
        lines += cost_table(groups, dataset) + [""]
        lines += diagnostics_table(groups, dataset) + [""]
    return "\n".join(lines) + "\n"


def paired_table(groups, dataset, bits) -> list[str]:
    """Per method and code length: +hswd minus own, seed by seed (mAP@5000), and the verdict."""
    lines = ["### +hswd vs own quantization, paired by seed (mAP@5000 difference; win/tie/loss at |diff| > 0.005)", "",
             "| method | bits | seeds | differences | mean | verdict |", "|---|---|---|---|---|---|"]
    tally = {"win": 0, "tie": 0, "loss": 0}
    for method in METHODS:
        for b in bits:
            own = {r["seed"]: r["mAP@5000"] for r in groups.get((dataset, method, b), [])}
            hswd = {r["seed"]: r["mAP@5000"] for r in groups.get((dataset, method + "+hswd", b), [])}
            seeds = sorted(set(own) & set(hswd))
            if not seeds:
                continue
            diffs = [hswd[s] - own[s] for s in seeds]
            mean = statistics.mean(diffs)
            verdict = "win" if mean > 0.005 else "loss" if mean < -0.005 else "tie"
            tally[verdict] += 1
            lines.append(f"| {method} | {b} | {len(seeds)} | {', '.join(f'{d:+.3f}' for d in diffs)} | {mean:+.3f} | {verdict} |")
    lines += ["", f"HSWD wins {tally['win']}, ties {tally['tie']}, loses {tally['loss']} of the paired (method, bits) cells on {dataset}."]
    return lines


def cost_table(groups, dataset) -> list[str]:
    lines = ["### Training cost at 32 bits: CPU seconds per epoch (one thread) and wall seconds to the best validation epoch", "",
             "| method | " + " | ".join(v or "own" for v in VARIANTS) + " | +hswd / own | +hswd / +reg |", "|---|" + "---|" * (len(VARIANTS) + 2)]
    for method in METHODS:
        cpu = {}
        cells = []
        for v in VARIANTS:
            group = groups.get((dataset, method + v, 32), [])
            if group:
                cpu[v] = statistics.median(r["cpu_seconds_per_epoch"] for r in group)
                cells.append(f"{cpu[v]:.2f} / {statistics.median(r['seconds_to_best'] for r in group):.0f} s")
            else:
                cells.append("-")
        if any(c != "-" for c in cells):
            ratio = f"{cpu['+hswd'] / cpu['']:.2f}x" if "+hswd" in cpu and "" in cpu else "-"
            ratio_reg = f"{cpu['+hswd'] / cpu['+reg']:.2f}x" if "+hswd" in cpu and "+reg" in cpu else "-"
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {ratio} | {ratio_reg} |")
    return lines


def diagnostics_table(groups, dataset) -> list[str]:
    lines = ["### Code diagnostics at 32 bits (database codes, seed 0): mean bit entropy, mean |bit correlation|, "
             "Hamming gap (mean dissimilar - mean similar distance), quantization error", "",
             "| method | bit entropy | mean abs corr | Hamming gap | quant. error |", "|---|---|---|---|---|"]
    for method in METHODS:
        for v in VARIANTS + PRESET_VARIANTS:
            group = [r for r in groups.get((dataset, method + v, 32), []) if r["seed"] == 0]
            if group:
                d = group[0]["diagnostics"]
                lines.append(f"| {method + v} | {d['bit_mean_entropy']:.3f} | {d['bit_mean_abs_correlation']:.3f} | "
                             f"{d.get('hamming_gap', float('nan')):.2f} | {d.get('quantization_error', float('nan')):.3f} |")
    return lines


def coverage(results: dict) -> str:
    full = plan()
    done = {(r["dataset"], r["method"], r["n_bits"], r["seed"]) for r in results["runs"]}
    by_dataset = {d: (sum(1 for c in full if c[0] == d and c in done), sum(1 for c in full if c[0] == d)) for d in DATASETS}
    parts = ", ".join(f"{d}: {a} of {b} cells" for d, (a, b) in by_dataset.items())
    return (f"**Coverage: {len(done & set(full))} of {len(full)} planned cells ran** ({parts}); cells run in the priority order of "
            "`hashing_full.plan()` (features 32 bits seed 0, then pixels own/+hswd, then every variant, then more seeds, then "
            "16/64 bits). A '-' is a cell that did not run; `[n]` the number of seeds averaged.")


def main(args) -> None:
    from hashlearn._progress import set_quiet

    torch.set_num_threads(args.threads)
    set_quiet(True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    json_path, md_path = RESULTS / "hashing-full.json", RESULTS / "hashing.md"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"runs": [], "baselines": []}
    results["machine"] = (f"{platform.machine()}, {os.cpu_count()} CPU cores shared with seven other engineers (load average "
                          f"{os.getloadavg()[0]:.0f} at the start), torch {torch.__version__}, {args.threads} thread")
    done = {(r["dataset"], r["method"], r["n_bits"], r["seed"]) for r in results["runs"]}
    data_cache: dict = {}
    started = time.time()

    def write():
        atomic_write_json(json_path, results)
        atomic_write_text(md_path, summarize(results, coverage(results)))

    for dataset, method, n_bits, seed in plan():
        if (dataset, method, n_bits, seed) in done:
            continue
        if args.time_limit is not None and time.time() - started > 60 * args.time_limit:
            print("time limit reached; stopping", flush=True)
            break
        kind = DATASETS[dataset]
        if dataset not in data_cache:
            data_cache.clear()  # one dataset in memory at a time
            data_cache[dataset] = load_parts(dataset)
        data = data_cache[dataset]
        if not any(b["dataset"] == dataset and b["n_bits"] == n_bits for b in results["baselines"]):
            results["baselines"] += [{"dataset": dataset, **row} for row in baselines(data, kind, n_bits)]
            write()
        row = {"dataset": dataset, "method": method, "n_bits": n_bits, "seed": seed, "load_average": os.getloadavg()[0],
               **run_cell(data, kind, method, n_bits, seed)}
        results["runs"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "diagnostics"}), flush=True)
        write()
    write()
