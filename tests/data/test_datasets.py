"""The registry: every loader is registered, unknown names fail clearly, the CLI lists availability."""

import numpy as np
import pytest

from hashlearn.data import Dataset, dataset_available, get_dataset_info, list_datasets, load_dataset

EXPECTED = {"digits", "fashion-mnist", "mnist", "mnist5k", "animal-mnist", "yeast", "20newsgroups", "r8", "r52",
            "glove-50d", "cifar10", "list-file", "features", "openmoji-tags"}


def test_all_loaders_are_registered():
    assert EXPECTED <= {info.name for info in list_datasets()}
    for info in list_datasets():
        assert info.modality in ("image", "vector", "text", "paired") and info.description
        assert isinstance(dataset_available(info.name), bool)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown dataset 'fashion_mnist'; expected one of \[.*'fashion-mnist'"):
        load_dataset("fashion_mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset_info("cifar-100")


def test_digits_unchanged():
    dataset = load_dataset("digits")
    assert isinstance(dataset, Dataset) and dataset.data.shape == (1797, 64) and dataset.labels.dtype == np.int64


def test_cli_lists_every_dataset(capsys):
    from hashlearn.cli.main import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"\n{name} " in out
