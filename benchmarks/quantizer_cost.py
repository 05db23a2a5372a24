"""Forward + backward time of each quantizer versus batch size and code length.

Compares, in one run on one machine: floor (``tanh(logits).mean()``, the
cost every candidate pays for the tanh and autograd), reg (balance + decorrelation + error), swd (64 random projections),
hswd (per-bit sort) and reg+swd (the combination HSWD replaces).

    PYTHONPATH=src python benchmarks/quantizer_cost.py            # full grid
    PYTHONPATH=src python benchmarks/quantizer_cost.py --quick    # smoke run

Writes benchmarks/results/quantizer_cost.md and quantizer_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn.quantization import build_quantizer

RESULTS = Path(__file__).parent / "results"
CANDIDATES = ["floor", "reg", "swd", "hswd", "reg+swd"]


def make_objective(name: str):
    if name == "floor":
        return lambda outputs: outputs.mean()
    parts = [build_quantizer(part) for part in name.split("+")]
    return lambda outputs: sum(part(outputs) for part in parts)


def time_forward_backward(batch: int, n_bits: int, repeats: int) -> dict[str, float]:
    """Median seconds of one forward + backward pass through tanh outputs, per candidate.

    Candidates are interleaved within each repeat, so load from other processes
    on the shared machine hits all of them alike.
    """
    objectives = {name: make_objective(name) for name in CANDIDATES}
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, n_bits, generator=generator, requires_grad=True)
    timings = {name: [] for name in CANDIDATES}
    for repeat in range(repeats + 2):  # two warm-up rounds
        for name, objective in objectives.items():
            start = time.perf_counter()
            objective(torch.tanh(logits)).backward()
            elapsed = time.perf_counter() - start
            logits.grad = None
            if repeat >= 2:
                timings[name].append(elapsed)
    return {name: statistics.median(values) for name, values in timings.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny grid for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.bits, args.repeats = [64], [16], 3
    torch.set_num_threads(args.threads)

    rows = []
    for batch in args.batch_sizes:
        for n_bits in args.bits:
            seconds = time_forward_backward(batch, n_bits, args.repeats)
            rows.append({"batch": batch, "n_bits": n_bits, "seconds": seconds})
            print(f"B={batch:5d} bits={n_bits:4d} " + " ".join(f"{k}={v * 1e3:.3f}ms" for k, v in seconds.items()), flush=True)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load} at the end), torch {torch.__version__}, {args.threads} thread(s)"
    )
    ratios = [row["seconds"]["reg+swd"] / row["seconds"]["hswd"] for row in rows]
    lines = [
        "# Quantizer cost: forward + backward",
        "",
        f"Machine: {machine}. Median of {args.repeats} passes after 2 warm-up rounds, candidates interleaved; "
        "each pass is `quantizer(tanh(logits)).backward()` on a (batch, n_bits) float32 batch. "
        "swd uses 64 projections; hswd the exact quantile target.",
        "",
        "| batch | bits | floor (ms) | reg (ms) | swd (ms) | hswd (ms) | reg+swd (ms) | reg+swd / hswd | swd / hswd |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        s = row["seconds"]
        lines.append(
            f"| {row['batch']} | {row['n_bits']} | "
            + " | ".join(f"{s[name] * 1e3:.3f}" for name in CANDIDATES)
            + f" | {s['reg+swd'] / s['hswd']:.2f}x | {s['swd'] / s['hswd']:.2f}x |"
        )
    lines += [
        "",
        f"Median ratio reg+swd / hswd over the grid: {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x).",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    atomic_write_text(RESULTS / f"quantizer_cost{suffix}.md", "\n".join(lines))
    atomic_write_json(RESULTS / f"quantizer_cost{suffix}.json", {"machine": machine, "repeats": args.repeats, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
