"""Spectral Hashing (Weiss, Torralba & Fergus, NIPS 2008).

Steps: PCA to ``min(n_bits, n_features)`` directions; treat the data as
uniform on the box ``[a_i, b_i]`` spanned along each direction; the
eigenfunctions of the weighted Laplacian are then
``Phi_ik(x) = sin(pi/2 + k pi (x_i - a_i) / (b_i - a_i))`` with eigenvalue
growing with ``(k / (b_i - a_i))**2`` (``k = 1, 2, ...``). The ``n_bits``
one-dimensional eigenfunctions with the smallest eigenvalues are kept (a wide
direction may give several bits at increasing frequency); each bit is the
sign of its eigenfunction.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 10))
>>> sh = SpectralHashing(n_bits=16).fit(X)
>>> sh.modes_.shape, sh.encode(X).shape
((16, 2), (200, 2))
"""

from __future__ import annotations

import numpy as np

from hashlearn.methods.base import BaseHasher
from hashlearn.methods.itq import pca_projection


def select_modes(ranges: np.ndarray, n_bits: int) -> np.ndarray:
    """The ``n_bits`` (direction, frequency) pairs with the smallest eigenvalues ``(k pi / range)^2``.

    Ties (equal eigenvalues) go to the lower direction, then the lower frequency.
    Returns an int array ``(n_bits, 2)`` of ``(direction, k)`` rows.
    """
    ranges = np.asarray(ranges, dtype=np.float64)
    # k-th frequency on direction i is candidate number k: a direction never needs more than n_bits
    max_mode = np.minimum(np.ceil(n_bits * ranges / ranges.max()).astype(int) + 1, n_bits)
    candidates = [(i, k) for i in range(len(ranges)) for k in range(1, max_mode[i] + 1)]
    eigenvalues = np.array([(k * np.pi / ranges[i]) ** 2 for i, k in candidates])
    directions = np.array([i for i, _ in candidates])
    frequencies = np.array([k for _, k in candidates])
    order = np.lexsort((frequencies, directions, eigenvalues))[:n_bits]
    return np.stack([directions[order], frequencies[order]], axis=1)


class SpectralHashing(BaseHasher):
    """Spectral Hashing; ``n_bits`` may exceed the feature count (higher frequencies)."""

    def _fit(self, X, rng):
        n_components = min(self.n_bits, X.shape[1])
        self.mean_, self.pca_ = pca_projection(X, n_components)
        projected = (X - self.mean_) @ self.pca_
        self.low_ = projected.min(axis=0)
        # a tiny margin keeps the box non-degenerate and the extreme points inside it
        ranges = projected.max(axis=0) - self.low_
        self.ranges_ = np.maximum(ranges, 1e-6 * max(float(ranges.max()), 1e-12)) + 1e-6
        self.modes_ = select_modes(self.ranges_, self.n_bits)

    def _project(self, X):
        projected = ((X - self.mean_) @ self.pca_).astype(np.float64)
        directions, frequencies = self.modes_[:, 0], self.modes_[:, 1]
        omega = frequencies * np.pi / self.ranges_[directions]
        return np.sin(np.pi / 2 + (projected[:, directions] - self.low_[directions]) * omega)
