"""Poison detection: latent features, the two detectors, detection rates.

>>> detection_rates([0, 1, 5], poison_indices=[0, 1, 2, 3], n=10)
(0.5, 0.16666666666666666)
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.defenses.activation_clustering import ActivationClustering
from hashlearn.defenses.spectral import SpectralSignature, spectral_scores

#: defense name -> class (CLI names)
DETECTORS = {"spectral": SpectralSignature, "ac": ActivationClustering}


def _indices(values, name: str, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"{name} must be integer indices, got dtype {values.dtype}.")
    values = np.unique(values.astype(np.int64))
    if values.size and (values[0] < 0 or values[-1] >= n):
        raise ValueError(f"{name} must be indices in [0, {n}), got values from {values[0]} to {values[-1]}.")
    return values


def detection_rates(flagged, poison_indices, n: int) -> tuple[float, float]:
    """``(TPR, FPR)``: share of poisoned samples flagged, share of clean samples flagged."""
    n = check_positive_int(n, "n")
    flagged = _indices(flagged, "flagged", n)
    poison = _indices(poison_indices, "poison_indices", n)
    true_positives = np.intersect1d(flagged, poison).size
    n_clean = n - poison.size
    tpr = true_positives / poison.size if poison.size else 0.0
    fpr = (flagged.size - true_positives) / n_clean if n_clean else 0.0
    return float(tpr), float(fpr)


def latent_features(model, X, batch_size: int = 512) -> np.ndarray:
    """Penultimate features ``model.features(x)`` of a numpy batch, in eval mode (mode restored)."""
    from hashlearn.models.inference import batched_outputs  # torch only when a model is used

    return batched_outputs(model, X, 0, batch_size, call=model.features)


def make_detector(name: str, **kwargs):
    """Build a detector by CLI name (``"spectral"`` or ``"ac"``)."""
    if name not in DETECTORS:
        raise ValueError(f"defense must be one of {sorted(DETECTORS)}, got {name!r}.")
    return DETECTORS[name](**kwargs)


__all__ = ["ActivationClustering", "DETECTORS", "SpectralSignature", "detection_rates", "latent_features", "make_detector", "spectral_scores"]
