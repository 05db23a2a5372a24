"""Input validation at the boundary: typed errors that name the argument,
what was expected, what arrived, and how to fix it."""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_positive_int(value, name: str, *, allow_none: bool = False, minimum: int = 1) -> int | None:
    """Return ``value`` as an int >= ``minimum``; ``TypeError``/``ValueError`` otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_real(value, name: str, *, minimum: float | None = None, strict: bool = True) -> float:
    """Return ``value`` as a finite float, ``> minimum`` (``>=`` when ``strict=False``); ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value}.")
    return value


def check_positive_float(value, name: str) -> float:
    """A positive finite number; ``TypeError`` for a non-number, ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}.")
    if not float(value) > 0.0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value}.")
    return float(value)


def check_rate(rate, name: str = "rate") -> float:
    """A rate (a fraction of a set) must be a number in ``(0, 1]``."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {type(rate).__name__} {rate!r}.")
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (a fraction of the training set), got {rate}.")
    return float(rate)


def check_n_bits(n_bits, name: str = "n_bits", maximum: int | None = None) -> int:
    """``n_bits`` must be a positive multiple of 8 (codes are whole bytes)."""
    n_bits = check_positive_int(n_bits, name)
    if n_bits % 8:
        raise ValueError(f"{name} must be a multiple of 8 (codes are packed into whole bytes), got {n_bits}.")
    if maximum is not None and n_bits > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {n_bits}.")
    return n_bits


def check_features(
    X,
    name: str = "X",
    *,
    n_features: int | None = None,
    dtype=np.float32,
    min_samples: int = 1,
    owner: str = "this estimator",
) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float array of finite values.

    ``n_features`` is the count the caller (``owner``, named in the message)
    was fitted with. Sparse and complex input are refused; an object array of
    numbers is converted like scikit-learn's ``check_array`` does.
    """
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a sparse {type(X).__name__}; sparse input is not supported, dense data is required. "
            f"Use {name}.toarray() if it fits in memory."
        )
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}; pass real-valued features.")
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must be a numeric array, got dtype object with a non-numeric entry: {error}") from error
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got a {X.ndim}-D array of shape {X.shape}. "
            "Reshape your data, e.g. X.reshape(len(X), -1) for images."
        )
    if X.shape[0] < min_samples:
        raise ValueError(
            f"{name} must have at least {min_samples} sample(s), got {X.shape[0]} sample(s) (shape={X.shape})."
        )
    if X.shape[1] == 0 and X.shape[0] > 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {owner} is expecting {n_features} features as input "
            f"(it was fitted with {n_features} features)."
        )
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first.")
    return X


def check_labels(labels, name: str = "labels", *, n_samples: int | None = None) -> np.ndarray:
    """Single-label ``(n,)`` integer labels or multi-hot ``(n, n_classes)`` 0/1 labels."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D integer labels or 2-D multi-hot labels, got a {labels.ndim}-D array of shape {labels.shape}."
        )
    if labels.ndim == 1:
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
            if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
                labels = labels.astype(np.int64)
            else:
                raise TypeError(f"{name} must hold integer class ids, got dtype {labels.dtype}.")
        labels = labels.astype(np.int64, copy=False)
    else:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"multi-hot {name} must contain only 0 and 1.")
        labels = labels.astype(np.uint8, copy=False)
    if n_samples is not None and labels.shape[0] != n_samples:
        raise ValueError(f"{name} has {labels.shape[0]} rows but the data has {n_samples} samples; they must match.")
    return labels


def check_random_state(seed) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a ``numpy.random.Generator``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {type(seed).__name__}.")
