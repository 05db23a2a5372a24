"""PCA hashing: the sign of the top ``n_bits`` principal components (the ITQ paper's PCA-Direct baseline).

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(100, 24))
>>> PCAH(n_bits=8).fit(X).encode(X).shape
(100, 1)
"""

from __future__ import annotations

from hashlearn.methods.base import BaseHasher
from hashlearn.methods.itq import pca_projection


class PCAH(BaseHasher):
    """Project on the leading principal directions and threshold at zero (the mean)."""

    def _check_n_bits_for_features(self, n_bits, n_features):
        if n_bits > n_features:
            raise ValueError(f"PCAH needs n_bits <= n_features (PCA directions), got n_bits={n_bits} for n_features={n_features}.")

    def _fit(self, X, rng):
        self.mean_, self.pca_ = pca_projection(X, self.n_bits)

    def _project(self, X):
        return (X - self.mean_) @ self.pca_
