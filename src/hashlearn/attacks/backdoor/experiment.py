"""One backdoor experiment end to end: data split, victim, attack, metrics, detection, retraining.

Shared by ``hashlearn backdoor`` / ``hashlearn detect`` and
``benchmarks/backdoor.py`` so the command line and the benchmark measure the
same thing. Data come from the dataset's standard protocol
(:func:`hashlearn.data.protocols.make_split`): the victim trains on ``train``,
selects its epoch on ``validation`` (clean: what a victim would hold out),
and is tested on ``query``; hash retrieval searches the clean ``database``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hashlearn.attacks.backdoor.base import BackdoorAttack
from hashlearn.attacks.backdoor.metrics import attack_success_rate, clean_accuracy, clean_map, targeted_retrieval, visibility

VICTIMS = ("classifier", "hash")


@dataclass
class ExperimentData:
    """Image splits of one dataset (``X`` in ``[0, 1]``, shape ``(n, H, W)``)."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    database: tuple[np.ndarray, np.ndarray]
    n_classes: int
    image_size: int
    #: the protocol split the arrays were taken from (saved with a backdoor run)
    split: object = field(default=None, repr=False)


def load_experiment_data(dataset: str = "mnist5k", seed: int = 0, protocol: str = "default") -> ExperimentData:
    """The protocol split of an image dataset (the standard one by default), as arrays."""
    from hashlearn.data import load_dataset
    from hashlearn.data.protocols import make_split

    ds = load_dataset(dataset)
    image_shape = ds.meta.get("image_shape")
    if not (ds.modality == "image" or image_shape) or ds.kind != "single-label":
        raise ValueError(f"backdoor experiments need a single-label image dataset, got {dataset!r} ({ds.modality}, {ds.kind}).")
    data = np.asarray(ds.data, dtype=np.float32)
    if data.ndim == 2 and image_shape:  # images stored as vectors (digits)
        data = data.reshape(len(data), *image_shape)
    if data.ndim == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise ValueError(f"backdoor experiments use square grey images (n, H, W), got shape {data.shape} for {dataset!r}.")
    split = make_split(ds, protocol=protocol, seed=seed)
    pick = lambda part: (data[part], ds.labels[part])  # noqa: E731
    return ExperimentData(pick(split.train), pick(split.validation), pick(split.query), pick(split.database), ds.n_classes, data.shape[1], split)


def accuracy_metric(model, X, y) -> float:
    """Validation metric of classifiers for the Trainer (higher is better)."""
    return clean_accuracy(model, X.numpy() if torch.is_tensor(X) else X, y.numpy() if torch.is_tensor(y) else y)


def build_victim(victim: str, n_classes: int, image_size: int = 28, n_bits: int = 32, seed: int = 0):
    """``(model, objective, val_metric)`` of a small-CNN classifier (cross-entropy) or hash model (CSQ)."""
    from hashlearn.models import Classifier, HashModel

    torch.manual_seed(seed)
    backbone_kwargs = {"in_channels": 1, "image_size": image_size}
    if victim == "classifier":
        return Classifier("small_cnn", n_classes, backbone_kwargs), nn.CrossEntropyLoss(), accuracy_metric
    if victim == "hash":
        from hashlearn.losses import build_objective

        return HashModel("small_cnn", n_bits, backbone_kwargs), build_objective("csq", n_bits, n_classes), None
    raise ValueError(f"victim must be one of {VICTIMS}, got {victim!r}.")


def evaluate(model, victim: str, data: ExperimentData, attack: BackdoorAttack | None) -> dict:
    """Clean accuracy / ASR (classifier) or clean mAP / t-mAP and top-100 share (hash model)."""
    X_test, y_test = data.test
    if victim == "classifier":
        out = {"clean_accuracy": clean_accuracy(model, X_test, y_test)}
        if attack is not None:
            out["attack_success_rate"] = attack_success_rate(model, X_test, y_test, attack)
        return out
    out = {"clean_map": clean_map(model, *data.database, X_test, y_test)}
    if attack is not None:
        out.update(targeted_retrieval(model, *data.database, X_test, y_test, attack))
    return out


def trigger_visibility(attack: BackdoorAttack, X) -> dict:
    """L-inf / PSNR / SSIM of the trigger on ``X`` (SSIM window shrunk to fit images under 11 pixels)."""
    side = min(np.asarray(X).shape[-2:])
    return visibility(X, attack.apply_trigger(X), window_size=min(11, side - 1 + side % 2))


def train_clean(victim: str, data: ExperimentData, config, n_bits: int = 32, train=None, seed: int = 0):
    """Train a fresh victim on ``train`` (default: the clean training set); returns ``(model, TrainResult)``."""
    from hashlearn.train import Trainer

    model, objective, val_metric = build_victim(victim, data.n_classes, data.image_size, n_bits, seed)
    result = Trainer(config).fit(model, objective, train=train or data.train, val=data.val, val_metric=val_metric)
    return model, result


def run_attack(attack: BackdoorAttack, victim: str, data: ExperimentData, config, n_bits: int = 32, seed: int = 0) -> dict:
    """Backdoor a fresh victim; returns the result, its metrics, trigger visibility and seconds."""
    model, objective, val_metric = build_victim(victim, data.n_classes, data.image_size, n_bits, seed)
    started = time.perf_counter()
    result = attack.fit(model, objective, train=data.train, val=data.val, config=config, val_metric=val_metric)
    seconds = time.perf_counter() - started
    return {
        "result": result,
        "metrics": evaluate(model, victim, data, attack),
        "visibility": trigger_visibility(attack, data.test[0][:256]),
        "seconds": seconds,
    }


def detect(model, poisoned_X, poisoned_y, defense, expected_rate: float = 0.1, **defense_kwargs):
    """Flagged training indices of ``defense`` ("spectral" or "ac") on the model's latent features."""
    from hashlearn.defenses.detection import latent_features, make_detector

    if defense == "spectral":
        defense_kwargs.setdefault("poison_fraction", expected_rate)
    features = latent_features(model, poisoned_X)
    detector = make_detector(defense, **defense_kwargs).fit(features, poisoned_y)
    return detector.flagged_, detector


def latent_tsne(model, X, poison_indices, *, noise_indices=None, n_clean: int = 400, n_poison: int = 200, seed: int = 0):
    """``(rows, points)``: a 2-D t-SNE (scikit-learn) of the model's latent features on a sample of ``X``.

    ``rows`` (sorted int64) are up to ``n_poison`` poisoned rows, up to
    ``n_poison // 2`` noise-mode rows (WaNet) and up to ``n_clean`` other rows,
    drawn with ``seed``; ``points`` is ``(len(rows), 2)`` float32. The latent
    features are the penultimate layer (:func:`hashlearn.defenses.latent_features`),
    what the detectors look at; perplexity is ``min(30, (n - 1) / 3)``.
    """
    from sklearn.manifold import TSNE

    from hashlearn.defenses import latent_features

    rng = np.random.default_rng(seed)
    poison_indices = np.asarray(poison_indices, dtype=np.int64)
    noise_indices = np.zeros(0, np.int64) if noise_indices is None else np.asarray(noise_indices, dtype=np.int64)
    clean = np.setdiff1d(np.arange(len(X)), np.concatenate([poison_indices, noise_indices]))

    def sample(pool, size):
        return rng.choice(pool, size=min(size, len(pool)), replace=False) if len(pool) else pool

    rows = np.sort(np.concatenate([sample(poison_indices, n_poison), sample(noise_indices, n_poison // 2), sample(clean, n_clean)]))
    if len(rows) < 5:
        raise ValueError(f"a t-SNE needs at least 5 rows, got {len(rows)} (X has {len(X)}).")
    features = latent_features(model, np.asarray(X)[rows]).astype(np.float64)
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(rows) - 1) / 3.0), init="pca", random_state=seed)
    return rows.astype(np.int64), tsne.fit_transform(features).astype(np.float32)
