"""Datasets (registry), protocols (splits), features (frozen encoders + cache)."""

from hashlearn.data.datasets import Dataset, dataset_available, get_dataset_info, list_datasets, load_dataset, register_dataset
from hashlearn.data import formats, text, vectors, vision  # noqa: F401  (each registers its loaders)

__all__ = ["Dataset", "dataset_available", "get_dataset_info", "list_datasets", "load_dataset", "register_dataset"]
