"""Deep hashing methods: a registered locality loss (+ quantizer), a backbone that fits the input, the one trainer.

A method name is a loss name, optionally ``+quantizer`` (``"dsdh"``,
``"dsdh+hswd"``; see :mod:`hashlearn.losses`). The loss's registry entry
(:data:`hashlearn.losses.LOSSES`) holds the defaults the method is trained
with -- loss arguments, learning rate, epochs -- and the backbone follows the
input: images get the small CNN, vectors (raw or cached frozen encoder
features) an MLP head. Training goes through the one
:class:`~hashlearn.train.Trainer`; nothing here has a training loop.

>>> model, objective = build_deep_method("dsdh+hswd", n_bits=16, n_classes=10, input_shape=(64,))
>>> model.backbone_name, type(objective.quantizer).__name__
('mlp', 'HSWDQuantizer')
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn._validation import check_n_bits


#: default backbone arguments per input kind
DEFAULT_HIDDEN = (512,)
DEFAULT_CNN = {"width": 32, "out_features": 256}


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
    """``(model, objective)`` for ``method`` with the registered loss defaults, ``loss_kwargs`` overriding them.

    The model's initial weights depend only on ``seed`` (the global torch RNG is left untouched).
    """
    from hashlearn.losses import build_objective
    from hashlearn.models import HashModel

    n_bits = check_n_bits(n_bits)
    if backbone is None:
        backbone, default_kwargs = default_backbone(input_shape)
        backbone_kwargs = {**default_kwargs, **(backbone_kwargs or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HashModel(backbone, n_bits, backbone_kwargs or {})
        extra = {} if quantization_weight is None else {"quantization_weight": float(quantization_weight)}
        objective = build_objective(method, n_bits, n_classes, **extra, **loss_kwargs)
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
    epochs: int | None = None,
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
    ``epochs`` and ``lr`` default to the loss's registered defaults.
    Returns ``(model, TrainResult)``; the model holds the best validation weights.
    """
    from hashlearn.losses import loss_spec
    from hashlearn.train import Trainer, TrainConfig

    spec = loss_spec(method)
    X_train = np.asarray(X_train, dtype=np.float32)
    if y_train is None:
        if spec.supervised:
            raise ValueError(f"method {method!r} is supervised: y_train is required (use 'unsupervised' for unlabelled data).")
        y_train = X_train.reshape(len(X_train), -1)
        y_val = None if X_val is None else np.asarray(X_val, dtype=np.float32).reshape(len(X_val), -1)
    if n_classes is None and spec.supervised:
        labels = np.asarray(y_train)
        n_classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
    model, objective = build_deep_method(
        method, n_bits, n_classes, X_train.shape[1:], backbone_kwargs=backbone_kwargs,
        quantization_weight=quantization_weight, seed=seed, **loss_kwargs,
    )
    config = TrainConfig(epochs=epochs if epochs is not None else spec.epochs, batch_size=batch_size, lr=lr if lr is not None else spec.lr,
                         seed=seed, patience=patience, device=device)
    val = None if X_val is None else (X_val, y_val)
    result = Trainer(config).fit(model, objective, train=(X_train, y_train), val=val, run_dir=run_dir)
    return model, result


__all__ = ["build_deep_method", "default_backbone", "train_deep_method"]
