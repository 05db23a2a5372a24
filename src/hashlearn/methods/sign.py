"""Sign binarization: the bit is the sign of each mean-centred input dimension.

The baseline vector databases use ("binary quantization"). With ``n_bits``
equal to the feature count every dimension gives one bit; with fewer bits the
first ``n_bits`` dimensions (after centring) are kept -- no learning, no
reordering. More bits than dimensions is an error: sign has nothing to add.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(50, 16))
>>> SignHasher(n_bits=16).fit(X).encode(X).shape
(50, 2)
"""

from __future__ import annotations

import numpy as np

from hashlearn.methods.base import BaseHasher


class SignHasher(BaseHasher):
    """``sign(x - mean)`` on the first ``n_bits`` dimensions; ``center=False`` keeps the raw sign."""

    def __init__(self, n_bits: int = 32, center: bool = True, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.center = center

    def _check_n_bits_for_features(self, n_bits, n_features):
        if n_bits > n_features:
            raise ValueError(
                f"sign hashing gives one bit per dimension: n_bits must be <= n_features, got n_bits={n_bits} "
                f"for n_features={n_features}. Use LSH, ITQ or a deep method for longer codes."
            )

    def _fit(self, X, rng):
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1], dtype=np.float32)

    def _project(self, X):
        return (X - self.mean_)[:, : self.n_bits]
