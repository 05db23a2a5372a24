"""Iterative quantization (Gong & Lazebnik 2011): PCA to ``n_bits`` dimensions,
then an orthogonal rotation ``R`` that minimises the quantization error
``||B - V R||_F`` by alternating ``B = sign(V R)`` and an orthogonal Procrustes step.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 32))
>>> itq = ITQ(n_bits=16, random_state=0).fit(X)
>>> itq.encode(X).shape, itq.rotation_.shape
((200, 2), (16, 16))
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.methods.base import BaseHasher


def pca_projection(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top ``n_components`` principal directions ``(d, n_components)``."""
    mean = X.mean(axis=0)
    covariance = np.atleast_2d(np.cov(X - mean, rowvar=False))
    eigenvalues, eigenvectors = np.linalg.eigh(covariance.astype(np.float64))
    order = np.argsort(eigenvalues)[::-1][:n_components]
    return mean.astype(np.float32), eigenvectors[:, order].astype(np.float32)


class ITQ(BaseHasher):
    """ITQ with ``n_iter`` alternating steps from a random orthogonal start."""

    def __init__(self, n_bits: int = 32, n_iter: int = 50, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.n_iter = n_iter

    def _check_n_bits_for_features(self, n_bits, n_features):
        if n_bits > n_features:
            raise ValueError(
                f"ITQ needs n_bits <= n_features (PCA directions), got n_bits={n_bits} for n_features={n_features}."
            )

    def _fit(self, X, rng):
        n_iter = check_positive_int(self.n_iter, "n_iter", minimum=0)
        self.mean_, self.pca_ = pca_projection(X, self.n_bits)
        V = ((X - self.mean_) @ self.pca_).astype(np.float64)
        rotation, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))
        self.quantization_errors_ = []
        for _ in range(n_iter):
            B = np.sign(V @ rotation)
            B[B == 0] = 1
            self.quantization_errors_.append(float(np.mean((B - V @ rotation) ** 2)))
            # orthogonal Procrustes: R = argmin ||B - V R|| over orthogonal R
            U, _, Wt = np.linalg.svd(V.T @ B)
            rotation = U @ Wt
        self.rotation_ = rotation.astype(np.float32)

    def _project(self, X):
        return ((X - self.mean_) @ self.pca_) @ self.rotation_
