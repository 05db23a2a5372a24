"""The data of a run: its dataset, its (sub-sampled) protocol split and the model inputs of a part."""

from __future__ import annotations

import numpy as np

from hashlearn.runs.config import FEATURE_ENCODERS, DataConfig, RunConfig


def load_run_dataset(data: DataConfig):
    """The dataset ``data.dataset`` (``data.data_dir`` passed to loaders that read a folder)."""
    from hashlearn.data import load_dataset

    return load_dataset(data.dataset, **({"data_dir": data.data_dir} if data.data_dir else {}))


def run_inputs(dataset, index: np.ndarray, features: str) -> np.ndarray:
    """Model inputs of the items ``index``: raw data (``"pixels"``) or cached frozen-encoder features."""
    if features == "pixels":
        if dataset.modality == "text":
            raise ValueError(f"dataset {dataset.name!r} is text: choose features 'minilm' (frozen sentence embeddings), not 'pixels'.")
        return np.asarray(dataset.data[index], dtype=np.float32)
    if features not in FEATURE_ENCODERS:
        raise ValueError(f"features must be 'pixels' or one of {sorted(FEATURE_ENCODERS)}, got {features!r}.")
    from hashlearn.data.features import extract_features

    items = [dataset.data[i] for i in index] if dataset.modality == "text" else dataset.data[index]
    return extract_features(items, FEATURE_ENCODERS[features])


def _subsample(index: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= len(index):
        return index
    return np.sort(rng.choice(index, n, replace=False))


def make_run_split(config: RunConfig, dataset):
    """The protocol split of ``config.data``, optionally sub-sampled (``n_train`` ...), leakage-checked."""
    from hashlearn.data.incremental import is_incremental, make_stage_split
    from hashlearn.data.protocols import make_split

    if is_incremental(dataset.name, config.data.protocol):  # the first stage; later ones: `hashlearn lifelong` (runs/lifelong.py)
        if any((config.data.n_train, config.data.n_val, config.data.n_query, config.data.n_database)):
            raise ValueError(f"data.n_train/n_val/n_query/n_database: incremental protocol {config.data.protocol!r} fixes its sizes per class "
                             "and per stage; drop them (fashion-mnist has a smaller 'class-incremental-small').")
        return make_stage_split(dataset, config.data.protocol, 1, seed=config.data.seed)
    split = make_split(dataset, protocol=config.data.protocol, seed=config.data.seed)
    sizes = {"train": config.data.n_train, "validation": config.data.n_val, "query": config.data.n_query}
    if any(sizes.values()) or config.data.n_database:
        rng = np.random.default_rng(config.data.seed)
        for part, n in sizes.items():
            setattr(split, part, _subsample(getattr(split, part), n, rng))
        if config.data.n_database:  # keep train inside the database, fill up with other items
            others = np.setdiff1d(split.database, split.train)
            extra = _subsample(others, max(config.data.n_database - len(split.train), 0), rng)
            split.database = np.sort(np.concatenate([split.train, extra]))
        split.meta = {**split.meta, "subsampled": {**sizes, "database": config.data.n_database}}
        split.check()
    return split


def input_spec_for(config: RunConfig, dataset, X_train: np.ndarray):
    """The :class:`~hashlearn.models.input_spec.InputSpec` of a model trained on ``X_train`` of ``dataset``."""
    from hashlearn.models.input_spec import InputSpec

    X_train = np.asarray(X_train)
    observed = (float(X_train.min()), float(X_train.max())) if X_train.size else None
    features = config.data.features
    if features != "pixels":
        encoder = FEATURE_ENCODERS[features]
        return InputSpec(shape=X_train.shape[1:], encoder=encoder, observed_range=observed,
                         preprocessing=f"{encoder} features of {dataset.name} (frozen encoder, cached)")
    scale = dataset.meta.get("integer_scale", 255 if dataset.modality == "image" else None)
    in_unit_range = observed is not None and observed[0] >= 0.0 and observed[1] <= 1.0
    if in_unit_range and (dataset.modality == "image" or scale is not None):
        what = "8-bit pixels" if scale == 255 else f"raw values 0-{scale:g}"
        return InputSpec(shape=X_train.shape[1:], value_range=(0.0, 1.0), integer_scale=scale, observed_range=observed,
                         preprocessing=f"{dataset.name}: {what} / {scale:g}" if scale else f"{dataset.name} in [0, 1]")
    return InputSpec(shape=X_train.shape[1:], observed_range=observed, preprocessing=f"{dataset.name} vectors as loaded")
