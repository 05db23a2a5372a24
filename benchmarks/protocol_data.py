"""The protocol parts the learning benchmarks train and evaluate on, with cached frozen-encoder features.

One place decides which items the defaults sweep (``defaults_sweep.py``) and the
full-protocol table (``hashing.py --full``) use, so both read the same feature
cache entries:

* ``fmnist-pixels``: Fashion-MNIST default protocol (seed 0) -- 5,000 train,
  1,000 validation, 1,000 queries, the full 69,000-item database;
* ``fmnist-efficientnet``: the same train / validation / queries through frozen
  EfficientNet-Lite0 (64 px, tf-lite normalization, the best kNN quality per
  second in ``efficientnet_features.md``); the database is sub-sampled to the
  5,000 train items plus ``EFFICIENTNET_DB_EXTRA`` other database items: on an
  idle core the encoder does about 250 images/s, but with the machine's load
  average at 10-16 (eight engineers on two cores) encoding the other 64,000
  database images would have taken most of the session's CPU share;
* ``20ng-minilm``: 20 Newsgroups through all-MiniLM-L6-v2 (first 1,000
  characters of each post), train / validation sub-sampled for the sweep.

    PYTHONPATH=src python benchmarks/protocol_data.py fmnist-efficientnet   # fill the cache
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split

EFFICIENTNET_SETTINGS = {"image_size": 64, "normalization": "tf-lite"}
EFFICIENTNET_DB_EXTRA = 5000
TEXT_CHARS = 1000
#: 20 Newsgroups sizes (MiniLM encodes about 6 posts/s on the shared cores)
TEXT_SIZES = {"train": 2000, "validation": 500, "query": 500, "db_extra": 1500}
DATASETS = ("fmnist-pixels", "fmnist-efficientnet", "20ng-minilm")


def protocol_parts(name: str, seed: int = 0) -> tuple[object, dict[str, np.ndarray]]:
    """``(dataset, {"train", "validation", "query", "database"} -> index arrays)`` of one benchmark dataset."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}.")
    dataset = load_dataset("20newsgroups" if name == "20ng-minilm" else "fashion-mnist")
    split = make_split(dataset, seed=seed)
    parts = {"train": split.train, "validation": split.validation, "query": split.query, "database": split.database}
    rng = np.random.default_rng(seed)
    if name == "fmnist-efficientnet":
        others = np.setdiff1d(split.database, split.train)
        parts["database"] = np.sort(np.concatenate([split.train, rng.choice(others, EFFICIENTNET_DB_EXTRA, replace=False)]))
    elif name == "20ng-minilm":
        parts = {part: np.sort(rng.choice(parts[part], TEXT_SIZES[part], replace=False)) for part in ("train", "validation", "query")}
        others = np.setdiff1d(split.database, np.concatenate([parts["train"], parts["validation"]]))
        parts["database"] = np.sort(np.concatenate([parts["train"], rng.choice(others, TEXT_SIZES["db_extra"], replace=False)]))
    return dataset, parts


def _features(dataset, index: np.ndarray, name: str) -> np.ndarray:
    from hashlearn.data.features import extract_features

    if name == "fmnist-pixels":
        return np.asarray(dataset.data[index], dtype=np.float32)
    if name == "fmnist-efficientnet":
        return extract_features(dataset.data[index], "efficientnet-lite0", batch_size=50, **EFFICIENTNET_SETTINGS)
    return extract_features([dataset.data[i][:TEXT_CHARS] for i in index], "minilm", batch_size=32)


def load_parts(name: str, parts_wanted=("train", "validation", "query", "database"), seed: int = 0) -> dict:
    """Inputs ``X_<part>`` and labels ``y_<part>`` of the parts, plus ``n_classes`` and the sizes.

    The database's features are those of the train items plus the extra items
    (encoded once each), so nothing is encoded twice.
    """
    dataset, parts = protocol_parts(name, seed)
    data = {"n_classes": dataset.n_classes, "sizes": {part: int(len(parts[part])) for part in parts}}
    cache = {}
    for part in parts_wanted:
        if part == "database" and name != "fmnist-pixels":
            if "train" not in cache:
                cache["train"] = _features(dataset, parts["train"], name)
            extra = np.setdiff1d(parts["database"], parts["train"])
            extra_x = _features(dataset, extra, name)
            order = np.argsort(np.concatenate([parts["train"], extra]), kind="stable")
            X = np.concatenate([cache["train"], extra_x])[order]
        else:
            X = cache.get(part)
            if X is None:
                X = cache[part] = _features(dataset, parts[part], name)
        data[f"X_{part}"] = X
        data[f"y_{part}"] = dataset.labels[parts[part]]
    return data


def main():
    parser = argparse.ArgumentParser(description="fill the feature cache of the learning benchmarks")
    parser.add_argument("datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in args.datasets:
        data = load_parts(name)
        print(name, {key: value.shape for key, value in data.items() if key.startswith("X_")}, flush=True)


if __name__ == "__main__":
    main()
