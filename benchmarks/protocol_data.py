"""The protocol parts the learning benchmarks train and evaluate on, with cached frozen-encoder features.

One place decides which items the defaults sweep (``defaults_sweep.py``) and the
full-protocol table (``hashing.py --full``) use, so both read the same feature
cache entries:

* ``fmnist-pixels``: Fashion-MNIST default protocol (seed 0) -- 5,000 train,
  1,000 validation, 1,000 queries, the full 69,000-item database;
* ``fmnist-efficientnet``: the same parts through frozen EfficientNet-Lite0
  (64 px, tf-lite normalization, the best kNN quality per second in
  ``efficientnet_features.md``), the full 69,000-item database;
* ``20ng-minilm``: 20 Newsgroups through all-MiniLM-L6-v2 (first 1,000
  characters of each post) at its protocol's sizes: 5,000 train, 1,000
  validation, 1,000 random queries, the other 17,821 posts as the database.
  The defaults sweep (``sweep=True``) sub-samples train / validation to 2,000 / 500;
* ``openmoji-efficientnet``: the multi-label OpenMoji image set
  (``hashlearn.data.openmoji_tags``) through EfficientNet-Lite0 at 64 px.

The encoder runs once over *every* item of the dataset (one cache entry,
``~/.cache/hashlearn/features``, keyed by the content) and the parts are rows
of that matrix, so every part, split seed and benchmark reads the same entry.

    PYTHONPATH=src python benchmarks/protocol_data.py fmnist-efficientnet   # fill the cache
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split

EFFICIENTNET_SETTINGS = {"image_size": 64, "normalization": "tf-lite"}
TEXT_CHARS = 1000
#: 20 Newsgroups train / validation sizes of the defaults sweep (it ran before the whole corpus was encoded)
SWEEP_TEXT_SIZES = {"train": 2000, "validation": 500}
DATASETS = ("fmnist-pixels", "fmnist-efficientnet", "20ng-minilm", "openmoji-efficientnet")
SOURCE = {"fmnist-pixels": "fashion-mnist", "fmnist-efficientnet": "fashion-mnist", "20ng-minilm": "20newsgroups",
          "openmoji-efficientnet": "openmoji-tags"}


def protocol_parts(name: str, seed: int = 0, sweep: bool = False) -> tuple[object, dict[str, np.ndarray]]:
    """``(dataset, {"train", "validation", "query", "database"} -> index arrays)`` of one benchmark dataset."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}.")
    dataset = load_dataset(SOURCE[name])
    split = make_split(dataset, seed=seed)
    parts = {"train": split.train, "validation": split.validation, "query": split.query, "database": split.database}
    if name == "20ng-minilm" and sweep:
        rng = np.random.default_rng(seed)
        parts.update({part: np.sort(rng.choice(parts[part], size, replace=False)) for part, size in SWEEP_TEXT_SIZES.items()})
    return dataset, parts


def all_features(name: str, dataset) -> np.ndarray:
    """Inputs of every item of ``dataset`` for benchmark dataset ``name`` (encoded once, cached)."""
    from hashlearn.data.features import extract_features

    if name == "fmnist-pixels":
        return np.asarray(dataset.data, dtype=np.float32)
    if name == "20ng-minilm":
        return extract_features([text[:TEXT_CHARS] for text in dataset.data], "minilm", batch_size=32)
    return extract_features(dataset.data, "efficientnet-lite0", batch_size=50, **EFFICIENTNET_SETTINGS)


def load_parts(name: str, parts_wanted=("train", "validation", "query", "database"), seed: int = 0, sweep: bool = False) -> dict:
    """Inputs ``X_<part>`` and labels ``y_<part>`` of the parts, plus ``n_classes`` and the sizes."""
    dataset, parts = protocol_parts(name, seed, sweep)
    features = all_features(name, dataset)
    data = {"n_classes": dataset.n_classes, "sizes": {part: int(len(parts[part])) for part in parts}}
    for part in parts_wanted:
        data[f"X_{part}"] = features[parts[part]]
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
