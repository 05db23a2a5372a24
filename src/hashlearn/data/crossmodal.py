"""Loaders for the cross-modal hashing benchmarks as distributed for DCMH/SSAH-style experiments.

MIRFlickr-25K, NUS-WIDE and MS-COCO circulate as MATLAB ``.mat`` files --
one file holding everything, or one file per variable
(``mirflickr25k-iall.mat``, ``-yall.mat``, ``-lall.mat``) -- with

* ``IAll``: raw images, uint8, in MATLAB ``(H, W, 3, n)`` order or as
  ``(n, 3, H, W)`` / ``(n, H, W, 3)``; or ``XAll``: ``(n, d)`` image features;
* ``YAll``: ``(n, v)`` tag / bag-of-words text vectors;
* ``LAll``: ``(n, c)`` multi-hot labels.

None of them can be obtained on these machines: the loaders read the files a
user brings (``data_dir=`` or ``$HASHLEARN_<NAME>_DIR``) and are tested on
small files written in the same format (``scipy.io.savemat`` for v5/v7, ``h5py``
with MATLAB's 512-byte header and column-major layout for v7.3). MATLAB v7.3
files are HDF5 and need ``h5py`` (``pip install hashlearn[crossmodal]``);
without it the loader says so.

Hardening: every array's size is read from the file's header and checked
before any data is read -- against ``MAX_ARRAY_NBYTES`` and, for HDF5, against
the bytes actually stored (a contiguous dataset must hold all of them, a
chunked / compressed one may not expand more than deflate can). Structs, cell
arrays, strings, object references and arrays of more than 4 dimensions are
refused; every failure is a :class:`~hashlearn.errors.CorruptFileError` naming
the file and the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hashlearn.data import _deps
from hashlearn.data.datasets import register_dataset
from hashlearn.data.paired import PairedDataset
from hashlearn.errors import CorruptFileError

#: accepted variable names per role, in order of preference
VARIABLES = {
    "images": ("IAll", "images", "I"),
    "image_features": ("XAll", "image_features", "X"),
    "text": ("YAll", "TAll", "tags", "texts", "T", "Y"),
    "labels": ("LAll", "labels", "L"),
}

#: name -> (environment variable naming the folder, description of the standard distribution)
SOURCES = {
    "mirflickr25k": ("HASHLEARN_MIRFLICKR25K_DIR", "MIRFlickr-25K (DCMH cleaning: 20,015 pairs, 24 labels, 1,386-d tag vectors)"),
    "nus-wide": ("HASHLEARN_NUS_WIDE_DIR", "NUS-WIDE (10 most frequent concepts: 186,577 pairs, 1,000-d tag vectors)"),
    "ms-coco": ("HASHLEARN_MS_COCO_DIR", "MS-COCO (122,218 pairs, 80 labels, 2,000-d bag-of-words)"),
}


#: largest array a .mat file may declare (NUS-WIDE's raw 224 px images are about 28 GB)
MAX_ARRAY_NBYTES = 64 << 30
#: largest ratio of an HDF5 array's size to its stored bytes (deflate cannot expand more than ~1032x)
MAX_EXPANSION = 1100
#: the MATLAB classes that hold numeric arrays (scipy's whosmat names; logical is stored as uint8)
_MAT_ITEMSIZE = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
                 "int64": 8, "uint64": 8, "logical": 1}


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        header = handle.read(128)
    return b"MATLAB 7.3" in header or header[:8] == b"\x89HDF\r\n\x1a\n"


def _h5py(path: Path):
    return _deps.require_module("h5py", "h5py", f"reading the MATLAB v7.3 (HDF5) file {path.name}")


def _open_hdf5(path: Path):
    h5py = _h5py(path)
    try:
        return h5py.File(path, "r")
    except OSError as error:  # h5py reports damaged files as OSError
        raise CorruptFileError(f"{path.name}: not a readable MATLAB v7.3 (HDF5) file ({error}).") from error


def mat_variables(path: str | os.PathLike) -> list[str]:
    """Names of the arrays stored in a ``.mat`` file (read from its header; nothing is loaded)."""
    import scipy.io

    path = Path(path)
    if _is_hdf5(path):
        with _open_hdf5(path) as handle:
            try:
                return [name for name in handle.keys() if not name.startswith("#")]  # "#refs#": MATLAB's cell storage
            except (OSError, RuntimeError, KeyError) as error:
                raise CorruptFileError(f"{path.name}: cannot list the variables of this HDF5 file ({error}).") from error
    try:
        return [name for name, _, _ in scipy.io.whosmat(str(path))]
    except (ValueError, TypeError, OSError) as error:
        raise CorruptFileError(f"{path.name}: not a readable MATLAB .mat file ({error}).") from error


def _check_declared(path: Path, name: str, shape: tuple, itemsize: int, max_nbytes: int) -> int:
    if not 1 <= len(shape) <= 4:
        raise CorruptFileError(f"{path.name}: variable {name!r} has {len(shape)} dimensions {tuple(shape)}; expected a 1-4 dimensional array.")
    nbytes = int(np.prod([int(v) for v in shape], dtype=object)) * int(itemsize)
    if nbytes > max_nbytes:
        raise CorruptFileError(f"{path.name}: variable {name!r} declares shape {tuple(shape)} ({nbytes:,} bytes), more than the "
                               f"limit of {max_nbytes:,} bytes (hashlearn.data.crossmodal.MAX_ARRAY_NBYTES).")
    return nbytes


def _read_hdf5_variable(path: Path, name: str, max_nbytes: int) -> np.ndarray:
    h5py = _h5py(path)
    with _open_hdf5(path) as handle:
        try:
            if name not in handle:
                raise CorruptFileError(f"{path.name}: no variable {name!r} in this MATLAB v7.3 file.")
            node = handle[name]
            matlab_class = node.attrs.get("MATLAB_class", b"")
            matlab_class = matlab_class.decode(errors="replace") if isinstance(matlab_class, bytes) else str(matlab_class)
            if not isinstance(node, h5py.Dataset):
                raise CorruptFileError(f"{path.name}: variable {name!r} is a MATLAB {matlab_class or 'group'} (struct or cell), "
                                       "not a numeric array.")
            if node.attrs.get("MATLAB_empty", 0):
                raise CorruptFileError(f"{path.name}: variable {name!r} is an empty MATLAB array.")
            if node.dtype.kind not in "biuf" or matlab_class in ("cell", "char", "struct"):
                raise CorruptFileError(f"{path.name}: variable {name!r} holds {matlab_class or node.dtype} values, "
                                       "not a numeric or logical array.")
            nbytes = _check_declared(path, name, node.shape, node.dtype.itemsize, max_nbytes)
            stored = int(node.id.get_storage_size())
            if node.chunks is None and node.compression is None:
                if stored < nbytes:
                    raise CorruptFileError(f"{path.name}: variable {name!r} stores {stored:,} of its {nbytes:,} bytes "
                                           "(the file is truncated or damaged).")
            elif nbytes > MAX_EXPANSION * max(stored, 1):
                raise CorruptFileError(f"{path.name}: variable {name!r} would expand {stored:,} stored bytes to {nbytes:,} "
                                       f"(more than {MAX_EXPANSION}x): refused as a damaged or hostile file.")
            values = node[()]
        except CorruptFileError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:  # bad chunks, filters, offsets
            raise CorruptFileError(f"{path.name}: cannot read variable {name!r} ({type(error).__name__}: {error}).") from error
    return np.asarray(values).T  # HDF5 holds MATLAB's column-major arrays with the axes reversed: transpose back


def read_mat_variable(path: str | os.PathLike, name: str, *, max_nbytes: int = MAX_ARRAY_NBYTES) -> np.ndarray:
    """One array of a ``.mat`` file (v5/v7 with scipy, v7.3 with h5py, whose arrays come transposed); its declared
    size is checked against ``max_nbytes`` before anything is read."""
    import scipy.io

    path = Path(path)
    if _is_hdf5(path):
        return _read_hdf5_variable(path, name, max_nbytes)
    try:
        declared = {entry[0]: entry for entry in scipy.io.whosmat(str(path))}
    except (ValueError, TypeError, OSError) as error:
        raise CorruptFileError(f"{path.name}: not a readable MATLAB .mat file ({error}).") from error
    if name not in declared:
        raise CorruptFileError(f"{path.name}: no variable {name!r} in this .mat file.")
    _, shape, matlab_class = declared[name]
    if matlab_class not in _MAT_ITEMSIZE:
        raise CorruptFileError(f"{path.name}: variable {name!r} is a MATLAB {matlab_class}, not a numeric or logical array.")
    _check_declared(path, name, tuple(shape), _MAT_ITEMSIZE[matlab_class], max_nbytes)
    try:
        values = scipy.io.loadmat(str(path), variable_names=[name])
    except (ValueError, TypeError, OSError) as error:
        raise CorruptFileError(f"{path.name}: not a readable MATLAB .mat file ({error}).") from error
    if name not in values:
        raise CorruptFileError(f"{path.name}: variable {name!r} is listed but could not be read.")
    return np.asarray(values[name])


def find_variables(folder: str | os.PathLike) -> dict[str, tuple[Path, str]]:
    """Role -> (file, variable) for every role found in the ``.mat`` files of ``folder`` (or one file)."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(folder.glob("*.mat"))
    if not files:
        raise FileNotFoundError(f"no .mat files in {str(folder)!r}; expected the IAll/XAll, YAll and LAll files of the data set.")
    found: dict[str, tuple[Path, str]] = {}
    for path in files:
        names = mat_variables(path)
        for role, candidates in VARIABLES.items():
            if role in found:
                continue
            hit = next((name for name in candidates if name in names), None)
            if hit is not None:
                found[role] = (path, hit)
    return found


def _images_nchw(images: np.ndarray, n: int, source: str) -> np.ndarray:
    """Raw images to ``(n, C, H, W)`` with ``C`` in (1, 3): accepts MATLAB ``(H, W, C, n)``, ``(n, H, W, C)``, ``(n, C, H, W)``."""
    if images.ndim == 3:  # grey: (H, W, n) or (n, H, W)
        images = images[:, :, None, :] if images.shape[-1] == n and images.shape[0] != n else images[:, None]
    if images.ndim != 4:
        raise CorruptFileError(f"{source}: images must be a 4-D array, got shape {images.shape}.")
    if images.shape[-1] == n and images.shape[0] != n:  # MATLAB (H, W, C, n)
        images = images.transpose(3, 2, 0, 1)
    elif images.shape[0] != n:
        raise CorruptFileError(f"{source}: images of shape {images.shape} have no axis of length n={n} (the number of labels) first or last.")
    if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):  # (n, H, W, C)
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in (1, 3):
        raise CorruptFileError(f"{source}: cannot find a colour axis of size 1 or 3 in images of shape {images.shape}.")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() > 1:
            raise CorruptFileError(f"{source}: images must be uint8, or float in [0, 1]; got {images.dtype} in [{images.min()}, {images.max()}].")
    return np.ascontiguousarray(images)


def _rows_match(array: np.ndarray, n: int, what: str, source: str) -> np.ndarray:
    """``(n, d)`` from ``(n, d)`` or ``(d, n)`` (MATLAB users save both)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise CorruptFileError(f"{source}: {what} must be a 2-D array, got shape {array.shape}.")
    if array.shape[0] != n and array.shape[1] == n:
        array = array.T
    if array.shape[0] != n:
        raise CorruptFileError(f"{source}: {what} has shape {array.shape}, expected {n} rows (one per labelled pair).")
    return array


def load_crossmodal_mat(folder: str | os.PathLike, *, name: str = "crossmodal", use_image_features: bool | None = None,
                        drop_unlabelled: bool = True) -> PairedDataset:
    """A :class:`PairedDataset` from the ``.mat`` files of ``folder`` (or one ``.mat`` file).

    ``use_image_features`` picks ``XAll`` (True) or ``IAll`` (False); ``None``
    takes raw images when present. Pairs without any label (all-zero ``LAll``
    row) are dropped when ``drop_unlabelled`` (as the DCMH/SSAH protocols do).
    """
    found = find_variables(folder)
    source = str(folder)
    missing = [role for role in ("text", "labels") if role not in found]
    if use_image_features is None:
        use_image_features = "images" not in found
    image_role = "image_features" if use_image_features else "images"
    if image_role not in found:
        missing.append(image_role)
    if missing:
        wanted = {role: VARIABLES[role] for role in missing}
        raise CorruptFileError(f"{source}: the .mat files lack {wanted} (role: accepted variable names).")
    labels = np.asarray(read_mat_variable(*found["labels"]))
    n = max(labels.shape) if labels.ndim == 2 else len(labels)
    text = _rows_match(read_mat_variable(*found["text"]), n, f"text ({found['text'][1]})", source)
    labels = _rows_match(labels, len(text), f"labels ({found['labels'][1]})", source)
    n = len(labels)
    if not np.isin(labels, (0, 1)).all():
        raise CorruptFileError(f"{source}: labels ({found['labels'][1]}) must be multi-hot 0/1.")
    if use_image_features:
        images = _rows_match(read_mat_variable(*found["image_features"]), n, "image features (XAll)", source).astype(np.float32)
        if not np.isfinite(images).all():
            raise CorruptFileError(f"{source}: image features contain NaN or infinite values.")
    else:
        images = _images_nchw(read_mat_variable(*found["images"]), n, source)
    if not np.issubdtype(text.dtype, np.number) or not np.isfinite(text.astype(np.float64)).all():
        raise CorruptFileError(f"{source}: text vectors must be finite numbers, got {text.dtype}.")
    keep = labels.any(axis=1) if drop_unlabelled else np.ones(n, dtype=bool)
    meta = {"source": source, "variables": {role: [str(path), var] for role, (path, var) in found.items()},
            "n_dropped_unlabelled": int((~keep).sum())}
    return PairedDataset(name, images[keep], labels[keep].astype(np.uint8), text_vectors=text[keep].astype(np.float32), meta=meta)


def _folder(name: str, data_dir) -> Path:
    env, description = SOURCES[name]
    data_dir = data_dir if data_dir is not None else os.environ.get(env)
    if data_dir is None:
        raise FileNotFoundError(
            f"{name} cannot be downloaded here: pass data_dir=... (--data-dir) with its .mat files "
            f"(IAll or XAll, YAll, LAll) or set {env}. Expected: {description}."
        )
    path = Path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{name}: data_dir={str(path)!r} does not exist.")
    return path


def _registered(name: str):
    env, description = SOURCES[name]

    def available() -> bool:
        folder = os.environ.get(env)
        return bool(folder) and Path(folder).exists()

    @register_dataset(name, description=f"{description} from your .mat files (data_dir= or ${env})", modality="paired",
                      available=available)
    def loader(data_dir: str | os.PathLike | None = None, *, use_image_features: bool | None = None) -> PairedDataset:
        return load_crossmodal_mat(_folder(name, data_dir), name=name, use_image_features=use_image_features)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = f"{description}, read by :func:`load_crossmodal_mat` from ``data_dir`` or ``${env}``."
    return loader


load_mirflickr25k = _registered("mirflickr25k")
load_nus_wide = _registered("nus-wide")
load_ms_coco = _registered("ms-coco")

__all__ = ["MAX_ARRAY_NBYTES", "SOURCES", "VARIABLES", "find_variables", "load_crossmodal_mat", "load_mirflickr25k", "load_ms_coco", "load_nus_wide",
           "mat_variables", "read_mat_variable"]
