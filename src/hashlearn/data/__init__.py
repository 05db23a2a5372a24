"""Datasets (registry), protocols (splits), features (frozen encoders + cache)."""

from hashlearn.data.datasets import Dataset, dataset_available, get_dataset_info, list_datasets, load_dataset, register_dataset
from hashlearn.data import crossmodal, formats, openmoji, openmoji_tags, text, vectors, vision  # noqa: F401  (each registers its loaders)
from hashlearn.data.features import extract_features
from hashlearn.data.paired import PairedDataset

__all__ = ["Dataset", "PairedDataset", "extract_features", "dataset_available", "get_dataset_info", "list_datasets", "load_dataset", "register_dataset"]
