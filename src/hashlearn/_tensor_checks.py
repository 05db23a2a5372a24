"""Typed checks for the tensors that losses and quantizers receive.

They run on every training step, so they look only at shapes and dtypes
(no device synchronisation), except for label values, which are small.
"""

from __future__ import annotations

import torch


def check_outputs(outputs, n_bits: int | None = None, name: str = "outputs") -> torch.Tensor:
    """``outputs`` must be a floating tensor of shape ``(batch, n_bits)`` with batch >= 1."""
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of continuous codes with shape (batch, n_bits), got {type(outputs).__name__}."
        )
    if not outputs.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float32 or float64), got dtype {outputs.dtype}.")
    if outputs.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, n_bits), got a {outputs.ndim}-D tensor of shape {tuple(outputs.shape)}.")
    if outputs.shape[0] < 1 or outputs.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one code of at least one bit, got shape {tuple(outputs.shape)}.")
    if n_bits is not None and outputs.shape[1] != n_bits:
        raise ValueError(f"{name} has {outputs.shape[1]} bits per code, but this loss was built for n_bits={n_bits}.")
    return outputs


def as_tensor(value, name: str) -> torch.Tensor:
    """Accept a tensor or a numpy array (converted without copy); anything else is a TypeError."""
    if isinstance(value, torch.Tensor):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        return torch.as_tensor(value)
    raise TypeError(f"{name} must be a torch.Tensor (or numpy array), got {type(value).__name__}.")


def labels_to_multi_hot(labels, n_classes: int, like: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Class ids ``(B,)`` or multi-hot ``(B, n_classes)`` -> 0/1 tensor of ``like``'s dtype and device."""
    labels = as_tensor(labels, name).to(like.device)
    batch = like.shape[0]
    if labels.ndim == 1:
        if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
            raise TypeError(
                f"1-D {name} must be integer class ids (int64), got dtype {labels.dtype}; "
                "pass multi-hot labels as a 2-D (batch, n_classes) tensor."
            )
        if labels.shape[0] != batch:
            raise ValueError(f"{name} has {labels.shape[0]} entries but outputs has {batch} rows; they must match.")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            raise ValueError(f"{name} must be class ids in [0, {n_classes}) (n_classes={n_classes}), got values in [{low}, {high}].")
        return torch.nn.functional.one_hot(labels.long(), n_classes).to(like.dtype)
    if labels.ndim == 2:
        if labels.shape != (batch, n_classes):
            raise ValueError(
                f"2-D {name} must be multi-hot of shape (batch, n_classes) = ({batch}, {n_classes}), got {tuple(labels.shape)}."
            )
        if labels.is_complex():
            raise TypeError(f"{name} must be real 0/1 values, got dtype {labels.dtype}.")
        values = labels.to(like.dtype)
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"multi-hot {name} must contain only 0 and 1.")
        return values
    raise ValueError(
        f"{name} must be 1-D class ids (batch,) or 2-D multi-hot (batch, n_classes), got a {labels.ndim}-D tensor of shape {tuple(labels.shape)}."
    )


def check_feature_targets(features, like: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Float feature vectors ``(B, d)`` (the neighbours' ground truth of unsupervised losses)."""
    features = as_tensor(features, name).to(like.device)
    if not features.is_floating_point():
        raise TypeError(
            f"{name} of an unsupervised loss must be float feature vectors of shape (batch, d), got dtype {features.dtype}."
        )
    if features.ndim != 2 or features.shape[0] != like.shape[0] or features.shape[1] < 1:
        raise ValueError(
            f"{name} of an unsupervised loss must have shape (batch, d) with batch={like.shape[0]}, got {tuple(features.shape)}."
        )
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return features.to(like.dtype)
