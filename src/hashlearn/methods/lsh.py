"""Locality-sensitive hashing: the sign of random Gaussian projections (Charikar 2002).

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(100, 20))
>>> LSH(n_bits=16, random_state=0).fit(X).encode(X).shape
(100, 2)
"""

from __future__ import annotations

import numpy as np

from hashlearn.methods.base import BaseHasher


class LSH(BaseHasher):
    """Random hyperplane LSH; ``center=True`` subtracts the training mean first
    (hyperplanes through the data's centre, which balances the bits)."""

    def __init__(self, n_bits: int = 32, center: bool = True, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.center = center

    def _fit(self, X, rng):
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1], dtype=np.float32)
        self.projection_ = rng.standard_normal((X.shape[1], self.n_bits)).astype(np.float32)

    def _project(self, X):
        return (X - self.mean_) @ self.projection_
