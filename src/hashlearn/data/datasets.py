"""Dataset registry: one loader per source, each returning a :class:`Dataset`.

>>> from hashlearn.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.data.shape, ds.labels.shape, ds.kind
((1797, 64), (1797,), 'single-label')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Dataset:
    """Data, labels and metadata of one dataset.

    ``data`` is ``(n, ...)`` float32 in ``[0, 1]`` for images (``(n, H, W)`` or
    ``(n, C, H, W)``), ``(n, d)`` float32 for vectors, or a list of ``str`` for text.
    ``labels`` is ``(n,)`` int64 (single-label), ``(n, C)`` uint8 multi-hot
    (multi-label) or ``None`` (unlabelled). ``predefined_split`` optionally maps
    a source's own split names (``"train"``, ``"test"``) to index arrays.
    """

    name: str
    data: object
    labels: np.ndarray | None
    modality: str  # "image" | "vector" | "text"
    meta: dict = field(default_factory=dict)
    predefined_split: dict[str, np.ndarray] | None = None

    @property
    def kind(self) -> str:
        if self.labels is None:
            return "unlabelled"
        return "multi-label" if self.labels.ndim == 2 else "single-label"

    @property
    def n_classes(self) -> int | None:
        if self.labels is None:
            return None
        return int(self.labels.shape[1]) if self.labels.ndim == 2 else int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., Dataset]
    description: str
    modality: str
    requires: tuple[str, ...] = ()  # importable modules needed
    available: Callable[[], bool] | None = None


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, description: str, modality: str, requires: tuple[str, ...] = (), available=None):
    """Decorator adding a loader to the registry under ``name``."""

    def decorator(loader):
        _REGISTRY[name] = DatasetInfo(name, loader, description, modality, tuple(requires), available)
        return loader

    return decorator


def list_datasets() -> list[DatasetInfo]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def dataset_available(name: str) -> bool:
    info = get_dataset_info(name)
    if info.available is not None:
        return bool(info.available())
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in info.requires)


def get_dataset_info(name: str) -> DatasetInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a registered dataset by name (``hashlearn datasets`` lists them)."""
    return get_dataset_info(name).loader(**kwargs)


@register_dataset("digits", description="scikit-learn digits: 1797 8x8 images as 64-d vectors, 10 classes", modality="vector", requires=("sklearn",))
def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    data = (bunch.data / 16.0).astype(np.float32)
    return Dataset("digits", data, bunch.target.astype(np.int64), "vector", {"source": "sklearn.datasets.load_digits", "image_shape": (8, 8), "integer_scale": 16})
