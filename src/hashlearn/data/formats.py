"""Loaders for formats users bring: CIFAR-10 python batches, image list files, feature files.

None of these data sets can be fetched here, so every loader reads the
standard on-disk format and is tested on small files written in it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hashlearn._io import regular_file
from hashlearn._npy import read_npy_file, read_npz
from hashlearn._validation import check_labels
from hashlearn.data import _deps
from hashlearn.data.datasets import Dataset, register_dataset
from hashlearn.data.safe_pickle import safe_load_file
from hashlearn.errors import CorruptFileError

CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"


# --------------------------------------------------------------------------- CIFAR-10
def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: uint8 images ``(n, 3, 32, 32)`` and int64 labels ``(n,)``.

    The batch is a pickled dict (``b"data"``: ``(n, 3072)`` uint8, ``b"labels"``:
    list of ints); it is read with the restricted unpickler, never ``pickle.load``.
    """
    path = Path(path)
    batch = safe_load_file(path, encoding="bytes")
    if not isinstance(batch, dict):
        raise CorruptFileError(f"{path.name}: a CIFAR batch must be a dict, found {type(batch).__name__}.")
    # Python 2 pickles hold the keys as bytes; latin-1 decodes any bytes (a damaged key is then just not found)
    batch = {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise CorruptFileError(f"{path.name}: a CIFAR-10 batch needs keys 'data' and 'labels', found {sorted(batch)}.")
    images = batch["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        found = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise CorruptFileError(f"{path.name}: 'data' must be a uint8 array of shape (n, 3072), found {found}.")
    labels = np.asarray(batch["labels"])
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise CorruptFileError(f"{path.name}: 'labels' must be {len(images)} integers in 0..9, found {labels.dtype} {labels.shape}.")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_folder(data_dir: Path) -> Path:
    """``data_dir`` itself or its ``cifar-10-batches-py`` subfolder (the archive's layout)."""
    nested = data_dir / "cifar-10-batches-py"
    return nested if not (data_dir / CIFAR10_TEST_BATCH).is_file() and nested.is_dir() else data_dir


@register_dataset(
    "cifar10",
    description="CIFAR-10 from your python batches (data_dir= or $HASHLEARN_CIFAR10_DIR): 60000 32x32 colour images, 10 classes",
    modality="image",
    available=lambda: bool(os.environ.get("HASHLEARN_CIFAR10_DIR"))
    and (_cifar_folder(Path(os.environ["HASHLEARN_CIFAR10_DIR"])) / CIFAR10_TEST_BATCH).is_file(),
)
def load_cifar10(data_dir: str | os.PathLike | None = None) -> Dataset:
    """CIFAR-10 from ``data_batch_1..5`` and ``test_batch``: float32 ``(60000, 3, 32, 32)`` in ``[0, 1]``."""
    data_dir = data_dir if data_dir is not None else os.environ.get("HASHLEARN_CIFAR10_DIR")
    if data_dir is None:
        raise FileNotFoundError("cifar10 needs the folder of its python batches: pass data_dir=... (--data-dir) or set HASHLEARN_CIFAR10_DIR.")
    folder = _cifar_folder(Path(data_dir))
    names = CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"cifar10: {missing} missing from {str(folder)!r}; unpack cifar-10-python.tar.gz there.")
    batches = [read_cifar_batch(folder / name) for name in names]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    n_train = sum(len(labels) for _, labels in batches[:-1])
    meta = {"source": str(folder), "image_shape": (3, 32, 32)}
    if (folder / "batches.meta").is_file():
        info = safe_load_file(folder / "batches.meta", encoding="bytes")
        names_found = info.get(b"label_names") if isinstance(info, dict) else None
        if names_found is not None:
            meta["classes"] = [n.decode() if isinstance(n, bytes) else str(n) for n in names_found]
    split = {"train": np.arange(n_train), "test": np.arange(n_train, len(labels))}
    return Dataset("cifar10", images.astype(np.float32) / 255.0, labels, "image", meta, split)


# --------------------------------------------------------------------------- list files
def read_list_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read ``path label_1 ... label_C`` lines (NUS-WIDE, MS-COCO, MIRFlickr-25K, ImageNet-100 lists).

    Returns the image paths as written and uint8 multi-hot labels ``(n, C)``.
    Every line must carry the same number of 0/1 labels. The file is read line by line
    (memory: the paths and one byte per label); every problem with its content is a
    :class:`CorruptFileError`.
    """
    path, _ = regular_file(path, "list file")
    items, rows, n_labels = [], bytearray(), None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise CorruptFileError(f"{path.name}, line {number}: not UTF-8 text ({error}).") from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise CorruptFileError(f"{path.name}, line {number}: expected 'image_path label_1 ... label_C', found only {line.strip()[:200]!r}.")
            if n_labels is not None and len(fields) - 1 != n_labels:
                raise CorruptFileError(f"{path.name}, line {number}: {len(fields) - 1} labels, but earlier lines have {n_labels}.")
            bad = next((value for value in fields[1:] if value not in ("0", "1")), None)
            if bad is not None:
                raise CorruptFileError(f"{path.name}, line {number}: label vectors must hold only 0 and 1, found {bad[:40]!r}.")
            n_labels = len(fields) - 1
            items.append(fields[0])
            rows += bytes(value == "1" for value in fields[1:])
    if not items:
        raise CorruptFileError(f"{path.name}: the list file holds no entries.")
    return items, np.frombuffer(bytes(rows), dtype=np.uint8).reshape(len(items), n_labels).copy()


def _inside_root(item: str, root: str, list_name: str, number: int) -> str:
    """``root/item``, refusing entries that leave ``root`` (absolute paths, ``..``, ``~``).

    String operations, not ``pathlib``: ``Path`` interns every path part it parses, and
    interning a list's worth of new names grows the process-wide table of interned
    strings (a table resize cost megabytes for a 130 KB list file).
    """
    if os.path.isabs(item) or item.startswith("~") or ".." in item.split(os.sep):
        raise CorruptFileError(
            f"{list_name}, entry {number}: {item[:200]!r} points outside the root folder {root!r}; "
            "entries must be relative paths inside it (pass root=... to choose the folder)."
        )
    return os.path.join(root, os.path.normpath(item))


def decode_images(paths: list[str | os.PathLike], image_size: int | None = None) -> np.ndarray:
    """Decode image files with Pillow into float32 ``(n, 3, H, W)`` in ``[0, 1]``, resized to ``image_size``."""
    image_module = _deps.require_module("PIL.Image", "pillow", "decoding images of a list file")
    images = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"image {str(path)!r} listed in the list file does not exist.")
        regular_file(path, "image")  # a FIFO would block, a device never end
        try:
            with image_module.open(path) as image:  # Pillow refuses decompression bombs (MAX_IMAGE_PIXELS)
                image = image.convert("RGB")
                if image_size is not None:
                    image = image.resize((image_size, image_size), image_module.Resampling.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError, image_module.DecompressionBombError) as error:  # UnidentifiedImageError is an OSError
            raise CorruptFileError(f"image {str(path)!r} cannot be decoded: {type(error).__name__}: {error}") from error
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes {sorted(shapes)}; pass image_size=... to resize them to one size.")
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


@register_dataset(
    "list-file",
    description="Image list file ('img/x.jpg 0 1 0 1' per line: NUS-WIDE, MS-COCO, MIRFlickr-25K, ImageNet-100), multi-label",
    modality="image",
    available=lambda: True,
)
def load_list_file(path: str | os.PathLike, *, root: str | os.PathLike | None = None, decode: bool = False,
                   image_size: int | None = None) -> Dataset:
    """A list file as a multi-label data set.

    ``data`` is the list of image paths, resolved against ``root`` (default:
    the list file's folder); with ``decode=True`` it is the decoded images
    instead (float32 ``(n, 3, H, W)``, Pillow needed).
    """
    path = Path(path)
    items, labels = read_list_file(path)
    base = str(Path(root) if root is not None else path.parent)
    paths = [_inside_root(item, base, path.name, number) for number, item in enumerate(items, start=1)]
    data = decode_images(paths, image_size) if decode else paths
    meta = {"source": str(path), "paths": paths}
    return Dataset(path.stem, data, labels, "image", meta)


# --------------------------------------------------------------------------- feature files
def _read_parquet_features(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Features from the numeric columns (or one list column) and labels from ``label_column``."""
    pyarrow = _deps.require_module("pyarrow", "pyarrow", "reading .parquet feature files")
    parquet = _deps.require_module("pyarrow.parquet", "pyarrow", "reading .parquet feature files")
    try:
        table = parquet.read_table(path)
    except (pyarrow.ArrowException, OSError) as error:  # ArrowInvalid: not a parquet file, damaged footer ...
        raise CorruptFileError(f"{path.name} is not a readable parquet file: {error}") from error
    columns = list(table.column_names)
    labels = None
    if label_column is not None and label_column in columns:
        labels = np.asarray(table.column(label_column).to_pylist())
        columns.remove(label_column)
    elif label_column is not None and label_column != "label":  # only the default may be absent
        raise ValueError(f"label_column={label_column!r} is not a column of {path.name}; its columns are {columns}.")
    if not columns:
        raise CorruptFileError(f"{path.name}: no feature columns besides the label column.")
    first_type = table.schema.field(columns[0]).type
    is_list = pyarrow.types.is_list(first_type) or pyarrow.types.is_large_list(first_type) or pyarrow.types.is_fixed_size_list(first_type)
    try:
        if len(columns) == 1 and is_list:
            features = np.asarray(table.column(columns[0]).to_pylist(), dtype=np.float32)
        else:
            features = np.column_stack([table.column(name).to_numpy() for name in columns]).astype(np.float32)
    except (TypeError, ValueError, pyarrow.ArrowException) as error:
        raise CorruptFileError(f"{path.name}: feature columns must be numeric (or one list column of equal-length vectors); columns are {columns} ({error}).") from error
    return features, labels


def load_features_file(path: str | os.PathLike, labels=None, *, label_column: str | None = "label") -> Dataset:
    """Feature vectors from ``.npy``, ``.npz`` (keys ``features``, optional ``labels``) or ``.parquet``.

    ``labels`` may be an array or the path of a ``.npy`` file; for parquet the
    ``label_column`` (if present) holds class ids or multi-hot lists, and the
    other columns are the features (or one list column holds whole vectors).
    Never unpickles (``allow_pickle=False``).
    """
    path, _ = regular_file(path, "features file")
    suffix = path.suffix.lower()
    file_labels = None
    if suffix == ".npy":
        features = read_npy_file(path, "features file")
    elif suffix == ".npz":
        with open(path, "rb") as handle:  # members are read straight into their arrays (no copy of the file)
            archive = read_npz(handle, path.name)
        if "features" not in archive:
            raise CorruptFileError(f"{path.name}: an .npz features file needs a 'features' array, found keys {sorted(archive)}.")
        features = archive["features"]
        file_labels = archive.get("labels")
    elif suffix == ".parquet":
        features, file_labels = _read_parquet_features(path, label_column)
    else:
        raise ValueError(f"path must end in .npy, .npz or .parquet, got {path.name!r}.")
    if labels is not None and file_labels is not None:
        raise ValueError(f"{path.name} already holds labels; pass labels=None or remove them from the file.")
    if isinstance(labels, (str, os.PathLike)):
        labels = read_npy_file(labels, "labels file")
    labels = labels if labels is not None else file_labels
    features = np.asarray(features)
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise CorruptFileError(f"{path.name}: features must be a numeric 2-D array (n, d), found {features.dtype} {features.shape}.")
    if labels is not None:
        try:
            labels = check_labels(labels, "labels", n_samples=len(features))
        except (TypeError, ValueError) as error:
            if file_labels is None:
                raise  # the caller's own argument
            raise CorruptFileError(f"{path.name}: the stored labels are invalid: {error}") from error
    return Dataset(path.stem, features.astype(np.float32, copy=False), labels, "vector", {"source": str(path)})


register_dataset(
    "features",
    description="Your feature vectors: .npy / .npz (features, labels) / .parquet (label column)",
    modality="vector",
    available=lambda: True,
)(load_features_file)
