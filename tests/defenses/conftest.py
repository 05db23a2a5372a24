"""Synthetic latent features with a planted, obviously separable poison cluster."""

import numpy as np
import pytest

def _planted(n_per_class=200, n_classes=4, poison_share=0.1, d=16, shift=4.0, seed=0):
    """Gaussian latent features per class; ``poison_share`` of class 0 is a shifted cluster."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_per_class * n_classes, d))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    n_poison = int(poison_share * n_per_class)
    poison = np.arange(n_poison)  # the first rows of class 0
    features[poison] += shift * rng.normal(size=d)  # one fixed offset for the whole poison cluster
    return features, labels, poison

@pytest.fixture
def planted_features():
    return _planted
