"""Deep hashing methods: a registry of specs, each = a locality loss + defaults.

A method name is a loss name, optionally ``+quantizer`` (``"dsdh"``,
``"dsdh+hswd"``; see :mod:`hashlearn.losses`). The spec holds the defaults the
method is trained with -- loss arguments, learning rate -- and the backbone
follows the input: images get the small CNN, vectors (raw or cached frozen
encoder features) an MLP head. Training goes through the one
:class:`~hashlearn.train.Trainer`; nothing here has a training loop.

>>> model, objective = build_deep_method("dsdh+hswd", n_bits=16, n_classes=10, input_shape=(64,))
>>> model.backbone_name, type(objective.quantizer).__name__
('mlp', 'HSWDQuantizer')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hashlearn._validation import check_n_bits


@dataclass(frozen=True)
class DeepMethodSpec:
    """Defaults of one deep method (the paper's loss, its arguments, a learning rate)."""

    loss: str
    description: str
    loss_kwargs: dict = field(default_factory=dict)
    lr: float = 1e-3
    supervised: bool = True


#: name -> spec (one line per method)
DEEP_METHODS: dict[str, DeepMethodSpec] = {
    "dpsh": DeepMethodSpec("dpsh", "Deep Pairwise-Supervised Hashing (Li et al., IJCAI 2016)"),
    "dsdh": DeepMethodSpec("dsdh", "Deep Supervised Discrete Hashing (Li et al., NeurIPS 2017)"),
    "hashnet": DeepMethodSpec("hashnet", "HashNet: continuation + weighted pairwise loss (Cao et al., ICCV 2017)"),
    "dch": DeepMethodSpec("dch", "Deep Cauchy Hashing (Cao et al., CVPR 2018)"),
    "csq": DeepMethodSpec("csq", "Central Similarity Quantization (Yuan et al., CVPR 2020)"),
    "greedyhash": DeepMethodSpec("greedyhash", "GreedyHash: sign with straight-through gradient (Su et al., NeurIPS 2018)"),
    "dbdh": DeepMethodSpec("dbdh", "Deep Balanced Discrete Hashing: straight-through codes + code balance (Zheng et al., Neurocomputing 2020)"),
    "triplet": DeepMethodSpec("triplet", "supervised batch-all triplet hinge on relaxed Hamming distances"),
    "unsupervised": DeepMethodSpec("unsupervised", "contrastive loss on float-kNN neighbours (unlabelled embeddings)", supervised=False),
}

#: default backbone arguments per input kind
DEFAULT_HIDDEN = (512,)
DEFAULT_CNN = {"width": 32, "out_features": 256}


def split_method_name(method: str) -> tuple[str, str | None]:
    """``"dsdh+hswd"`` -> ``("dsdh", "hswd")``, checking that the base method is registered."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a string such as 'dsdh' or 'dsdh+hswd', got {type(method).__name__}.")
    base, _, quantizer = method.strip().lower().partition("+")
    if base not in DEEP_METHODS:
        raise ValueError(f"unknown deep method {base!r} in {method!r}; expected one of {sorted(DEEP_METHODS)} (optionally +quantizer).")
    return base, quantizer or None


def default_backbone(input_shape: tuple[int, ...], hidden=None, dropout: float = 0.0, width: int | None = None) -> tuple[str, dict]:
    """``("small_cnn", ...)`` for images ``(H, W)`` / ``(C, H, W)``, ``("mlp", ...)`` for vectors ``(d,)``."""
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) == 1:
        return "mlp", {"in_features": input_shape[0], "hidden": list(hidden if hidden is not None else DEFAULT_HIDDEN), "dropout": float(dropout)}
    if len(input_shape) in (2, 3):
        channels = input_shape[0] if len(input_shape) == 3 else 1
        if input_shape[-1] != input_shape[-2] or input_shape[-1] % 4:
            raise ValueError(f"the small CNN needs square images with a side divisible by 4, got input_shape={input_shape}.")
        kwargs = {"in_channels": channels, "image_size": input_shape[-1], **DEFAULT_CNN}
        if width is not None:
            kwargs["width"] = int(width)
        return "small_cnn", kwargs
    raise ValueError(f"input_shape must be (d,), (H, W) or (C, H, W), got {input_shape}.")


def build_deep_method(
    method: str,
    n_bits: int,
    n_classes: int | None,
    input_shape: tuple[int, ...],
    *,
    backbone: str | None = None,
    backbone_kwargs: dict | None = None,
    quantization_weight: float | None = None,
    seed: int = 0,
    **loss_kwargs,
):
    """``(model, objective)`` for ``method`` with the spec's defaults, ``loss_kwargs`` overriding them.

    The model's initial weights depend only on ``seed`` (the global torch RNG is left untouched).
    """
    from hashlearn.losses import build_objective
    from hashlearn.models import HashModel

    base, _ = split_method_name(method)
    spec = DEEP_METHODS[base]
    n_bits = check_n_bits(n_bits)
    if backbone is None:
        backbone, default_kwargs = default_backbone(input_shape)
        backbone_kwargs = {**default_kwargs, **(backbone_kwargs or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HashModel(backbone, n_bits, backbone_kwargs or {})
        extra = {} if quantization_weight is None else {"quantization_weight": float(quantization_weight)}
        objective = build_objective(method, n_bits, n_classes, **extra, **{**spec.loss_kwargs, **loss_kwargs})
    if hasattr(objective.quantizer, "attach"):  # quantizers that read the model's weights (+reg decorrelation="weights")
        objective.quantizer.attach(model)
    return model, objective


def train_deep_method(
    method: str,
    n_bits: int,
    X_train,
    y_train,
    X_val=None,
    y_val=None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float | None = None,
    seed: int = 0,
    patience: int | None = None,
    n_classes: int | None = None,
    run_dir=None,
    backbone_kwargs: dict | None = None,
    quantization_weight: float | None = None,
    device: str = "cpu",
    **loss_kwargs,
):
    """Build and train ``method`` on ``(X_train, y_train)``, selecting on ``(X_val, y_val)``.

    ``y`` may be class ids, multi-hot labels, or ``None`` for the unsupervised
    method (the inputs themselves are then the float targets).
    Returns ``(model, TrainResult)``; the model holds the best validation weights.
    """
    from hashlearn.train import Trainer, TrainConfig

    base, _ = split_method_name(method)
    X_train = np.asarray(X_train, dtype=np.float32)
    if y_train is None:
        if DEEP_METHODS[base].supervised:
            raise ValueError(f"method {method!r} is supervised: y_train is required (use 'unsupervised' for unlabelled data).")
        y_train = X_train.reshape(len(X_train), -1)
        y_val = None if X_val is None else np.asarray(X_val, dtype=np.float32).reshape(len(X_val), -1)
    if n_classes is None and DEEP_METHODS[base].supervised:
        labels = np.asarray(y_train)
        n_classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
    model, objective = build_deep_method(
        method, n_bits, n_classes, X_train.shape[1:], backbone_kwargs=backbone_kwargs,
        quantization_weight=quantization_weight, seed=seed, **loss_kwargs,
    )
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr if lr is not None else DEEP_METHODS[base].lr,
                         seed=seed, patience=patience, device=device)
    val = None if X_val is None else (X_val, y_val)
    result = Trainer(config).fit(model, objective, train=(X_train, y_train), val=val, run_dir=run_dir)
    return model, result


__all__ = ["DEEP_METHODS", "DeepMethodSpec", "build_deep_method", "default_backbone", "split_method_name", "train_deep_method"]
