"""Deep hashing benchmark: six locality losses x {own regularizer, +reg, +swd, +hswd} x code lengths.

Reproduces the table of the one-loss quantization paper on the data available
here, with the same trainer, seeds and budget for every variant:

* ``fmnist-pixels``: Fashion-MNIST pixels, small CNN;
* ``fmnist-efficientnet``: Fashion-MNIST, frozen EfficientNet-Lite0 features (cached) + MLP head;
* ``20ng-minilm``: 20 Newsgroups, frozen all-MiniLM-L6-v2 embeddings (cached) + MLP head;

and the unsupervised comparison on GloVe-50d (recall 10@10 against float
cosine k-NN): LSH, sign, PCAH, SH, ITQ and the unsupervised deep method.

Splits come from the datasets' protocols (``hashlearn.data.protocols``, seed 0),
sub-sampled to the sizes given below because two shared CPU cores cannot
encode or train on more in the time available (documented in the output).
Model selection uses the validation part only; queries are used once, at the end.

    PYTHONPATH=src python benchmarks/hashing.py [--quick] [--prepare-only] [--epochs 6]

Results (appended run by run, so an interrupted run keeps what it measured)
go to benchmarks/results/hashing.json and the tables to hashing.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.codes import sign_to_codes
from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split
from hashlearn.eval import metrics

RESULTS = Path(__file__).parent / "results"
LOSSES = ["dpsh", "dsdh", "hashnet", "dch", "csq", "greedyhash"]
VARIANTS = ["", "+reg", "+swd", "+hswd"]
#: sub-sampled split sizes (database = train + extra); text is smaller: MiniLM encodes a few docs/s here
SUBSETS = {
    "fmnist-pixels": {"n_train": 2000, "n_val": 500, "n_query": 500, "n_db_extra": 3000},
    "fmnist-efficientnet": {"n_train": 2000, "n_val": 500, "n_query": 500, "n_db_extra": 3000},
    "20ng-minilm": {"n_train": 1500, "n_val": 300, "n_query": 300, "n_db_extra": 1500},
}
EFFICIENTNET_IMAGE_SIZE = 64  # 28x28 images upsampled; 64 px is ~2.5x faster than 96 px here


# --- data ---------------------------------------------------------------------------------
def subsample_split(dataset, sizes: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Protocol split (seed 0), then seeded random subsets: train, val, query, database = train + extra."""
    split = make_split(dataset, seed=0)
    rng = np.random.default_rng(seed)
    train = np.sort(rng.choice(split.train, sizes["n_train"], replace=False))
    val = np.sort(rng.choice(split.validation, sizes["n_val"], replace=False))
    query = np.sort(rng.choice(split.query, sizes["n_query"], replace=False))
    pool = np.setdiff1d(split.database, np.concatenate([split.train, split.validation]))
    extra = rng.choice(pool, sizes["n_db_extra"], replace=False)
    database = np.sort(np.concatenate([train, extra]))
    assert not np.intersect1d(query, database).size and not np.intersect1d(val, train).size
    return {"train": train, "val": val, "query": query, "database": database}


def prepare(name: str) -> dict:
    """Inputs and labels of every part for one benchmark dataset (features cached on disk)."""
    from hashlearn.data.features import extract_features

    dataset = load_dataset("20newsgroups" if name == "20ng-minilm" else "fashion-mnist")
    parts = subsample_split(dataset, SUBSETS[name])
    needed = np.unique(np.concatenate(list(parts.values())))
    if name == "fmnist-pixels":
        inputs = dataset.data[needed]
    elif name == "fmnist-efficientnet":
        inputs = extract_features(dataset.data[needed], "efficientnet-lite0", image_size=EFFICIENTNET_IMAGE_SIZE, batch_size=50)
    else:
        inputs = extract_features([dataset.data[i] for i in needed], "minilm", batch_size=32)
    position = {int(item): row for row, item in enumerate(needed)}
    data = {}
    for part, index in parts.items():
        rows = [position[int(i)] for i in index]
        data[f"X_{part}"] = np.asarray(inputs[rows], dtype=np.float32)
        data[f"y_{part}"] = dataset.labels[index]
    data["n_classes"] = dataset.n_classes
    return data


# --- one run ------------------------------------------------------------------------------
def run_one(data: dict, method: str, n_bits: int, seed: int, epochs: int, batch_size: int) -> dict:
    from hashlearn.methods.deep import build_deep_method, split_method_name, DEEP_METHODS
    from hashlearn.train import Trainer, TrainConfig

    model, objective = build_deep_method(method, n_bits, data["n_classes"], data["X_train"].shape[1:], seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=DEEP_METHODS[split_method_name(method)[0]].lr, seed=seed)
    started = time.perf_counter()
    result = Trainer(config).fit(model, objective, train=(data["X_train"], data["y_train"]), val=(data["X_val"], data["y_val"]))
    wall = time.perf_counter() - started
    query_codes, db_codes = model.encode(data["X_query"]), model.encode(data["X_database"])
    return {
        "method": method, "n_bits": n_bits, "seed": seed,
        "P@1000": metrics.precision_at_k(query_codes, db_codes, data["y_query"], data["y_database"], k=1000),
        "mAP@1000": metrics.mean_average_precision(query_codes, db_codes, data["y_query"], data["y_database"], k=1000),
        "seconds_per_epoch": result.seconds_per_epoch, "seconds_to_best": result.seconds_to_best,
        "best_epoch": result.best_epoch, "val_mAP": result.best_metric, "wall_seconds": wall,
    }


def glove_benchmark(n_bits_list, seed: int, epochs: int) -> list[dict]:
    """Recall 10@10 against float cosine k-NN on GloVe-50d: shallow methods vs the unsupervised deep method."""
    from hashlearn.methods import build_shallow
    from hashlearn.methods.deep import train_deep_method
    from hashlearn.train.validation import retrieval_recall

    dataset = load_dataset("glove-50d")
    split = make_split(dataset, seed=0)
    rng = np.random.default_rng(seed)
    vectors = dataset.data / np.linalg.norm(dataset.data, axis=1, keepdims=True).clip(1e-12)  # cosine = L2 on the sphere
    train = np.sort(rng.choice(split.train, 10000, replace=False))
    val = np.sort(rng.choice(split.validation, 500, replace=False))
    query = np.sort(rng.choice(split.query, 1000, replace=False))
    pool = np.setdiff1d(split.database, np.concatenate([split.train, split.validation]))
    database = np.sort(np.concatenate([train, rng.choice(pool, 40000, replace=False)]))
    X_train, X_val, X_query, X_db = vectors[train], vectors[val], vectors[query], vectors[database]
    rows = []
    for n_bits in n_bits_list:
        candidates = {name: build_shallow(name, n_bits=n_bits, random_state=seed) for name in ("lsh", "sign", "pcah", "sh", "itq")}
        for name, hasher in candidates.items():
            try:
                started = time.perf_counter()
                hasher.fit(X_train)
                codes = (hasher.encode(X_query), hasher.encode(X_db))
                seconds = time.perf_counter() - started
            except ValueError as error:  # e.g. sign/ITQ/PCAH cannot give more bits than the 50 dimensions
                rows.append({"method": name, "n_bits": n_bits, "recall10@10": None, "note": str(error).split(";")[0][:80]})
                continue
            rows.append({"method": name, "n_bits": n_bits, "recall10@10": retrieval_recall(*codes, X_query, X_db), "fit_seconds": seconds})
        started = time.perf_counter()
        model, result = train_deep_method("unsupervised", n_bits, X_train, None, X_val, None, epochs=epochs, batch_size=256, seed=seed,
                                          backbone_kwargs={"hidden": [256]})
        codes = (model.encode(X_query), model.encode(X_db))
        rows.append({"method": "deep unsupervised (MLP)", "n_bits": n_bits, "recall10@10": retrieval_recall(*codes, X_query, X_db),
                     "fit_seconds": time.perf_counter() - started, "best_epoch": result.best_epoch})
    return rows
