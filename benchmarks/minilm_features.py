"""all-MiniLM-L6-v2 throughput on real documents (20 Newsgroups, R8) and the feature cache's speed-up.

    PYTHONPATH=src python benchmarks/minilm_features.py [--n-docs 64 --threads 2]

Writes benchmarks/results/minilm_features.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn.data import load_dataset
from hashlearn.data.encoders import MiniLMEncoder
from hashlearn.data.features import extract_features


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-docs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = MiniLMEncoder()
    start = time.perf_counter()
    encoder.encode_batch(["warm up"])
    load_s = time.perf_counter() - start
    rows = []
    for name in ("20newsgroups", "r8"):
        texts = load_dataset(name).data[: args.n_docs]
        words = float(np.mean([len(t.split()) for t in texts]))
        with tempfile.TemporaryDirectory() as cache:
            start, cpu = time.perf_counter(), time.process_time()
            extract_features(texts, encoder, cache_dir=cache, batch_size=args.batch_size)
            cold, cpu = time.perf_counter() - start, time.process_time() - cpu
            start = time.perf_counter()
            extract_features(texts, encoder, cache_dir=cache, batch_size=args.batch_size)
            warm = time.perf_counter() - start
        rows.append({"dataset": name, "n_docs": len(texts), "mean_words": words, "docs_per_s": len(texts) / cold, "cpu_s_per_doc": cpu / len(texts),
                     "cached_s": warm, "speedup": cold / warm})
        print(rows[-1], flush=True)
    load_avg = os.getloadavg()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), load average {load_avg:.1f}"
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "minilm_features.json").write_text(json.dumps({"args": vars(args), "machine": machine, "model_load_s": load_s, "rows": rows}, indent=2) + "\n")
    lines = [
        "# all-MiniLM-L6-v2 features: throughput and cache",
        "",
        f"First {args.n_docs} documents of each corpus, batch {args.batch_size}. Machine: {machine}. "
        f"Model load (imports + weights): {load_s:.1f} s.",
        "",
        "CPU-seconds per document estimate an idle core (the machine may be shared).",
        "",
        "| corpus | docs | mean words/doc | docs/s (wall) | CPU s / doc | docs/s per idle core | cache hit (s) | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['n_docs']} | {r['mean_words']:.0f} | {r['docs_per_s']:.1f} | {r['cpu_s_per_doc']:.3f} | "
                     f"{1 / r['cpu_s_per_doc']:.1f} | {r['cached_s']:.4f} | {r['speedup']:.0f}x |")
    (out / "minilm_features.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
