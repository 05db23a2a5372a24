"""Frozen-encoder features with an on-disk cache keyed by content.

Encoding is the slow step (per idle CPU core, all-MiniLM-L6-v2 embeds about
11 news posts/s and EfficientNet-Lite0 about 12 images/s at 224 px; see
docs/data.md), so each result is stored once under
``<cache_dir>/<encoder>/<key>.npy`` with a JSON sidecar. The key is the SHA-256 of the encoder name, version and settings and of the
input itself (array dtype, shape and bytes, or the texts), so a changed input
or encoder never hits a stale entry. Entries are written atomically and
verified on every hit (the sidecar records the ``.npy`` file's SHA-256); a
damaged entry is recomputed. Long runs save their progress in chunks
(``<key>.partial/``) and resume after an interruption.

>>> import numpy as np, tempfile
>>> from hashlearn.data.encoders import FrozenEncoder
>>> class Mean(FrozenEncoder):
...     output_dim = 1
...     def encode_batch(self, batch):
...         return np.asarray(batch, dtype=np.float32).mean(axis=1, keepdims=True)
>>> extract_features(np.ones((3, 4)), Mean(), cache_dir=tempfile.mkdtemp()).ravel()
array([1., 1., 1.], dtype=float32)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from hashlearn._io import atomic_write_chunks, atomic_write_json, parse_json_bytes, read_bounded, sha256_bytes
from hashlearn._npy import read_npy
from hashlearn._progress import progress
from hashlearn._validation import check_positive_int
from hashlearn.data.datasets import Dataset
from hashlearn.data.download import default_cache_dir
from hashlearn.data.encoders import FrozenEncoder, get_encoder
from hashlearn.errors import CorruptFileError

CACHE_FORMAT_VERSION = 1
_DEFAULT_ENCODER = {"image": "efficientnet-lite0", "text": "minilm"}


def feature_cache_key(encoder: FrozenEncoder, inputs) -> str:
    """SHA-256 naming the features of ``inputs`` under ``encoder`` (its name, version and config)."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT_VERSION, "encoder": encoder.name, "version": encoder.version, "config": encoder.config()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    if isinstance(inputs, np.ndarray):
        array = np.ascontiguousarray(inputs)
        digest.update(f"array {array.dtype.str} {array.shape}\n".encode())
        digest.update(memoryview(array).cast("B"))
    else:
        digest.update(f"texts {len(inputs)}\n".encode())
        for text in inputs:
            encoded = text.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))  # length prefix: no ambiguity between texts
            digest.update(encoded)
    return digest.hexdigest()


def _entry_paths(cache_dir: Path, encoder: FrozenEncoder, key: str) -> tuple[Path, Path]:
    folder = cache_dir / encoder.name
    return folder / f"{key}.npy", folder / f"{key}.json"


def _read_entry(npy_path: Path, json_path: Path, encoder: FrozenEncoder, n_rows: int) -> np.ndarray | None:
    """The stored ``(n_rows, output_dim)`` features, or ``None`` when absent or damaged (a warning says which).

    The entry is untrusted bytes like any file: the sidecar is size-capped JSON, the
    ``.npy`` file must be a regular file of exactly the expected size (checked before
    it is read), its checksum must match, and its header must declare exactly
    ``(n_rows, output_dim)`` float32.
    """
    if not npy_path.is_file() or not json_path.is_file():
        return None
    try:
        meta = parse_json_bytes(read_bounded(json_path, 1 << 20, "feature cache sidecar"), str(json_path))
        if not isinstance(meta, dict) or not isinstance(meta.get("npy_sha256"), str):
            raise CorruptFileError("the sidecar lacks the entry's checksum")
        expected_nbytes = n_rows * encoder.output_dim * 4
        # read once, into a buffer the returned array keeps (writable, no copy)
        content = read_bounded(npy_path, expected_nbytes + 4096, "feature cache entry", writable=True)
        if sha256_bytes(content) != meta["npy_sha256"]:
            raise CorruptFileError("checksum mismatch")
        features = read_npy(content, npy_path.name, kinds="f", copy=False)
        if features.shape != (n_rows, encoder.output_dim) or features.dtype != np.float32:
            raise CorruptFileError(f"shape {features.shape} {features.dtype}, expected ({n_rows}, {encoder.output_dim}) float32")
        return features
    except (OSError, ValueError) as error:  # CorruptFileError is a ValueError
        warnings.warn(f"feature cache entry {npy_path.name} is damaged ({error}); recomputing it.", RuntimeWarning, stacklevel=3)
        return None


def _write_entry(npy_path: Path, json_path: Path, features: np.ndarray, encoder: FrozenEncoder, key: str) -> None:
    # the bytes np.save writes, streamed from the array (no serialized copy of it in memory)
    features = np.ascontiguousarray(features)
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, npy_format.header_data_from_array_1_0(features))
    chunks = [header.getvalue(), memoryview(features).cast("B")]
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    atomic_write_chunks(npy_path, chunks)
    atomic_write_json(json_path, {
        "format": CACHE_FORMAT_VERSION, "key": key, "encoder": encoder.name, "version": encoder.version,
        "config": encoder.config(), "shape": list(features.shape), "dtype": str(features.dtype),
        "npy_sha256": digest.hexdigest(),
    })  # the sidecar is written last: an entry without it is incomplete and ignored


def _chunk_paths(partial_dir: Path, start: int, stop: int) -> tuple[Path, Path]:
    return partial_dir / f"{start:012d}-{stop:012d}.npy", partial_dir / f"{start:012d}-{stop:012d}.json"


def _chunk_range(path: Path) -> tuple[int, int] | None:
    """``(start, stop)`` of a chunk file named ``000000000000-000000000004.npy``; ``None`` for anything else."""
    parts = path.stem.split("-")
    if path.suffix != ".npy" or len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    start, stop = int(parts[0]), int(parts[1])
    return (start, stop) if start < stop else None


def _remove(path: Path) -> None:
    """Remove a cache entry (a file, a link or a stray folder) that is in the way."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _resume(partial_dir: Path, encoder: FrozenEncoder, features: np.ndarray) -> int:
    """Copy the valid leading chunks of an interrupted run into ``features``; returns the rows restored.

    Chunks after the first gap or damaged one are deleted: they will be recomputed, and so is
    anything else found in the folder (a stray file or folder, a chunk with a foreign name).
    """
    if partial_dir.exists() and not partial_dir.is_dir():  # a stray file where the progress folder goes
        _remove(partial_dir)
    if not partial_dir.is_dir():
        return 0
    chunks = sorted((r, p) for p in partial_dir.iterdir() if (r := _chunk_range(p)) is not None)
    n_done, used = 0, set()
    for (start, stop), npy_path in chunks:
        if start != n_done or stop > len(features):
            continue
        chunk = _read_entry(npy_path, npy_path.with_suffix(".json"), encoder, stop - start)
        if chunk is None:
            break
        features[start:stop] = chunk
        n_done = stop
        used.update({npy_path.name, npy_path.with_suffix(".json").name})
    for path in partial_dir.iterdir():
        if path.name not in used:
            _remove(path)
    return n_done


def extract_features(data, encoder: str | FrozenEncoder | None = None, *, cache_dir: str | os.PathLike | None = None,
                     use_cache: bool = True, batch_size: int = 64, checkpoint_s: float = 60.0, **encoder_kwargs) -> np.ndarray:
    """Features ``(n, encoder.output_dim)`` float32 of images, texts or a :class:`Dataset`.

    Parameters
    ----------
    data : Dataset, array of images ``(n, H, W)`` / ``(n, C, H, W)``, or list of str
    encoder : ``"efficientnet-lite0"``, ``"minilm"``, a :class:`FrozenEncoder`, or
        ``None`` to pick by the data set's modality.
    cache_dir : cache root (default ``$HASHLEARN_CACHE_DIR`` or ``~/.cache/hashlearn``, then ``features/``).
    use_cache : read and write the cache (``False`` always recomputes and stores nothing).
    batch_size : inputs per forward pass.
    checkpoint_s : with the cache on, the rows computed so far are saved at most this often,
        so an interrupted run resumes where it stopped instead of starting over.
    encoder_kwargs : options of a named encoder, e.g. ``image_size=96``.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(checkpoint_s, (int, float)) or checkpoint_s < 0:
        raise ValueError(f"checkpoint_s must be a number of seconds >= 0, got {checkpoint_s!r}.")
    inputs = data.data if isinstance(data, Dataset) else data
    if encoder is None:
        modality = data.modality if isinstance(data, Dataset) else ("text" if isinstance(inputs, (list, tuple)) else "image")
        if modality not in _DEFAULT_ENCODER:
            raise ValueError(f"no default encoder for {modality!r} data; pass encoder= (one of 'efficientnet-lite0', 'minilm').")
        encoder = _DEFAULT_ENCODER[modality]
    encoder = get_encoder(encoder, **encoder_kwargs)
    inputs = encoder.check_inputs(inputs)
    n_inputs = len(inputs)
    if n_inputs == 0:
        raise ValueError("data is empty; nothing to encode.")
    n_done = 0
    if use_cache:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
        key = feature_cache_key(encoder, inputs)
        npy_path, json_path = _entry_paths(root, encoder, key)
        cached = _read_entry(npy_path, json_path, encoder, n_inputs)
        if cached is not None:
            return cached
    features = np.empty((n_inputs, encoder.output_dim), dtype=np.float32)  # allocated only on a cache miss
    if use_cache:
        for path in (npy_path, json_path):  # a stray folder (or device) at the entry's name would block the write
            if path.exists() and not path.is_file():
                _remove(path)
        partial_dir = npy_path.with_name(f"{key}.partial")
        n_done = _resume(partial_dir, encoder, features)
    checkpoint_from, last_checkpoint = n_done, time.monotonic()
    starts = range(n_done, n_inputs, batch_size)
    for start in progress(starts, total=len(starts), desc=f"{encoder.name} features", unit="batch"):
        stop = min(start + batch_size, n_inputs)
        batch_features = np.asarray(encoder.encode_batch(inputs[start:stop]), dtype=np.float32)
        if batch_features.shape != (stop - start, encoder.output_dim):
            raise ValueError(f"{encoder.name} returned shape {batch_features.shape} for a batch of {stop - start}; expected ({stop - start}, {encoder.output_dim}).")
        features[start:stop] = batch_features
        if use_cache and stop < n_inputs and time.monotonic() - last_checkpoint >= checkpoint_s:
            _write_entry(*_chunk_paths(partial_dir, checkpoint_from, stop), features[checkpoint_from:stop], encoder, key)
            checkpoint_from, last_checkpoint = stop, time.monotonic()
    if use_cache:
        _write_entry(npy_path, json_path, features, encoder, key)
        shutil.rmtree(partial_dir, ignore_errors=True)
    return features
