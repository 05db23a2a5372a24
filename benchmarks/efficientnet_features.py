"""EfficientNet-Lite0 features on Fashion-MNIST: throughput and kNN quality per input size and normalization.

Chooses the default preprocessing of the efficientnet-lite0 encoder. Uses only
Fashion-MNIST *training* images (a database and a disjoint query set drawn
from them), never the test split. Raw pixels are the baseline.

    PYTHONPATH=src python benchmarks/efficientnet_features.py [--n-db 1000 --n-query 300 --threads 2]
    PYTHONPATH=src python benchmarks/efficientnet_features.py --timing --batch-size 16

Writes benchmarks/results/efficientnet_features.md (or efficientnet_throughput.md with --timing) and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn.data import load_dataset
from hashlearn.data.encoders import EfficientNetLite0Encoder


def knn_accuracy(db, db_labels, queries, query_labels, k=10):
    """Majority vote of the k cosine nearest database items; ties -> smallest class id."""
    db = db / np.linalg.norm(db, axis=1, keepdims=True).clip(1e-12)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    nearest = np.argsort(-queries @ db.T, axis=1, kind="stable")[:, :k]
    votes = np.array([np.bincount(db_labels[row], minlength=10).argmax() for row in nearest])
    precision = (db_labels[nearest] == query_labels[:, None]).mean()
    return float((votes == query_labels).mean()), float(precision)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-db", type=int, default=1000)
    parser.add_argument("--n-query", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 160, 224])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--timing", action="store_true", help="only measure best-of-N batch throughput per size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing:
        return timing(args)
    dataset = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    train = rng.permutation(dataset.predefined_split["train"])[: args.n_db + args.n_query]
    images, labels = dataset.data[train], dataset.labels[train]
    db, query = slice(0, args.n_db), slice(args.n_db, None)
    rows = []
    pixels = images.reshape(len(images), -1)
    acc, prec = knn_accuracy(pixels[db], labels[db], pixels[query], labels[query])
    rows.append({"features": "raw pixels (784-d)", "image_size": 28, "normalization": "-", "images_per_s": None, "knn10_accuracy": acc, "precision_at_10": prec})
    for size in args.sizes:
        for normalization in ("imagenet", "tf-lite"):
            encoder = EfficientNetLite0Encoder(image_size=size, normalization=normalization)
            encoder.encode_batch(images[:2])  # load weights, warm up
            start = time.perf_counter()
            feats = np.concatenate([encoder.encode_batch(images[i:i + args.batch_size]) for i in range(0, len(images), args.batch_size)])
            seconds = time.perf_counter() - start
            acc, prec = knn_accuracy(feats[db], labels[db], feats[query], labels[query])
            row = {"features": "efficientnet-lite0 (1280-d)", "image_size": size, "normalization": normalization,
                   "images_per_s": len(images) / seconds, "knn10_accuracy": acc, "precision_at_10": prec}
            print(row, flush=True)
            rows.append(row)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)"
    (out / "efficientnet_features.json").write_text(json.dumps({"args": vars(args), "machine": machine, "rows": rows}, indent=2) + "\n")
    lines = [
        "# EfficientNet-Lite0 features on Fashion-MNIST",
        "",
        f"{args.n_db} database and {args.n_query} query images, both drawn from the training split (seed 0); "
        f"cosine 10-NN majority vote. Machine: {machine}. Shared 2-core machine: throughput is indicative.",
        "",
        "| features | input size | normalization | images/s | 10-NN accuracy | precision@10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        speed = "-" if row["images_per_s"] is None else f"{row['images_per_s']:.1f}"
        lines.append(f"| {row['features']} | {row['image_size']} | {row['normalization']} | {speed} | {row['knn10_accuracy']:.3f} | {row['precision_at_10']:.3f} |")
    (out / "efficientnet_features.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def timing(args, repeats=5):
    """Best-of-``repeats`` wall and CPU time of one batch per input size, sizes interleaved so they share the load.

    On a shared machine wall time depends on the other jobs; CPU time (``time.process_time``)
    much less, so CPU-seconds per image estimate what an idle core would do.
    """
    images = load_dataset("fashion-mnist").data[: args.batch_size]
    encoders = {size: EfficientNetLite0Encoder(image_size=size) for size in args.sizes}
    for encoder in encoders.values():
        encoder.encode_batch(images[:2])
    best_wall = {size: float("inf") for size in args.sizes}
    best_cpu = {size: float("inf") for size in args.sizes}
    for _ in range(repeats):
        for size, encoder in encoders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            encoder.encode_batch(images)
            best_wall[size] = min(best_wall[size], time.perf_counter() - wall)
            best_cpu[size] = min(best_cpu[size], time.process_time() - cpu)
    load = os.getloadavg()[0]
    n = len(images)
    lines = [
        "# EfficientNet-Lite0 throughput (best of 5 batches)",
        "",
        f"Batch of {n} Fashion-MNIST images (28x28 grey -> resize -> 1280-d), {args.threads} torch thread(s), "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} while measuring. "
        "The machine was shared: wall-clock images/s are what this run got; CPU-seconds per image "
        "estimate an idle core, and the last column assumes both cores of an idle machine (no parallel overhead).",
        "",
        "| input size | wall images/s (shared) | CPU s / image | images/s per idle core | 70,000 images on 2 idle cores |",
        "| --- | --- | --- | --- | --- |",
    ]
    for size in args.sizes:
        per_image = best_cpu[size] / n
        lines.append(f"| {size} | {n / best_wall[size]:.1f} | {per_image:.4f} | {1 / per_image:.1f} | {70000 * per_image / 2 / 60:.0f} min |")
    out = Path(__file__).parent / "results"
    (out / "efficientnet_throughput.json").write_text(json.dumps({
        "batch": n, "threads": args.threads, "load_average": load,
        "best_wall_seconds": {str(k): v for k, v in best_wall.items()},
        "best_cpu_seconds": {str(k): v for k, v in best_cpu.items()},
    }, indent=2) + "\n")
    (out / "efficientnet_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
