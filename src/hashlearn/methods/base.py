"""Shallow hashing estimators: the ``fit`` / ``transform`` / ``encode`` contract.

``transform`` returns continuous codes (projections whose sign is the bit),
``encode`` the packed ``uint8`` codes of :mod:`hashlearn.codes`. A subclass
implements ``_fit(X, rng)`` and ``_project(X)``; the base class validates input,
checks fitted state and the feature count.

Every hasher is a scikit-learn estimator (``BaseEstimator`` + ``TransformerMixin``):
``get_params`` / ``set_params``, ``sklearn.base.clone``, ``fit_transform`` and use
inside a ``Pipeline`` work as for any scikit-learn transformer. A fitted hasher is
saved without pickle by :meth:`BaseHasher.save` and read back by
:func:`hashlearn.methods.load_estimator`.

>>> import numpy as np
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from hashlearn.methods import ITQ
>>> X = np.random.default_rng(0).normal(size=(100, 16))
>>> pipe = make_pipeline(StandardScaler(), ITQ(n_bits=8, random_state=0)).fit(X)
>>> pipe.transform(X).shape, pipe.set_params(itq__n_iter=5).get_params()["itq__n_iter"]
((100, 8), 5)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from hashlearn._validation import check_features, check_n_bits, check_random_state
from hashlearn.codes import sign_to_codes
from hashlearn.errors import NotFittedError

#: version of the ``estimator.json`` / ``estimator.safetensors`` pair written by :meth:`BaseHasher.save`
ESTIMATOR_FORMAT_VERSION = 1
ESTIMATOR_JSON = "estimator.json"
ESTIMATOR_ARRAYS = "estimator.safetensors"


class BaseHasher(TransformerMixin, BaseEstimator):
    """Base of every shallow hasher (a scikit-learn transformer).

    Subclasses store their keyword arguments unchanged in ``__init__`` (so
    ``get_params`` and ``clone`` work), learn in ``_fit`` and name learned
    state with a trailing underscore.
    """

    def __init__(self, n_bits: int = 32, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    # --- public API -------------------------------------------------------------------
    def fit(self, X, y=None) -> "BaseHasher":
        """Learn the hash functions from ``X`` ``(n_samples, n_features)``; ``y`` is ignored."""
        n_bits = check_n_bits(self.n_bits)
        X = check_features(X, "X", min_samples=2)
        self._check_n_bits_for_features(n_bits, X.shape[1])
        self.n_features_in_ = X.shape[1]
        self._fit(X, check_random_state(self.random_state))
        return self

    def transform(self, X) -> np.ndarray:
        """Continuous codes ``(n, n_bits)`` as float32; the bit is 1 where the value is > 0."""
        self._check_fitted()
        X = check_features(X, "X", n_features=self.n_features_in_, min_samples=0, owner=type(self).__name__)
        return self._project(X).astype(np.float32, copy=False)

    def encode(self, X) -> np.ndarray:
        """Packed ``uint8`` codes ``(n, n_bits // 8)``."""
        return sign_to_codes(self.transform(X))

    def fit_encode(self, X, y=None) -> np.ndarray:
        """``fit(X).encode(X)``: the packed codes of the training data."""
        return self.fit(X, y).encode(X)

    # --- persistence (no pickle) ------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fitted hasher into ``directory`` as ``estimator.json`` + ``estimator.safetensors``.

        The JSON holds the method name, the constructor parameters, the scalar
        fitted attributes and the SHA-256 of the arrays file; the arrays (the
        learned projections) go into safetensors. Both files are written
        atomically, arrays first, so a crash leaves either the old pair or a
        JSON whose checksum no longer matches (reported by
        :func:`~hashlearn.methods.load_estimator`), never a silent mix.
        Read it back with :func:`hashlearn.methods.load_estimator`.
        """
        from safetensors.numpy import save as save_arrays

        from hashlearn._io import atomic_write_bytes, atomic_write_json, sha256_bytes

        self._check_fitted()
        method = self._registry_name()
        arrays, fitted = {}, {}
        for name, value in sorted(vars(self).items()):
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[name] = np.ascontiguousarray(value)
            else:
                fitted[name] = _to_json(value, f"fitted attribute {name}")
        params, not_saved = {}, []
        for name, value in self.get_params(deep=False).items():
            try:
                params[name] = _to_json(value, f"parameter {name}")
            except TypeError:
                if name != "random_state":
                    raise
                # a Generator cannot be written; the fitted state does not need it
                params[name], not_saved = None, [name]
        payload = save_arrays(arrays)
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"directory must be a folder to save the estimator in, got the file {directory}.")
        atomic_write_bytes(directory / ESTIMATOR_ARRAYS, payload)
        meta = {
            "format_version": ESTIMATOR_FORMAT_VERSION,
            "kind": "shallow_estimator",
            "method": method,
            "class": type(self).__name__,
            "params": params,
            "params_not_saved": not_saved,
            "fitted": fitted,
            "arrays": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()},
            "sha256": sha256_bytes(payload),
        }
        atomic_write_json(directory / ESTIMATOR_JSON, meta)
        return directory

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

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform always returns float32 (the dtype of every code path downstream)
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.input_tags.allow_nan = False
        return tags

    def _registry_name(self) -> str:
        from hashlearn.methods import SHALLOW_METHODS

        for name, cls in SHALLOW_METHODS.items():
            if cls is type(self):
                return name
        raise TypeError(
            f"{type(self).__name__} is not in hashlearn.methods.SHALLOW_METHODS; register it there before saving it."
        )


def _to_json(value, what: str):
    """``value`` as plain JSON types (numpy scalars and lists of them included)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_to_json(v, what) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {what}: expected a JSON value (number, string, bool, None or list), got {type(value).__name__}.")


def load_estimator(directory: str | Path) -> BaseHasher:
    """Read a hasher written by :meth:`BaseHasher.save`.

    Raises ``FileNotFoundError`` when the files are missing and
    :class:`~hashlearn.errors.CorruptFileError` when they are damaged, do not
    match their checksum, or name an unknown method.

    >>> import numpy as np, tempfile
    >>> from hashlearn.methods import LSH, load_estimator
    >>> X = np.random.default_rng(0).normal(size=(50, 12))
    >>> lsh = LSH(n_bits=16, random_state=0).fit(X)
    >>> folder = tempfile.mkdtemp()
    >>> bool((load_estimator(lsh.save(folder)).encode(X) == lsh.encode(X)).all())
    True
    """
    from safetensors.numpy import load as load_arrays

    from hashlearn._io import read_versioned_json, sha256_bytes
    from hashlearn.errors import CorruptFileError
    from hashlearn.methods import SHALLOW_METHODS

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {directory} does not exist or is not a folder; expected one written by estimator.save().")
    json_path, arrays_path = directory / ESTIMATOR_JSON, directory / ESTIMATOR_ARRAYS
    if not json_path.exists():
        raise FileNotFoundError(f"no {ESTIMATOR_JSON} in {directory}; expected a folder written by estimator.save().")
    meta = read_versioned_json(json_path, ESTIMATOR_FORMAT_VERSION)
    if meta.get("kind") != "shallow_estimator":
        raise CorruptFileError(f"{json_path} does not describe a shallow estimator (kind={meta.get('kind')!r}).")
    method = meta.get("method")
    if method not in SHALLOW_METHODS:
        raise CorruptFileError(f"{json_path} names the method {method!r}; this hashlearn knows {sorted(SHALLOW_METHODS)}.")
    for key, kind in (("params", dict), ("fitted", dict), ("arrays", dict), ("sha256", str)):
        if not isinstance(meta.get(key), kind):
            raise CorruptFileError(f"{json_path} lacks {key!r} (a JSON {kind.__name__}).")
    if not arrays_path.exists():
        raise FileNotFoundError(f"no {ESTIMATOR_ARRAYS} in {directory}; {ESTIMATOR_JSON} refers to it.")
    payload = arrays_path.read_bytes()
    if sha256_bytes(payload) != meta["sha256"]:
        raise CorruptFileError(f"{arrays_path} does not match the checksum in {json_path}: the file was changed or truncated.")
    try:
        arrays = load_arrays(payload)
    except Exception as error:  # safetensors raises its own error types
        raise CorruptFileError(f"cannot read {arrays_path}: {error}") from error
    expected = {name: (spec.get("dtype"), spec.get("shape")) for name, spec in meta["arrays"].items()}
    found = {name: (str(a.dtype), list(a.shape)) for name, a in arrays.items()}
    if expected != found:
        raise CorruptFileError(f"{arrays_path} holds arrays {found}, but {json_path} lists {expected}.")
    cls = SHALLOW_METHODS[method]
    try:
        estimator = cls(**meta["params"])
    except TypeError as error:
        raise CorruptFileError(f"{json_path} holds parameters {cls.__name__} does not take: {error}") from error
    for name, value in {**meta["fitted"], **arrays}.items():
        if not (name.endswith("_") and name.isidentifier()) or name.startswith("_"):
            raise CorruptFileError(f"{json_path} names the fitted attribute {name!r}; fitted attributes end with '_'.")
        setattr(estimator, name, value)
    if not isinstance(getattr(estimator, "n_features_in_", None), int):
        raise CorruptFileError(f"{json_path} lacks the fitted attribute n_features_in_ (an int).")
    return estimator

