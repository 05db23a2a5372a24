"""Shallow hashing estimators: the ``fit`` / ``transform`` / ``encode`` contract.

``transform`` returns continuous codes (projections whose sign is the bit),
``encode`` the packed ``uint8`` codes of :mod:`hashlearn.codes`. A subclass
implements ``_fit(X, rng)`` and ``_project(X)``; the base class validates input,
checks fitted state and the feature count.
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_features, check_n_bits, check_random_state
from hashlearn.codes import sign_to_codes
from hashlearn.errors import NotFittedError


class BaseHasher:
    """Base of every shallow hasher (scikit-learn conventions)."""

    def __init__(self, n_bits: int = 32, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    # --- public API -------------------------------------------------------------------
    def fit(self, X, y=None) -> "BaseHasher":
        n_bits = check_n_bits(self.n_bits)
        X = check_features(X, "X", min_samples=2)
        self._check_n_bits_for_features(n_bits, X.shape[1])
        self.n_features_in_ = X.shape[1]
        self._fit(X, check_random_state(self.random_state))
        return self

    def transform(self, X) -> np.ndarray:
        """Continuous codes ``(n, n_bits)``; the bit is 1 where the value is > 0."""
        self._check_fitted()
        X = check_features(X, "X", n_features=self.n_features_in_, min_samples=0)
        return self._project(X).astype(np.float32, copy=False)

    def encode(self, X) -> np.ndarray:
        """Packed ``uint8`` codes ``(n, n_bits // 8)``."""
        return sign_to_codes(self.transform(X))

    def fit_encode(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).encode(X)

    # --- hooks ------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _project(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_n_bits_for_features(self, n_bits: int, n_features: int) -> None:
        """Override where a method cannot give more bits than features (PCA-based)."""

    # --- helpers ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X) before transform or encode.")

    def get_params(self) -> dict:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
