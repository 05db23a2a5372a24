"""What a model takes as input, recorded with it, and the checks every caller runs against it.

A trained model records an :class:`InputSpec`: the shape of one item, the
dtype, the value range and preprocessing of its training inputs, and the
frozen encoder (if any) that produced them. :func:`check_inputs` (used by
``encode``, ``index build``, ``attack`` and the service) converts an input
explicitly -- saying so -- or refuses it; :func:`check_linf_budget` refuses an
L-inf attack budget wider than the input range.

>>> spec = InputSpec(shape=(4,), value_range=(0.0, 1.0), integer_scale=255, preprocessing="8-bit pixels / 255")
>>> import numpy as np
>>> x = check_inputs(np.array([[0, 51, 255, 102]], dtype=np.uint8), spec, say=print)
converted inputs from uint8 0-255 to float32 in [0, 1] (divided by 255: 8-bit pixels / 255)
>>> x.dtype, [round(float(v), 3) for v in x[0]]
(dtype('float32'), [0.0, 0.2, 1.0, 0.4])
>>> check_inputs(np.array([[0.0, 51.0, 255.0, 102.0]], dtype=np.float32), spec)
Traceback (most recent call last):
...
ValueError: inputs hold values in [0, 255], but the model was trained on inputs in [0, 1] (8-bit pixels / 255); divide 8-bit images by 255 (or pass them as uint8, which is converted).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

#: slack allowed beyond the value range (float rounding of preprocessed data)
RANGE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class InputSpec:
    """The inputs a model was trained on.

    ``shape`` is one item's shape; ``value_range`` the ``(low, high)`` every
    input value lies in (``None``: unbounded, e.g. encoder features, where
    ``observed_range`` records what training saw); ``integer_scale`` the
    divisor that maps raw integer inputs (8-bit pixels: 255) into the range;
    ``encoder`` the frozen encoder whose features the model takes (``None``:
    raw data); ``preprocessing`` a description for people.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] | None = None
    integer_scale: float | None = None
    encoder: str | None = None
    preprocessing: str = ""
    observed_range: tuple[float, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        for name in ("value_range", "observed_range"):
            value = getattr(self, name)
            if value is not None:
                low, high = (float(v) for v in value)
                if not low <= high:
                    raise ValueError(f"InputSpec.{name} must be (low, high) with low <= high, got {value!r}.")
                object.__setattr__(self, name, (low, high))
        if self.integer_scale is not None and not (isinstance(self.integer_scale, numbers.Real) and self.integer_scale > 0):
            raise ValueError(f"InputSpec.integer_scale must be a number > 0 or None, got {self.integer_scale!r}.")

    @property
    def n_features(self) -> int:
        return int(np.prod(self.shape))

    @property
    def range_width(self) -> float | None:
        """Width of the value range (or of the observed range when unbounded)."""
        bounds = self.value_range or self.observed_range
        return None if bounds is None else bounds[1] - bounds[0]

    def describe(self) -> str:
        what = f"{self.encoder} features" if self.encoder else "raw inputs"
        bounds = f" in [{_fmt(self.value_range[0])}, {_fmt(self.value_range[1])}]" if self.value_range else ""
        return f"{what} of shape {self.shape}, {self.dtype}{bounds}"

    def to_dict(self) -> dict:
        values = asdict(self)
        for name in ("shape", "value_range", "observed_range"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "InputSpec":
        if not isinstance(values, dict) or "shape" not in values:
            raise ValueError(f"an input spec must be a mapping with at least 'shape', got {values!r:.200}.")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown input spec key(s) {unknown}; known: {sorted(known)}.")
        return cls(**values)


def _fmt(value: float) -> str:
    return f"{value:g}"


def check_inputs(X, spec: InputSpec | None, *, name: str = "inputs", say: Callable[[str], None] | None = None) -> np.ndarray:
    """``X`` as float32 of shape ``(n, *spec.shape)``, converted explicitly or refused.

    * integer inputs (e.g. uint8 0-255 images) for a model with ``integer_scale``
      are divided by it -- and ``say`` is told;
    * flat items for an image model, or images for a flat model, are reshaped
      when the number of values matches (told);
    * values outside the value range, NaN/inf, or a wrong number of values per item
      raise ``ValueError`` naming what the model expects.
    ``spec=None`` (a model saved before specs were recorded) only checks numbers and finiteness.
    """
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}.")
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (n_items, ...), got a {X.ndim}-D array of shape {X.shape}.")
    tell = say or (lambda message: None)
    if spec is None:
        X = X.astype(np.float32, copy=False)
        _check_finite(X, name)
        return X
    if int(np.prod(X.shape[1:])) != spec.n_features:
        hint = f" Run `hashlearn features` to turn raw data into {spec.encoder} features." if spec.encoder else ""
        raise ValueError(f"{name} have items of shape {X.shape[1:]} ({int(np.prod(X.shape[1:]))} values), but the model takes "
                         f"{spec.describe()} ({spec.n_features} values per item).{hint}")
    if X.shape[1:] != spec.shape:
        tell(f"reshaped {name} from items of shape {X.shape[1:]} to {spec.shape} (same values, the model's layout)")
        X = X.reshape(len(X), *spec.shape)
    if np.issubdtype(X.dtype, np.integer) or X.dtype == bool:
        X = _convert_integers(X, spec, name, tell)
    else:
        X = X.astype(np.float32, copy=False)
    _check_finite(X, name)
    if spec.value_range is not None and X.size:
        low, high = spec.value_range
        found_low, found_high = float(X.min()), float(X.max())
        if found_low < low - RANGE_TOLERANCE or found_high > high + RANGE_TOLERANCE:
            hint = ""
            if spec.integer_scale and found_high > high and found_high <= spec.integer_scale * high + RANGE_TOLERANCE:
                hint = (f"; divide 8-bit images by {_fmt(spec.integer_scale)} (or pass them as uint8, which is converted)"
                        if spec.integer_scale == 255 else f"; divide raw values by {_fmt(spec.integer_scale)} (or pass them as integers, which are converted)")
            raise ValueError(f"{name} hold values in [{_fmt(found_low)}, {_fmt(found_high)}], but the model was trained on inputs in "
                             f"[{_fmt(low)}, {_fmt(high)}]" + (f" ({spec.preprocessing})" if spec.preprocessing else "") + f"{hint}.")
    return X


def _convert_integers(X: np.ndarray, spec: InputSpec, name: str, tell) -> np.ndarray:
    if spec.integer_scale is None:
        return X.astype(np.float32)
    converted = X.astype(np.float32) / np.float32(spec.integer_scale)
    if X.size and X.min() >= 0 and X.max() <= spec.integer_scale:
        low, high = spec.value_range or (0.0, 1.0)
        top = f"0-{_fmt(spec.integer_scale)}"
        tell(f"converted {name} from {X.dtype} {top} to float32 in [{_fmt(low)}, {_fmt(high)}] (divided by {_fmt(spec.integer_scale)}"
             + (f": {spec.preprocessing})" if spec.preprocessing else ")"))
        return converted
    raise ValueError(f"{name} are {X.dtype} with values in [{X.min()}, {X.max()}]; the model takes integers in 0-{_fmt(spec.integer_scale)} "
                     f"(divided by {_fmt(spec.integer_scale)}) or {spec.describe()}.")


def _check_finite(X: np.ndarray, name: str) -> None:
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contain NaN or infinite values.")


def check_linf_budget(eps: float, spec: InputSpec | None, *, name: str = "eps") -> float:
    """Refuse an L-inf budget wider than the model's input range (``--eps 8`` meant ``8/255``)."""
    width = None if spec is None else spec.range_width
    if width is not None and eps > width:
        bounds = spec.value_range or spec.observed_range
        suggestion = f"; did you mean {_fmt(eps)}/255?" if spec is not None and spec.integer_scale == 255 else "."
        raise ValueError(f"{name}={_fmt(eps)} is larger than the whole input range [{_fmt(bounds[0])}, {_fmt(bounds[1])}] "
                         f"(width {_fmt(width)}): an unbounded attack{suggestion}")
    return eps


__all__ = ["InputSpec", "check_inputs", "check_linf_budget"]
