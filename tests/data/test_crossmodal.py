"""The .mat loaders of MIRFlickr-25K / NUS-WIDE / MS-COCO on small files written in their format."""

import numpy as np
import pytest
import scipy.io

from hashlearn.data import load_dataset
from hashlearn.data.crossmodal import find_variables, load_crossmodal_mat
from hashlearn.data.protocols import get_protocol, make_split
from hashlearn.errors import CorruptFileError


def fixture_arrays(n=30, side=8, seed=0):
    rng = np.random.default_rng(seed)
    images_nchw = rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)
    tags = (rng.random((n, 12)) < 0.3).astype(np.float64)
    labels = (rng.random((n, 5)) < 0.3).astype(np.float64)
    labels[:, 0] = np.where(labels.any(axis=1), labels[:, 0], 1)  # every pair labelled ...
    labels[3] = 0  # ... except one, which the protocol drops
    return images_nchw, tags, labels


def test_separate_files_in_matlab_order(tmp_path):
    images, tags, labels = fixture_arrays()
    # DCMH/SSAH files: one per variable, images as MATLAB (H, W, C, n)
    scipy.io.savemat(tmp_path / "mirflickr25k-iall.mat", {"IAll": images.transpose(2, 3, 1, 0)})
    scipy.io.savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": tags})
    scipy.io.savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels})
    ds = load_crossmodal_mat(tmp_path, name="mirflickr25k")
    keep = np.flatnonzero(labels.any(axis=1))
    assert len(ds) == len(keep) == 29 and ds.meta["n_dropped_unlabelled"] == 1
    np.testing.assert_array_equal(ds.images, images[keep])
    np.testing.assert_array_equal(ds.text_vectors, tags[keep].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels[keep].astype(np.uint8))
    assert ds.image_kind == "pixels" and ds.images.dtype == np.uint8


def test_one_file_with_features_and_transposed_labels(tmp_path):
    _, tags, labels = fixture_arrays()
    features = np.random.default_rng(1).normal(size=(30, 16))
    scipy.io.savemat(tmp_path / "coco.mat", {"XAll": features, "YAll": tags, "LAll": labels.T})
    ds = load_crossmodal_mat(tmp_path / "coco.mat", name="ms-coco")
    keep = labels.any(axis=1)
    assert ds.image_kind == "features" and ds.images.shape == (29, 16)
    np.testing.assert_allclose(ds.images, features[keep].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels[keep].astype(np.uint8))


def test_nhwc_images_and_registered_loader(tmp_path, monkeypatch):
    images, tags, labels = fixture_arrays()
    scipy.io.savemat(tmp_path / "nus.mat", {"IAll": images.transpose(0, 2, 3, 1), "YAll": tags, "LAll": labels})
    monkeypatch.setenv("HASHLEARN_NUS_WIDE_DIR", str(tmp_path))
    ds = load_dataset("nus-wide")
    np.testing.assert_array_equal(ds.images, images[labels.any(axis=1)])
    assert ds.name == "nus-wide"


def test_errors_name_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("HASHLEARN_MIRFLICKR25K_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="HASHLEARN_MIRFLICKR25K_DIR"):
        load_dataset("mirflickr25k")
    with pytest.raises(FileNotFoundError, match="no .mat files"):
        load_crossmodal_mat(tmp_path)
    _, tags, labels = fixture_arrays()
    scipy.io.savemat(tmp_path / "partial.mat", {"YAll": tags, "LAll": labels})
    with pytest.raises(CorruptFileError, match="IAll|XAll"):
        load_crossmodal_mat(tmp_path)
    scipy.io.savemat(tmp_path / "partial.mat", {"XAll": np.zeros((7, 3)), "YAll": tags, "LAll": labels})
    with pytest.raises(CorruptFileError, match="expected 30 rows"):
        load_crossmodal_mat(tmp_path)
    (tmp_path / "partial.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(CorruptFileError, match="not a readable MATLAB"):
        find_variables(tmp_path)


def test_labels_must_be_multi_hot(tmp_path):
    _, tags, labels = fixture_arrays()
    scipy.io.savemat(tmp_path / "bad.mat", {"XAll": np.zeros((30, 3)), "YAll": tags, "LAll": labels * 2})
    with pytest.raises(CorruptFileError, match="multi-hot"):
        load_crossmodal_mat(tmp_path)


def test_literature_protocols_are_registered(tmp_path):
    assert (get_protocol("mirflickr25k").n_query, get_protocol("mirflickr25k").n_train) == (2000, 10000)
    assert (get_protocol("nus-wide").n_query, get_protocol("nus-wide").n_train) == (2100, 10500)
    assert (get_protocol("ms-coco").n_query, get_protocol("ms-coco").n_train) == (2000, 10000)
    # a split under a (shrunk) protocol of a loaded fixture is a split of pairs
    images, tags, labels = fixture_arrays()
    scipy.io.savemat(tmp_path / "all.mat", {"IAll": images, "YAll": tags, "LAll": labels})
    ds = load_crossmodal_mat(tmp_path, name="mirflickr25k")
    from hashlearn.data.protocols import Protocol

    split = make_split(ds, Protocol("small", 5, 15, 3, stratified=False), seed=0)
    assert split.meta["paired"] and not set(split.query) & set(split.database)
