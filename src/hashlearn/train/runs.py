"""Run directories: train a configured method, then encode and evaluate from what the run saved.

A run directory holds everything needed to reproduce and reuse a training run::

    config.json          the resolved RunConfig (defaults + file + overrides)
    split/               the protocol split (index arrays + checksum)
    trainer_config.json  history.json  train_result.json
    checkpoint/          resumable checkpoint (safetensors + JSON)
    model/               the best-validation HashModel (safetensors + JSON)
    metrics.json         written by :func:`evaluate_run`
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn.train.config import RunConfig

FEATURE_ENCODERS = {"efficientnet": "efficientnet-lite0", "minilm": "minilm"}


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
    from hashlearn.data.protocols import make_split

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


def run_backbone(config: RunConfig, input_shape: tuple[int, ...]) -> tuple[str, dict]:
    """Backbone name and arguments: the default for the input shape, with ``config.model`` applied."""
    from hashlearn.methods.deep import default_backbone

    wanted = config.model.backbone
    if wanted not in (None, "mlp", "small_cnn"):
        raise ValueError(f"model.backbone must be None, 'mlp' or 'small_cnn', got {wanted!r}.")
    if wanted == "mlp":  # an MLP on flattened images is allowed
        input_shape = (int(np.prod(input_shape)),)
    name, kwargs = default_backbone(input_shape, hidden=config.model.hidden, dropout=config.model.dropout, width=config.model.width)
    if wanted is not None and wanted != name:
        raise ValueError(f"model.backbone={wanted!r} does not fit inputs of shape {tuple(input_shape)}; use {name!r}.")
    return name, kwargs


def train_run(config: RunConfig, run_dir: str | Path, *, resume: bool = False):
    """Train the configured method; write config, split, history, checkpoint and model into ``run_dir``."""
    from hashlearn.data import load_dataset
    from hashlearn.methods.deep import DEEP_METHODS, build_deep_method, split_method_name
    from hashlearn.train.trainer import Trainer

    run_dir = Path(run_dir)
    dataset = load_dataset(config.data.dataset)
    split = make_run_split(config, dataset)
    split.save(run_dir / "split")
    atomic_write_json(run_dir / "config.json", config.to_dict())
    X_train = run_inputs(dataset, split.train, config.data.features)
    X_val = run_inputs(dataset, split.validation, config.data.features)
    base, _ = split_method_name(config.method.name)
    if DEEP_METHODS[base].supervised:
        if dataset.labels is None:
            raise ValueError(f"dataset {dataset.name!r} is unlabelled: use method 'unsupervised'.")
        y_train, y_val = dataset.labels[split.train], dataset.labels[split.validation]
    else:  # unsupervised: the inputs themselves are the targets
        y_train, y_val = X_train.reshape(len(X_train), -1), X_val.reshape(len(X_val), -1)
    backbone, backbone_kwargs = run_backbone(config, X_train.shape[1:])
    model, objective = build_deep_method(
        config.method.name, config.method.n_bits, dataset.n_classes, X_train.shape[1:],
        backbone=backbone, backbone_kwargs=backbone_kwargs, quantization_weight=config.method.quantization_weight,
        seed=config.trainer.seed, **config.method.loss,
    )
    result = Trainer(config.trainer).fit(model, objective, train=(X_train, y_train), val=(X_val, y_val), run_dir=run_dir, resume=resume)
    return model, result


def load_run(run_dir: str | Path):
    """``(config, model)`` of a run directory written by :func:`train_run`."""
    from hashlearn.models import HashModel

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json); train one with `hashlearn train`.")
    config = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    return config, HashModel.load(run_dir / "model")


def evaluate_run(run_dir: str | Path, *, k: int = 1000, radius: int = 2) -> dict:
    """Encode the run's query and database parts, search, and write ``metrics.json``."""
    from hashlearn.data import load_dataset
    from hashlearn.data.protocols import Split
    from hashlearn.eval.evaluator import evaluate_codes

    run_dir = Path(run_dir)
    config, model = load_run(run_dir)
    dataset = load_dataset(config.data.dataset)
    split = Split.load(run_dir / "split")
    query_codes = model.encode(run_inputs(dataset, split.query, config.data.features))
    db_codes = model.encode(run_inputs(dataset, split.database, config.data.features))
    if dataset.labels is not None:
        results = evaluate_codes(query_codes, db_codes, dataset.labels[split.query], dataset.labels[split.database], k=k, radius=radius)
    else:
        from hashlearn.eval.metrics import float_knn

        query_x = run_inputs(dataset, split.query, config.data.features).reshape(len(split.query), -1)
        db_x = run_inputs(dataset, split.database, config.data.features).reshape(len(split.database), -1)
        results = evaluate_codes(query_codes, db_codes, k=min(k, len(db_codes)), ground_truth_ids=float_knn(query_x, db_x, 10))
    # the retrieval the metrics describe, served by the exact flat index (same tie rule: ascending id)
    import time

    from hashlearn.index import FlatIndex

    index = FlatIndex(model.n_bits)
    index.add(db_codes)
    started = time.perf_counter()
    index.search(query_codes, min(k, len(db_codes)))
    search_seconds = time.perf_counter() - started
    results = {"method": config.method.name, "index": "flat", "search_queries_per_s": len(query_codes) / max(search_seconds, 1e-9), "n_bits": config.method.n_bits, "dataset": config.data.dataset,
               "features": config.data.features, "n_query": len(split.query), "n_database": len(split.database), **results}
    atomic_write_json(run_dir / "metrics.json", results)
    return results
