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


# --- MATLAB v7.3 (HDF5) files -----------------------------------------------------------------

MATLAB_CLASSES = {np.dtype(np.uint8): "uint8", np.dtype(np.float64): "double", np.dtype(np.float32): "single"}


def savemat_v73(path, variables, *, chunked=False):
    """A MATLAB v7.3 file as MATLAB writes it: a 512-byte user block opening with the 'MATLAB 7.3 MAT-file' text,
    one HDF5 dataset per variable with the axes reversed (column-major) and a MATLAB_class attribute."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            value = np.asarray(value)
            options = {"chunks": True, "compression": "gzip"} if chunked else {}
            dataset = handle.create_dataset(name, data=value.T, **options)
            dataset.attrs["MATLAB_class"] = np.bytes_(MATLAB_CLASSES[value.dtype])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Wed Dec  2 00:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM")


@pytest.mark.parametrize("chunked", [False, True])
def test_v73_files_in_matlab_order(tmp_path, chunked):
    images, tags, labels = fixture_arrays()
    # DCMH's MIRFlickr files: IAll as MATLAB (H, W, C, n) -- stored by HDF5 as (n, C, W, H)
    savemat_v73(tmp_path / "mirflickr25k-iall.mat", {"IAll": images.transpose(2, 3, 1, 0)}, chunked=chunked)
    savemat_v73(tmp_path / "mirflickr25k-yall.mat", {"YAll": tags}, chunked=chunked)
    savemat_v73(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels}, chunked=chunked)
    assert (tmp_path / "mirflickr25k-lall.mat").read_bytes()[:10] == b"MATLAB 7.3"
    ds = load_crossmodal_mat(tmp_path, name="mirflickr25k")
    keep = np.flatnonzero(labels.any(axis=1))
    np.testing.assert_array_equal(ds.images, images[keep])
    np.testing.assert_array_equal(ds.text_vectors, tags[keep].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels[keep].astype(np.uint8))
    # the same arrays as a v7 file read by scipy give the same data set
    (tmp_path / "v7").mkdir()
    scipy.io.savemat(tmp_path / "v7" / "all.mat", {"IAll": images.transpose(2, 3, 1, 0), "YAll": tags, "LAll": labels})
    v7 = load_crossmodal_mat(tmp_path / "v7", name="mirflickr25k")
    np.testing.assert_array_equal(v7.images, ds.images)
    np.testing.assert_array_equal(v7.labels, ds.labels)


def test_v73_features_file_through_the_registry(tmp_path, monkeypatch):
    _, tags, labels = fixture_arrays()
    features = np.random.default_rng(2).normal(size=(30, 16)).astype(np.float32)
    savemat_v73(tmp_path / "coco.mat", {"XAll": features, "YAll": tags, "LAll": labels})
    monkeypatch.setenv("HASHLEARN_MS_COCO_DIR", str(tmp_path))
    ds = load_dataset("ms-coco")
    np.testing.assert_array_equal(ds.images, features[labels.any(axis=1)])


def test_v73_damaged_and_hostile_files_are_typed_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    from hashlearn.data.crossmodal import read_mat_variable

    _, tags, labels = fixture_arrays()
    path = tmp_path / "all.mat"
    savemat_v73(path, {"YAll": tags, "LAll": labels})
    # truncated: the header survives, the data do not
    data = path.read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) - 900])
    with pytest.raises(CorruptFileError, match="cut.mat"):
        read_mat_variable(tmp_path / "cut.mat", "YAll")
    # garbage after a v7.3 header
    (tmp_path / "junk.mat").write_bytes(data[:128] + b"\x17" * 2000)
    with pytest.raises(CorruptFileError, match="not a readable MATLAB v7.3"):
        find_variables(tmp_path / "junk.mat")
    # a size checked before anything is read
    with pytest.raises(CorruptFileError, match="more than the limit"):
        read_mat_variable(path, "YAll", max_nbytes=100)
    # a chunked dataset declaring far more than it stores (a decompression bomb's shape)
    with h5py.File(tmp_path / "bomb.mat", "w") as handle:
        handle.create_dataset("YAll", shape=(1 << 20, 1 << 10), dtype=np.float64, chunks=(1024, 1024), compression="gzip")
        handle["YAll"][:1024] = 0.0
    with pytest.raises(CorruptFileError, match="expand"):
        read_mat_variable(tmp_path / "bomb.mat", "YAll")
    # structs / cells (groups), strings, references: not numeric arrays
    with h5py.File(tmp_path / "odd.mat", "w") as handle:
        handle.create_group("LAll").attrs["MATLAB_class"] = np.bytes_("struct")
        handle.create_dataset("YAll", data=np.array([b"tag"], dtype="S3"))
        handle.create_dataset("XAll", data=np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(CorruptFileError, match="struct"):
        read_mat_variable(tmp_path / "odd.mat", "LAll")
    with pytest.raises(CorruptFileError, match="not a numeric"):
        read_mat_variable(tmp_path / "odd.mat", "YAll")
    with pytest.raises(CorruptFileError, match="5 dimensions"):
        read_mat_variable(tmp_path / "odd.mat", "XAll")
    with pytest.raises(CorruptFileError, match="no variable"):
        read_mat_variable(tmp_path / "odd.mat", "IAll")


def test_v5_sizes_are_checked_before_reading(tmp_path):
    from hashlearn.data.crossmodal import read_mat_variable

    _, tags, labels = fixture_arrays()
    scipy.io.savemat(tmp_path / "all.mat", {"YAll": tags, "LAll": labels, "note": "text"})
    with pytest.raises(CorruptFileError, match="more than the limit"):
        read_mat_variable(tmp_path / "all.mat", "YAll", max_nbytes=64)
    with pytest.raises(CorruptFileError, match="char"):
        read_mat_variable(tmp_path / "all.mat", "note")
    np.testing.assert_array_equal(read_mat_variable(tmp_path / "all.mat", "YAll"), tags)


def test_v73_without_h5py_names_the_package(tmp_path, monkeypatch):
    from hashlearn.errors import MissingDependencyError

    path = tmp_path / "all.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # what an environment without h5py imports
    with pytest.raises(MissingDependencyError, match="h5py"):
        find_variables(path)
