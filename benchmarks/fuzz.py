"""Structure-aware fuzzing of every hashlearn loader (issue 12).

For each file format a seed is written by the real code path (``save_index``,
``HashModel.save``, ``save_checkpoint``, ``Split.save``, ``train_run``, ``write_idx``, a
CIFAR-10 batch in its published layout, ...). Each mutation is one of

* ``truncate``: cut the file at a random point;
* ``bitflip``: flip 1-8 random bits;
* ``bytes``: overwrite a few bytes with 00, FF or random values;
* ``insert``: insert random bytes (or duplicate a slice);
* ``field``: set one header field to a hostile value (-1, 2**32, 2**64 - 1, 2**70, a
  string, null, a list, a deep nesting, a shape of 2**32 x 2**32 ...);

and, for half of the byte-level mutations and all field mutations, the file is then
*re-signed*: its checksums (the .hlx header and payload sha256, the sha256 a model.json,
checkpoint or split.json holds for its companion file, the gzip CRC by recompressing) are
recomputed so the loader's structure checks, not its checksums, must catch the problem.

Every load runs in a worker process under an address-space cap (``RLIMIT_AS``) and a
per-load alarm. Outcomes are counted by exception type: the typed ones
(``CorruptFileError`` for content; ``FileNotFoundError``, ``PermissionError``,
``IsADirectoryError`` for paths) are expected, ``ok`` means the mutated file still loaded
(e.g. a flipped bit in a float weight, re-signed), anything else is an escape. Peak memory
of each load is measured with ``tracemalloc`` (numpy and Python allocations) and as the
growth of the worker's resident high-water mark (reset before each load); the larger is
compared with what the files justify (:func:`justified_nbytes`: the largest legitimate
array, the files' content -- a gzip file's inflated -- or a 1 MiB floor). A load over 2x is
loaded twice more, at once by the same worker and by a fresh one, and judged by the median
of the three ratios (:func:`judged_ratio`); every first measurement is kept in the results.

Usage::

    nice -n 10 python benchmarks/fuzz.py                 # 10,000 mutations per format, resumes
    python benchmarks/fuzz.py --n 200 --formats hlx,idx  # a quick look
    python benchmarks/fuzz.py --report                   # rewrite fuzz.md from fuzz.json
    python benchmarks/fuzz.py --recheck                  # re-run each format's worst load (over 2x) alone

Results: ``benchmarks/results/fuzz.json`` (written after every chunk, so an interrupted
run resumes where it stopped) and ``benchmarks/results/fuzz.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import pickletools
import platform
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TYPED = ("CorruptFileError", "FileNotFoundError", "PermissionError", "IsADirectoryError")
HOSTILE_INTS = [-1, 0, 1, 3, 7, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63)]
HOSTILE_VALUES = HOSTILE_INTS + [1.5, -0.0, 1e308, "x", "", None, True, False, [], {}, [2**32, 2**32], [2**32] * 4, [-1, 8],
                                 [0], "9" * 50, {"a": 1}, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
MUTATIONS = ("truncate", "bitflip", "bytes", "insert", "field")
PER_LOAD_SECONDS = 20
#: the least a load's peak is compared with: a load of a few KB of JSON costs a constant of Python objects
FLOOR_NBYTES = 1 << 20
#: 2: the denominator is justified_nbytes (floor, inflated gzip content); results without it
#: (1) divided by max(largest legitimate array, the files' on-disk size)
RATIO_DEFINITION = 2
#: how far the harness inflates a mutated gzip file to learn what it holds (the mutations stay far below)
INFLATE_LIMIT = 256 << 20
ADDRESS_SPACE_HEADROOM = 2 << 30  # the worker's address space may grow by this much over its start
#: a load whose first measurement is over this ratio is measured twice more before it is judged (see judged_ratio);
#: HASHLEARN_FUZZ_REMEASURE_OVER lowers it to try the rule on a short run (the results then judge nothing)
REMEASURE_OVER = float(os.environ.get("HASHLEARN_FUZZ_REMEASURE_OVER", 2.0))
#: 1: loads over REMEASURE_OVER are judged by the median of three measurements; results without it (0) by their first
REMEASURE_RULE = 1


# --------------------------------------------------------------------------- formats
@dataclass
class Seed:
    files: dict[str, bytes]  # relative path -> content (the legitimate file set)
    largest_array_nbytes: int  # the largest array the legitimate files hold
    context: dict  # what the loader needs besides the files


@dataclass
class Format:
    name: str
    description: str
    build: Callable[[Path], Seed]
    load: Callable[[Path, Seed], object]
    resign: Callable[[dict, Seed], dict] | None = None  # recompute checksums after a mutation
    fields: Callable[[dict, np.random.Generator, Seed], dict] | None = None  # set one header field to a hostile value
    weights: dict | None = None  # relative path -> how often its bytes are mutated
    # run on what load returned: its errors are outcomes like the load's, its memory is reported apart
    use: Callable[[object, Seed], object] | None = None


def _hostile(rng: np.random.Generator):
    return HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]


def _set_path(obj, path: list, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _json_paths(obj, prefix=(), depth=0) -> list[list]:
    """Every key path in a JSON value (to pick a field to overwrite)."""
    paths = [list(prefix)] if prefix else []
    if depth > 6:
        return paths
    if isinstance(obj, dict):
        for key, value in obj.items():
            paths += _json_paths(value, prefix + (key,), depth + 1)
    elif isinstance(obj, list):
        for index, value in enumerate(obj[:6]):
            paths += _json_paths(value, prefix + (index,), depth + 1)
    return paths


def _mutate_json_field(data: bytes, rng) -> bytes:
    try:
        value = json.loads(data)
    except ValueError:
        return data
    paths = _json_paths(value)
    if not paths:
        return json.dumps(_hostile(rng)).encode()
    path = paths[int(rng.integers(len(paths)))]
    if rng.random() < 0.1:  # or drop the field
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            parent.pop(path[-1])
        elif isinstance(parent, list):
            parent.pop(path[-1])
    else:
        _set_path(value, path, _hostile(rng))
    return json.dumps(value).encode()


# --- .hlx -----------------------------------------------------------------------------------
def _build_hlx(folder: Path) -> Seed:
    from hashlearn.index.factory import index_factory
    from hashlearn.index.io import save_index

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(16_384, 64), dtype=np.uint8)  # 1 MB of 512-bit codes, 128 KB of ids
    flat = index_factory("Flat", 512)
    flat.add(codes, ids=np.arange(len(codes)) * 3)
    save_index(flat, folder / "flat.hlx")
    two = index_factory("TwoStage(MIH,Flat)", 64)
    two.add(codes[:4096, :8])
    save_index(two, folder / "two.hlx")
    files = {name: (folder / name).read_bytes() for name in ("flat.hlx", "two.hlx")}
    return Seed(files, codes.nbytes, {"queries": {"flat.hlx": codes[:3].copy(), "two.hlx": codes[:3, :8].copy()}})


def _load_hlx(folder: Path, seed: Seed):
    from hashlearn.index.io import load_index

    seed.context["calls"] = seed.context.get("calls", 0) + 1
    mmap = seed.context["calls"] % 2 == 0  # mapped and read, on alternate loads
    for name in ("flat.hlx", "two.hlx"):
        index = load_index(folder / name, mmap=mmap)
        index.search(seed.context["queries"][name], 5)  # a loaded index must also work
    return index


def _build_sharded(folder: Path) -> Seed:
    import distributed

    from hashlearn.index.io import save_index
    from hashlearn.index.sharded import ShardedIndex, start_local_cluster

    cluster = start_local_cluster(2)
    client = distributed.Client(cluster, set_as_default=False)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(65_536, 16), dtype=np.uint8)  # 1 MiB of 128-bit codes
    with ShardedIndex(128, 2, "Flat", client=client) as round_robin:
        round_robin.add(codes, ids=np.arange(len(codes)) * 2)
        save_index(round_robin, folder / "round_robin.hlx")
    with ShardedIndex(128, 3, "MIH", partition="substring", client=client) as substring:
        substring.add(codes[:8192])
        save_index(substring, folder / "substring.hlx")

    def close():
        client.close()
        cluster.close()

    files = {name: (folder / name).read_bytes() for name in ("round_robin.hlx", "substring.hlx")}
    return Seed(files, codes.nbytes, {"client": client, "close": close, "queries": codes[:3].copy()})


def _load_sharded(folder: Path, seed: Seed):
    from hashlearn.index.io import load_index

    seed.context["calls"] = seed.context.get("calls", 0) + 1
    mmap = seed.context["calls"] % 2 == 0
    indexes = []
    try:
        for name in ("round_robin.hlx", "substring.hlx"):
            indexes.append(load_index(folder / name, mmap=mmap, client=seed.context["client"]))  # shards go to the running cluster
    except BaseException:
        for index in indexes:
            index.close()
        raise
    return indexes


def _search_sharded(indexes: list, seed: Seed):
    """k-NN and range search of both loaded sharded indexes; then close them (measured apart: MIH search memory is not the loader's)."""
    try:
        for index in indexes:
            index.search(seed.context["queries"], 5)
            index.range_search(seed.context["queries"][:1], 40)
    finally:
        for index in indexes:
            index.close()


def _split_hlx(data: bytes):
    from hashlearn.index import io as hio

    if len(data) < hio._PREFIX.size:
        return None
    magic, version, flags, length, _ = hio._PREFIX.unpack(data[: hio._PREFIX.size])
    if hio._PREFIX.size + length > len(data):
        return None
    header = data[hio._PREFIX.size : hio._PREFIX.size + length]
    start = hio._aligned(hio._PREFIX.size + length)
    return (magic, version, flags), header, data[hio._PREFIX.size + length : start], data[start:]


def _sign_hlx(fixed, header: bytes, padding: bytes, payload: bytes, length: int | None = None) -> bytes:
    from hashlearn.index import io as hio

    magic, version, flags = fixed
    length = len(header) if length is None else length
    return hio._PREFIX.pack(magic, version, flags, length % 2**64, hashlib.sha256(header).digest()) + header + padding + payload


def _resign_hlx(files: dict, seed: Seed) -> dict:
    out = {}
    for name, data in files.items():
        parts = _split_hlx(data)
        if parts is None:
            out[name] = data
            continue
        fixed, header, padding, payload = parts
        try:
            info = json.loads(header)
            info["payload_sha256"] = hashlib.sha256(payload).hexdigest()
            header = json.dumps(info).encode()
            from hashlearn.index.io import _aligned, _PREFIX

            padding = bytes(_aligned(_PREFIX.size + len(header)) - _PREFIX.size - len(header))
        except (ValueError, TypeError):
            pass
        out[name] = _sign_hlx(fixed, header, padding, payload)
    return out


def _fields_hlx(files: dict, rng, seed: Seed) -> dict:
    names = sorted(files)
    name = names[int(rng.integers(len(names)))]
    fixed, header, padding, payload = _split_hlx(files[name])
    choice = rng.random()
    if choice < 0.15:  # a prefix field: version, flags or the header length
        field = int(rng.integers(3))
        value = HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))] % 2**32
        if field < 2:
            fixed = (fixed[0], value, fixed[2]) if field == 0 else (fixed[0], fixed[1], value)
            return {**files, name: _sign_hlx(fixed, header, padding, payload)}
        return {**files, name: _sign_hlx(fixed, header, padding, payload, length=HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))])}
    return _resign_hlx({**files, name: _sign_hlx(fixed, _mutate_json_field(header, rng), padding, payload)}, seed)


# --- model directory ------------------------------------------------------------------------
def _build_model(folder: Path) -> Seed:
    import torch

    from hashlearn.models import HashModel

    torch.manual_seed(0)
    model = HashModel("mlp", 32, {"in_features": 256, "hidden": [512]})  # 512 KB first layer
    model.save(folder / "model")
    files = {f"model/{name}": (folder / "model" / name).read_bytes() for name in ("model.json", "model.safetensors")}
    return Seed(files, 256 * 512 * 4, {})


def _load_model(folder: Path, seed: Seed):
    from hashlearn.models import HashModel

    return HashModel.load(folder / "model")


def _resign_companion(json_name: str, data_name: str) -> Callable:
    """Re-sign a JSON file that holds the sha256 of its companion file."""

    def resign(files: dict, seed: Seed) -> dict:
        try:
            info = json.loads(files[json_name])
            info["sha256"] = hashlib.sha256(files[data_name]).hexdigest()
            return {**files, json_name: json.dumps(info).encode()}
        except (ValueError, TypeError, KeyError):
            return files

    return resign


def _mutate_safetensors_field(data: bytes, rng) -> bytes:
    if len(data) < 8:
        return data
    length = int.from_bytes(data[:8], "little")
    if rng.random() < 0.15:
        return HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))].to_bytes(16, "little", signed=True)[:8] + data[8:]
    header = data[8 : 8 + length]
    new = _mutate_json_field(header, rng)
    return len(new).to_bytes(8, "little") + new + data[8 + length :]


def _fields_pair(json_name: str, data_name: str, mutate_data: Callable) -> Callable:
    resign = _resign_companion(json_name, data_name)

    def fields(files: dict, rng, seed: Seed) -> dict:
        if rng.random() < 0.5:
            files = {**files, json_name: _mutate_json_field(files[json_name], rng)}
        else:
            files = {**files, data_name: mutate_data(files[data_name], rng)}
        return resign(files, seed)

    return fields


# --- checkpoint -----------------------------------------------------------------------------
def _checkpoint_parts():
    import torch

    torch.manual_seed(0)
    model, objective = torch.nn.Linear(512, 256), torch.nn.Linear(256, 2)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(objective.parameters()), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    return model, objective, optimizer, scheduler


def _build_checkpoint(folder: Path) -> Seed:
    import torch

    from hashlearn.train.checkpoint import save_checkpoint

    model, objective, optimizer, scheduler = _checkpoint_parts()
    for _ in range(2):
        loss = objective(model(torch.randn(4, 512))).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    save_checkpoint(folder / "ckpt", model=model, objective=objective, optimizer=optimizer, scheduler=scheduler,
                    best_model_state=model.state_dict(), best_objective_state=objective.state_dict(),
                    meta={"state": {"epoch": 2, "best_epoch": 1, "best_metric": 0.5, "bad_epochs": 0, "history": []}})
    files = {f"ckpt/{name}": (folder / "ckpt" / name).read_bytes() for name in ("last.json", "last.safetensors")}
    return Seed(files, 512 * 256 * 4, {})


def _load_checkpoint(folder: Path, seed: Seed):
    from hashlearn.train.checkpoint import load_checkpoint, restore_states

    tensors, meta = load_checkpoint(folder / "ckpt")
    model, objective, optimizer, scheduler = _checkpoint_parts()
    return restore_states(tensors, meta, model=model, objective=objective, optimizer=optimizer, scheduler=scheduler)


# --- split ----------------------------------------------------------------------------------
def _build_split(folder: Path) -> Seed:
    from hashlearn.data import Dataset
    from hashlearn.data.protocols import Protocol, make_split

    labels = np.arange(70_000) % 10  # the size of Fashion-MNIST: database 69,000 int64 = 552 KB
    dataset = Dataset("fashion-like", np.zeros((70_000, 1), np.float32), labels, "vector", {}, {"test": np.arange(60_000, 70_000)})
    split = make_split(dataset, Protocol("default", 1000, 5000, 1000, query_from="test"), seed=0)
    split.save(folder / "split")
    files = {f"split/{name}": (folder / "split" / name).read_bytes() for name in ("split.json", "split.npz")}
    return Seed(files, split.database.nbytes, {})


def _load_split(folder: Path, seed: Seed):
    from hashlearn.data.protocols import Split

    return Split.load(folder / "split")


def _mutate_npz_field(data: bytes, rng) -> bytes:
    """Rewrite one member's .npy header (shape, dtype or order) to a hostile value."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
    except Exception:  # noqa: BLE001 -- a damaged archive: nothing structured to change
        return data
    name = list(members)[int(rng.integers(len(members)))]
    members[name] = _mutate_npy_header(members[name], rng)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return out.getvalue()


def _mutate_npy_header(data: bytes, rng) -> bytes:
    from numpy.lib import format as npy_format

    stream = io.BytesIO(data)
    try:
        npy_format.read_magic(stream)
        shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
    except Exception:  # noqa: BLE001
        return data
    body = data[stream.tell() :]
    header = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    key = ("descr", "fortran_order", "shape")[int(rng.integers(3))]
    hostile = {"descr": ["|O", "<U8", "V8", "<c16", [("a", "<i4")], ">i8", "<f2", "|b1"],
               "fortran_order": [True, False],
               "shape": [(2**32, 2**32), (10**12,), (0,), (-1,), (len(body) // 8 + 1,), (len(body),), (1,) * 40, (2**62, 4)]}[key]
    header[key] = hostile[int(rng.integers(len(hostile)))]
    out = io.BytesIO()
    try:
        npy_format.write_array_header_1_0(out, header)
    except Exception:  # noqa: BLE001 -- numpy refuses to write some of them; write the dict by hand
        text = repr(header).encode("latin-1") + b"\n"
        out = io.BytesIO()
        out.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text)
    return out.getvalue() + body


# --- run metadata -----------------------------------------------------------------------------
def _build_run(folder: Path) -> Seed:
    from hashlearn.runs.config import RunConfig
    from hashlearn.runs.train import train_run

    config = RunConfig()
    config.trainer.epochs = 2
    train_run(config, folder / "run")
    names = ["config.json", "history.json", "train_result.json", "trainer_config.json"]
    files = {f"run/{name}": (folder / "run" / name).read_bytes() for name in names if (folder / "run" / name).exists()}
    return Seed(files, max(len(content) for content in files.values()), {"copy_tree": folder / "run"})


def _load_run(folder: Path, seed: Seed):
    from hashlearn.runs.run import Run

    run = Run(folder / "run")
    run.load_config()
    run.load_history()
    return run.load_train_result()


# --- IDX --------------------------------------------------------------------------------------
def _idx_images() -> np.ndarray:
    from hashlearn.data.idx import read_idx

    source = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    if source.is_file():
        return read_idx(source)[:1000]  # 784 KB of real images
    return np.random.default_rng(0).integers(0, 256, size=(1000, 28, 28), dtype=np.uint8)


def _build_idx(compressed: bool) -> Callable:
    def build(folder: Path) -> Seed:
        from hashlearn.data.idx import write_idx

        images = _idx_images()
        name = "images-idx3-ubyte.gz" if compressed else "images-idx3-ubyte"
        write_idx(folder / name, images)
        labels = (np.arange(len(images)) % 10).astype(np.int32)  # an int32 file too: byte-order conversion
        write_idx(folder / (name.replace("images-idx3", "labels-idx1")), labels)
        files = {path.name: path.read_bytes() for path in folder.iterdir() if "idx" in path.name}
        return Seed(files, images.nbytes, {})

    return build


def _load_idx(folder: Path, seed: Seed):
    from hashlearn.data.idx import read_idx

    return [read_idx(folder / name) for name in sorted(seed.files)]


def _mutate_idx_header(data: bytes, rng) -> bytes:
    if len(data) < 4:
        return data
    ndim = data[3]
    choice = rng.random()
    if choice < 0.3:
        return data[:2] + bytes([int(rng.choice([0x00, 0x07, 0x08, 0x0B, 0x0E, 0xFF]))]) + data[3:]
    if choice < 0.5:
        return data[:3] + bytes([int(rng.choice([0, 1, 2, 4, 8, 255]))]) + data[4:]
    dim = int(rng.integers(max(1, ndim)))
    value = int(rng.choice([0, 1, 2**31, 2**32 - 1, 59_999, 2001, 1999, 28 * 28]))
    return data[: 4 + 4 * dim] + struct.pack(">I", value) + data[8 + 4 * dim :]


def _gz_resign(files: dict, seed: Seed) -> dict:
    return files  # recompression happens in the field mutation itself


def _fields_idx(compressed: bool) -> Callable:
    def fields(files: dict, rng, seed: Seed) -> dict:
        name = sorted(files)[int(rng.integers(len(files)))]
        data = files[name]
        if compressed:
            try:
                content = gzip.decompress(data)
            except Exception:  # noqa: BLE001
                return files
            return {**files, name: gzip.compress(_mutate_idx_header(content, rng), compresslevel=1, mtime=0)}  # re-signed: a valid gzip CRC
        return {**files, name: _mutate_idx_header(data, rng)}

    return fields


# --- CIFAR-10 python batches --------------------------------------------------------------------
class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the published CIFAR-10 batches: ``str`` and
    ``bytes`` as ``BINSTRING`` (bytes again when unpickled with ``encoding="bytes"``), memo
    entries numbered from 1, ``numpy.core`` globals, and the data bytes stored raw (Python 3's
    protocol 2 stores them as a latin-1 ``str`` passed to ``_codecs.encode``)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_binstring(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_binstring
    dispatch[str] = save_binstring

    def memoize(self, obj):
        index = len(self.memo) + 1  # cPickle's put2 numbers from 1
        self.write(self.put(index))
        self.memo[id(obj)] = index, obj

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "builtins").replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + module.encode() + b"\n" + (name or obj.__qualname__).encode() + b"\n")
        self.memoize(obj)

    dispatch[type] = save_global


def python2_pickle(value) -> bytes:
    """``value`` pickled in the layout of the published CIFAR-10 python batches."""
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(value)
    return out.getvalue()


def _cifar_batch() -> dict:
    rng = np.random.default_rng(0)
    n = 500  # 1.5 MB of images
    return {b"batch_label": b"training batch 1 of 5", b"labels": [int(x) for x in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)]}


def _build_cifar(compressed: bool) -> Callable:
    def build(folder: Path) -> Seed:
        content = python2_pickle(_cifar_batch())  # the published batches' layout (Python 2 cPickle, protocol 2)
        (folder / "data_batch_1").write_bytes(gzip.compress(content, mtime=0) if compressed else content)
        return Seed({"data_batch_1": (folder / "data_batch_1").read_bytes()}, 500 * 3072, {})

    return build


def _load_cifar(folder: Path, seed: Seed):
    from hashlearn.data.formats import read_cifar_batch

    return read_cifar_batch(folder / "data_batch_1")


_LENGTH_OPCODES = {"BINBYTES": 4, "BINSTRING": 4, "SHORT_BINSTRING": 1, "SHORT_BINBYTES": 1, "BINUNICODE": 4, "SHORT_BINUNICODE": 1,
                   "BINBYTES8": 8, "BINUNICODE8": 8, "LONG_BINPUT": 4, "BINPUT": 1, "BINGET": 1, "LONG_BINGET": 4, "BININT": 4}


def _mutate_pickle_structure(content: bytes, rng) -> bytes:
    """A length, memo index or integer field of one opcode set to a hostile value -- or the
    batch itself changed (object array, other shapes, labels out of range) and re-pickled."""
    if rng.random() < 0.5:
        batch = _cifar_batch()
        key = [b"data", b"labels", b"filenames", b"batch_label"][int(rng.integers(4))]
        replacements = {
            b"data": [np.zeros((500, 3072), dtype=object), np.zeros((500, 3073), np.uint8), np.zeros((500, 3072), np.float64),
                      np.zeros((500, 3, 32, 32), np.uint8), np.zeros((0, 3072), np.uint8), [1, 2, 3], None,
                      np.zeros(10, dtype=[("a", "<i4")])],
            b"labels": [[-1] * 500, [10] * 500, list(range(499)), ["x"] * 500, np.zeros(500, np.int64), None, [2**70] * 500],
            b"filenames": [None, 5, [None] * 500],
            b"batch_label": [None, 5, "text"],
        }[key]
        batch[key] = replacements[int(rng.integers(len(replacements)))]
        if rng.random() < 0.2:
            batch.pop(key)
        protocol = int(rng.choice([0, 2, 4, 5]))  # 0: the published layout; 2, 4, 5: Python 3's pickle
        return python2_pickle(batch) if protocol == 0 else pickle.dumps(batch, protocol=protocol)
    ops = [(op, pos) for op, _, pos in pickletools.genops(content) if op.name in _LENGTH_OPCODES]
    op, pos = ops[int(rng.integers(len(ops)))]
    width = _LENGTH_OPCODES[op.name]
    value = HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))] % 2 ** (8 * width)
    return content[: pos + 1] + value.to_bytes(width, "little") + content[pos + 1 + width :]


def _fields_cifar(compressed: bool) -> Callable:
    def fields(files: dict, rng, seed: Seed) -> dict:
        data = files["data_batch_1"]
        try:
            content = gzip.decompress(data) if compressed else data
            mutated = _mutate_pickle_structure(content, rng)
        except Exception:  # noqa: BLE001 -- already damaged
            return files
        return {"data_batch_1": gzip.compress(mutated, compresslevel=1, mtime=0) if compressed else mutated}

    return fields


# --- list files ---------------------------------------------------------------------------------
def _build_list(folder: Path) -> Seed:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(2000, 24))  # 48 KB of uint8 labels (and 2,000 paths)
    lines = [f"images/{i:05d}.jpg " + " ".join(map(str, row)) for i, row in enumerate(labels)]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    return Seed({"train.txt": (folder / "train.txt").read_bytes()}, labels.size, {})


def _load_list(folder: Path, seed: Seed):
    from hashlearn.data.formats import load_list_file

    return load_list_file(folder / "train.txt")


def _fields_list(files: dict, rng, seed: Seed) -> dict:
    lines = files["train.txt"].split(b"\n")
    index = int(rng.integers(len(lines)))
    hostile = [b"../../etc/passwd 0 1", b"/etc/shadow " + b"0 " * 24, b"~/x.jpg " + b"1 " * 24, b"a.jpg 2 " + b"0 " * 23, b"a.jpg",
               b"a.jpg " + b"1 " * 25, b"\xff\xfe\x00 " + b"0 " * 24, b"x" * 100_000 + b" " + b"0 " * 24, b"a.jpg -1" + b" 0" * 23, b""]
    lines[index] = hostile[int(rng.integers(len(hostile)))]
    return {"train.txt": b"\n".join(lines)}


# --- feature files ------------------------------------------------------------------------------
def _build_features(folder: Path) -> Seed:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 128)).astype(np.float32)  # 1 MB
    np.save(folder / "features.npy", features)
    np.savez(folder / "features.npz", features=features, labels=rng.integers(0, 10, 2000))
    return Seed({name: (folder / name).read_bytes() for name in ("features.npy", "features.npz")}, features.nbytes, {})


def _load_features(folder: Path, seed: Seed):
    from hashlearn.data.formats import load_features_file

    # one file at a time, as a user loads one: the first result is released before the second load
    shapes = [load_features_file(folder / "features.npy").data.shape]
    return shapes + [load_features_file(folder / "features.npz").data.shape]


def _fields_features(files: dict, rng, seed: Seed) -> dict:
    if rng.random() < 0.5:
        return {**files, "features.npy": _mutate_npy_header(files["features.npy"], rng)}
    return {**files, "features.npz": _mutate_npz_field(files["features.npz"], rng)}


# --- the feature cache ---------------------------------------------------------------------------
def _cache_encoder():
    from hashlearn.data.encoders import FrozenEncoder

    class Moments(FrozenEncoder):
        name = "moments"
        output_dim = 256

        def check_inputs(self, inputs):
            return np.asarray(inputs, dtype=np.float32)

        def encode_batch(self, batch):
            flat = batch.reshape(len(batch), -1)
            return np.repeat(flat.mean(1, keepdims=True), self.output_dim, axis=1) + np.arange(self.output_dim, dtype=np.float32)

    return Moments()


def _cache_inputs() -> np.ndarray:
    return np.random.default_rng(0).random((1024, 8, 8)).astype(np.float32)


def _build_cache(folder: Path) -> Seed:
    from hashlearn.data.features import extract_features

    inputs = _cache_inputs()
    reference = extract_features(inputs, _cache_encoder(), cache_dir=folder / "cache")  # 1 MB of features
    # and an interrupted run's progress folder for a second input (chunks of 128 rows)
    extract_features(inputs[:512] * 2, _cache_encoder(), cache_dir=folder / "progress", batch_size=128, checkpoint_s=0)
    entry = next((folder / "progress" / "moments").glob("*.npy"))
    partial = entry.with_name(entry.stem + ".partial")
    partial.mkdir()
    for start in range(0, 384, 128):
        for suffix in (".npy", ".json"):
            chunk = partial / f"{start:012d}-{start + 128:012d}{suffix}"
            if suffix == ".npy":
                buffer = io.BytesIO()
                np.save(buffer, reference[start : start + 128] * 0 + np.asarray(extract_features(
                    inputs[start : start + 128] * 2, _cache_encoder(), use_cache=False)), allow_pickle=False)
                chunk.write_bytes(buffer.getvalue())
            else:
                digest = hashlib.sha256((partial / f"{start:012d}-{start + 128:012d}.npy").read_bytes()).hexdigest()
                chunk.write_text(json.dumps({"npy_sha256": digest}))
    entry.unlink()
    entry.with_suffix(".json").unlink()
    files = {}
    for path in sorted((folder / "cache").rglob("*")) + sorted((folder / "progress").rglob("*")):
        if path.is_file():
            files[str(path.relative_to(folder))] = path.read_bytes()
    return Seed(files, reference.nbytes, {"reference": reference, "inputs": inputs})


def _load_cache(folder: Path, seed: Seed):
    from hashlearn.data.features import extract_features

    # one extraction at a time, as a user runs one: the first result is checked and released before the second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = extract_features(seed.context["inputs"], _cache_encoder(), cache_dir=folder / "cache")
        resigned = "resign" in seed.context.get("kind", "") or seed.context.get("kind") == "field"
        if not np.array_equal(got, seed.context["reference"]) and not resigned:  # a re-signed entry is a valid entry
            raise AssertionError("the cache returned wrong features from a damaged entry")
        del got
        second = extract_features(seed.context["inputs"][:512] * 2, _cache_encoder(), cache_dir=folder / "progress", batch_size=128)
    if second.shape != (512, 256):
        raise AssertionError("the resumed extraction returned a wrong shape")
    return second.shape


def _resign_cache(files: dict, seed: Seed) -> dict:
    out = dict(files)
    for name, content in files.items():
        if name.endswith(".npy") and name[:-4] + ".json" in files:
            try:
                sidecar = json.loads(files[name[:-4] + ".json"])
                sidecar["npy_sha256"] = hashlib.sha256(content).hexdigest()
                out[name[:-4] + ".json"] = json.dumps(sidecar).encode()
            except (ValueError, TypeError):
                pass
    return out


def _fields_cache(files: dict, rng, seed: Seed) -> dict:
    names = sorted(files)
    name = names[int(rng.integers(len(names)))]
    choice = rng.random()
    if choice < 0.2:  # a stray file next to the entries
        folder = str(Path(name).parent)
        stray = ["notes.txt", "x-y.npy", "1-2-3.npy", "000000000000-000000000999.npy", "zz.json", "000000000128-000000000000.npy"]
        return {**files, f"{folder}/{stray[int(rng.integers(len(stray)))]}": bytes(rng.integers(0, 256, 64, dtype=np.uint8))}
    if name.endswith(".npy"):
        return _resign_cache({**files, name: _mutate_npy_header(files[name], rng)}, seed)
    return {**files, name: _mutate_json_field(files[name], rng)}


FORMATS = {
    "hlx": Format("hlx", ".hlx index files (flat and two-stage MIH+flat), loaded mapped and not, then searched",
                  _build_hlx, _load_hlx, _resign_hlx, _fields_hlx),
    "sharded": Format("sharded", ".hlx files of sharded indexes (round-robin Flat shards; substring-partitioned MIH shards), "
                      "loaded onto a running dask cluster, mapped and not, then searched (the search's memory reported apart)",
                      _build_sharded, _load_sharded, _resign_hlx, _fields_hlx, use=_search_sharded),
    "model": Format("model", "model directory: model.json + model.safetensors (HashModel)", _build_model, _load_model,
                    _resign_companion("model/model.json", "model/model.safetensors"),
                    _fields_pair("model/model.json", "model/model.safetensors", _mutate_safetensors_field)),
    "checkpoint": Format("checkpoint", "training checkpoint: last.json + last.safetensors, restored into a model and Adam",
                         _build_checkpoint, _load_checkpoint, _resign_companion("ckpt/last.json", "ckpt/last.safetensors"),
                         _fields_pair("ckpt/last.json", "ckpt/last.safetensors", _mutate_safetensors_field)),
    "split": Format("split", "protocol split: split.json + split.npz", _build_split, _load_split,
                    _resign_companion("split/split.json", "split/split.npz"),
                    _fields_pair("split/split.json", "split/split.npz", _mutate_npz_field)),
    "run": Format("run", "run metadata JSON (config, history, train_result) of a run made by train_run", _build_run, _load_run,
                  None, lambda files, rng, seed: _mutate_one_json(files, rng)),
    "idx": Format("idx", "IDX files (uint8 images, int32 labels)", _build_idx(False), _load_idx, None, _fields_idx(False)),
    "idx.gz": Format("idx.gz", "gzip-compressed IDX files", _build_idx(True), _load_idx, _gz_resign, _fields_idx(True)),
    "cifar": Format("cifar", "CIFAR-10 python batch (protocol-2 pickle)", _build_cifar(False), _load_cifar, None, _fields_cifar(False)),
    "cifar.gz": Format("cifar.gz", "gzip-compressed CIFAR-10 batch", _build_cifar(True), _load_cifar, None, _fields_cifar(True)),
    "list": Format("list", "image list file (path + 24 multi-hot labels per line)", _build_list, _load_list, None, _fields_list),
    "features": Format("features", "feature files (.npy and .npz with labels)", _build_features, _load_features, None, _fields_features),
    "cache": Format("cache", "feature cache: entry + sidecar, and an interrupted run's progress chunks (must never raise)",
                    _build_cache, _load_cache, _resign_cache, _fields_cache),
}


def _mutate_one_json(files: dict, rng) -> dict:
    name = sorted(files)[int(rng.integers(len(files)))]
    return {**files, name: _mutate_json_field(files[name], rng)}


# --------------------------------------------------------------------------- mutations
def mutate(fmt: Format, seed: Seed, rng: np.random.Generator) -> tuple[str, dict]:
    """One mutation of the seed's files: ``(kind, files)``."""
    files = dict(seed.files)
    kind = MUTATIONS[int(rng.integers(len(MUTATIONS)))] if fmt.fields is not None else MUTATIONS[int(rng.integers(4))]
    if kind == "field":
        return kind, fmt.fields(files, rng, seed)
    names = sorted(files)
    name = names[int(rng.integers(len(names)))]
    data = bytearray(files[name])
    if kind == "truncate":
        cut = int(rng.integers(0, len(data))) if len(data) and rng.random() < 0.7 else int(rng.integers(0, min(len(data), 256) + 1))
        data = data[:cut]
    elif kind == "bitflip" and data:
        hot = rng.random() < 0.5  # half of the flips land in the first 512 bytes: the headers
        for _ in range(int(rng.integers(1, 9))):
            position = int(rng.integers(min(len(data), 512) if hot else len(data)))
            data[position] ^= 1 << int(rng.integers(8))
    elif kind == "bytes" and data:
        position = int(rng.integers(min(len(data), 1024) if rng.random() < 0.5 else len(data)))
        count = int(rng.integers(1, 9))
        value = [0x00, 0xFF, None][int(rng.integers(3))]
        fill = bytes([value] * count) if value is not None else bytes(rng.integers(0, 256, count, dtype=np.uint8))
        data[position : position + count] = fill
    elif kind == "insert":
        position = int(rng.integers(len(data) + 1))
        if rng.random() < 0.5 and data:
            start = int(rng.integers(len(data)))
            piece = bytes(data[start : start + int(rng.integers(1, 4096))])
        else:
            piece = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        data[position:position] = piece
    files[name] = bytes(data)
    if fmt.resign is not None and rng.random() < 0.5:
        kind += "+resign"
        files = fmt.resign(files, seed)
    return kind, files


# --------------------------------------------------------------------------- worker
class LoadTimeout(Exception):
    pass


def content_nbytes(files: dict) -> int:
    """The bytes the files hold: a gzip file counts what it inflates to (up to its first
    error, at most :data:`INFLATE_LIMIT`); the loaders read that much of it."""
    total = 0
    for content in files.values():
        if content[:2] != b"\x1f\x8b":
            total += len(content)
            continue
        inflater, rest, inflated = zlib.decompressobj(wbits=31), content, 0
        try:
            while rest and inflated < INFLATE_LIMIT:
                inflated += len(inflater.decompress(rest, 1 << 20))
                if inflater.eof:  # another gzip member may follow
                    rest, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
                else:
                    rest = inflater.unconsumed_tail
        except zlib.error:  # damaged: what inflated before the damage is what a loader can read
            pass
        total += max(inflated, len(content))
    return total


def justified_nbytes(seed: Seed, files: dict) -> int:
    """What a load of ``files`` may use (the ratio's denominator): the largest legitimate array,
    the files' content (inflated), or :data:`FLOOR_NBYTES`, whichever is largest."""
    return max(seed.largest_array_nbytes, content_nbytes(files), FLOOR_NBYTES)


def _warm_torch_errors() -> None:
    """Raise one torch error: torch symbolizes its C++ stack once per process on the first
    error (3.3 MiB resident then, 8 KB after), a one-off like an import, paid at warm-up."""
    import torch

    try:
        torch.empty(-1)
    except RuntimeError:
        pass


def _status_bytes(*keys: str) -> list[int]:
    """Fields of /proc/self/status in bytes (VmSize, VmRSS, VmHWM, ...)."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in keys:
                found[key] = int(line.split()[1]) * 1024
    return [found.get(key, 0) for key in keys]


def _vm_bytes() -> int:
    return _status_bytes("VmSize")[0]


def _reset_peak_rss() -> bool:
    """Reset the process's resident high-water mark (VmHWM) to its current size (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _write_files(folder: Path, files: dict, previous: dict) -> None:
    for name in previous:
        if name not in files:
            (folder / name).unlink(missing_ok=True)
    for name, content in files.items():
        if name in previous and previous[name] is content:
            continue  # unchanged since the last load
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _reset_cache_tree(folder: Path, seed: Seed) -> None:
    for sub in ("cache", "progress"):
        shutil.rmtree(folder / sub, ignore_errors=True)


def _measured_load(fmt: Format, folder: Path, seed: Seed, trace: bool, can_reset: bool) -> tuple[str, BaseException | None, int, int, bool, int, int]:
    """One load: ``(outcome, error, resident growth, traced peak, imported a module, peak of fmt.use,
    file-backed resident growth)``.

    With ``fmt.use`` (e.g. searching a loaded index), the load's peaks are taken when the
    load returns and the use's peak (the larger of resident growth and traced) apart. The
    file-backed growth (``RssFile`` at the end of the load over its start: mapped files, and
    library code faulted in) is part of the resident growth; it is recorded to tell pages of
    files from memory the load allocated."""
    n_modules, failure, used = len(sys.modules), None, [0]
    if can_reset:
        _reset_peak_rss()
    rss_before, file_before = _status_bytes("VmRSS", "RssFile")
    peaks = None
    if trace:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_PROF, PER_LOAD_SECONDS)  # CPU seconds: a busy machine's waits are not a hang
    try:
        loaded = fmt.load(folder, seed)
        if fmt.use is not None:
            peaks = (max(0, _status_bytes("VmHWM")[0] - rss_before) if can_reset else 0,
                     tracemalloc.get_traced_memory()[1] if trace else 0, max(0, _status_bytes("RssFile")[0] - file_before))
            _use_measured(fmt, loaded, seed, trace, can_reset, used)
        outcome = "ok"
    except BaseException as error:  # noqa: BLE001 -- counting every outcome is the point
        if isinstance(error, KeyboardInterrupt):
            raise
        outcome, failure = type(error).__name__, error
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        traced = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    grown = max(0, _status_bytes("VmHWM")[0] - rss_before) if can_reset else 0
    file_grown = max(0, _status_bytes("RssFile")[0] - file_before)
    if peaks is not None:  # the load returned: its own peaks, taken before the use
        grown, traced, file_grown = peaks
    return outcome, failure, grown, traced, len(sys.modules) != n_modules, used[0], file_grown


def _use_measured(fmt: Format, loaded, seed: Seed, trace: bool, can_reset: bool, used: list) -> None:
    """Run ``fmt.use`` on what the load returned; ``used[0]`` gets its peak (resident or traced)."""
    if can_reset:
        _reset_peak_rss()
    rss_before = _status_bytes("VmRSS")[0]
    if trace:
        tracemalloc.reset_peak()
    try:
        fmt.use(loaded, seed)
    finally:
        used[0] = max(max(0, _status_bytes("VmHWM")[0] - rss_before) if can_reset else 0,
                      tracemalloc.get_traced_memory()[1] if trace else 0)


def worker(format_name: str, start: int, stop: int, report_every: int = 250, trace_every: int = 4, repeat: int = 1,
           remeasure: bool = True):
    """Run mutations ``start..stop`` of one format; yields a part (counts, peaks, examples)
    after every ``report_every`` mutations, so an interrupted run keeps what it did.

    Every load's peak resident growth is measured (the high-water mark is reset before
    it; this covers numpy, Python and torch memory); every ``trace_every``-th load also
    runs under ``tracemalloc``. With ``remeasure``, a load over :data:`REMEASURE_OVER` is
    loaded again at once from the same files (same mode, same tracing) and listed in the
    part's ``over_2x`` with both measurements; the driver adds a fresh worker's (see
    :func:`judged_ratio`).
    """
    import torch

    torch.set_num_threads(1)
    from hashlearn.index import set_num_threads

    set_num_threads(1)
    fmt = FORMATS[format_name]
    work, seed = Path(tempfile.mkdtemp(prefix=f"hashlearn-fuzz-{format_name}-")), None
    try:
        seed_dir = work / "seed"
        seed_dir.mkdir()
        seed = fmt.build(seed_dir)
        load_dir = work / "load"
        if format_name == "run":
            shutil.copytree(seed_dir / "run", load_dir / "run")
        else:
            load_dir.mkdir()
        _write_files(load_dir, seed.files, {})
        for _ in range(4):  # warm up: lazy imports, compiled kernels, allocator arenas
            loaded = fmt.load(load_dir, seed)
            if fmt.use is not None:
                fmt.use(loaded, seed)
        _warm_torch_errors()
        can_reset = _reset_peak_rss()
        legit_peak, legit_rss, legit_use = 0, 0, 0
        for _ in range(3):  # the legitimate files' peaks: what a mutation is compared with
            _, failure, grown, traced, _, use_peak, _ = _measured_load(fmt, load_dir, seed, True, can_reset)
            if failure is not None:
                raise failure
            legit_peak, legit_rss, legit_use = max(legit_peak, traced), max(legit_rss, grown), max(legit_use, use_peak)
        limit = _vm_bytes() + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        def alarm(signum, frame):
            raise LoadTimeout(f"a load used more than {PER_LOAD_SECONDS} s of CPU time")

        signal.signal(signal.SIGPROF, alarm)
        written = dict(seed.files)
        for block in range(start, stop, report_every):
            part = {"start": block, "stop": min(stop, block + report_every), "counts": {}, "by_kind": {}, "examples": {},
                    "peak_traced": 0, "traced_loads": 0, "peak_rss": 0, "peak_use": 0, "legit_use": legit_use, "worst": None, "worst_ratio": 0.0, "loads_that_imported": 0,
                    "largest_array_nbytes": seed.largest_array_nbytes, "legit_peak": legit_peak, "legit_rss": legit_rss,
                    "address_space_cap": limit, "rss_measured": can_reset, "seconds": 0.0, "ratio_definition": RATIO_DEFINITION,
                    "seed_files": {name: len(content) for name, content in seed.files.items()},
                    "remeasure_rule": REMEASURE_RULE if remeasure else 0, "over_2x": [], "judged_worst": None, "judged_worst_ratio": 0.0}
            began = time.time()
            for index in range(part["start"], part["stop"]):
                rng = np.random.default_rng([_format_seed(format_name), index])  # mutation i is the same on every run
                kind, files = mutate(fmt, seed, rng)
                seed.context["kind"] = kind
                if format_name == "cache":
                    _reset_cache_tree(load_dir, seed)
                    written = {}
                _write_files(load_dir, files, written)
                written = files
                trace = index % trace_every == 0
                for _ in range(repeat):  # --recheck: the same files loaded again; the last load is the one recorded
                    outcome, failure, grown, traced, imported, use_peak, file_grown = _measured_load(fmt, load_dir, seed, trace, can_reset)
                if imported:  # a load that imported a module pays a one-off cost: not counted
                    part["loads_that_imported"] += 1
                else:
                    part["peak_rss"] = max(part["peak_rss"], grown)
                    part["peak_traced"] = max(part["peak_traced"], traced)
                    part["peak_use"] = max(part["peak_use"], use_peak)
                    part["traced_loads"] += trace
                    # what the mutated files justify: see justified_nbytes
                    justified = justified_nbytes(seed, files)
                    ratio = max(grown, traced) / justified
                    entry = {"mutation": index, "kind": kind, "outcome": outcome, "rss": grown, "traced": traced, "rss_file": file_grown,
                             "files_nbytes": sum(len(content) for content in files.values()), "justified_nbytes": justified}
                    if ratio > part["worst_ratio"]:  # the first measurement, as it came
                        part["worst_ratio"], part["worst"] = ratio, entry
                    if remeasure and ratio > REMEASURE_OVER:
                        part["over_2x"].append({**entry, "first": _measurement(grown, traced, file_grown, justified),
                                                "same_worker": _measure_again(fmt, format_name, load_dir, seed, files, trace, can_reset)})
                    elif ratio > part["judged_worst_ratio"]:  # within 2x: judged by its one measurement
                        part["judged_worst_ratio"], part["judged_worst"] = ratio, entry
                if os.environ.get("HASHLEARN_FUZZ_DEBUG") and max(grown, traced) > 2 * seed.largest_array_nbytes:
                    print(f"mutation {index} ({kind}): rss {grown} traced {traced} -> {outcome}", file=sys.stderr)
                if failure is not None and outcome not in TYPED and outcome not in part["examples"]:
                    part["examples"][outcome] = f"mutation {index} ({kind}): " + "".join(traceback.format_exception(failure))[-3000:]
                failure = None
                part["counts"][outcome] = part["counts"].get(outcome, 0) + 1
                by_kind = part["by_kind"].setdefault(kind.split("+")[0], {})
                by_kind[outcome] = by_kind.get(outcome, 0) + 1
            part["seconds"] = round(time.time() - began, 2)
            yield part
        _write_files(load_dir, seed.files, written)
    finally:
        if seed is not None and "close" in seed.context:
            seed.context["close"]()  # e.g. the dask cluster the sharded seed started
        shutil.rmtree(work, ignore_errors=True)


def _measurement(grown: int, traced: int, file_grown: int, justified: int) -> dict:
    return {"rss": grown, "traced": traced, "rss_file": file_grown, "ratio": round(max(grown, traced) / justified, 4)}


def _measure_again(fmt: Format, format_name: str, load_dir: Path, seed: Seed, files: dict, trace: bool, can_reset: bool) -> dict | None:
    """The same mutated files loaded again in this worker, in the same mode (mapped or read) and
    tracing as the load before; ``None`` if this load imported a module."""
    if "calls" in seed.context:
        seed.context["calls"] -= 1  # the loader alternates mapped and read loads by this count: the same mode again
    if format_name == "cache":
        _reset_cache_tree(load_dir, seed)  # the load before rewrote the cache: start from the mutated files again
    _write_files(load_dir, files, {})
    _, _, grown, traced, imported, _, file_grown = _measured_load(fmt, load_dir, seed, trace, can_reset)
    return None if imported else _measurement(grown, traced, file_grown, justified_nbytes(seed, files))


def judged_ratio(first: float, same_worker: float | None, fresh_worker: float | None) -> float:
    """The ratio a load over :data:`REMEASURE_OVER` is judged by: the median of its three
    measurements (the first; the same files again at once in the same worker; a fresh
    worker's first load of them). A peak counts when either re-measurement confirms it, so a
    one-off that every new process pays (the fresh worker) counts as much as a per-load cost
    (the same worker); a spike neither shows again does not. A missing measurement (a load
    that imported a module, a worker that failed) counts as infinite: unconfirmed is not excused."""
    values = sorted(float("inf") if value is None else value for value in (first, same_worker, fresh_worker))
    return values[1]


def _worker_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "MALLOC_MMAP_THRESHOLD_": "131072"}


def _fresh_worker_ratio(name: str, index: int, trace_every: int) -> dict | None:
    """Mutation ``index`` loaded once by a fresh worker (warmed up as every worker is), traced
    as the run traced it; its measurement, or ``None`` if the load imported a module or the worker failed."""
    command = [sys.executable, __file__, "--worker", name, str(index), str(index + 1), "--report-every", "1",
               "--trace-every", str(trace_every), "--no-remeasure"]
    lines = subprocess.run(command, capture_output=True, text=True, env=_worker_env()).stdout.splitlines()
    part = next((json.loads(line) for line in lines if line.startswith("{")), None)
    if not part or not part.get("worst"):
        return None
    worst = part["worst"]
    return _measurement(worst["rss"], worst["traced"], worst.get("rss_file", 0), worst["justified_nbytes"])


def remeasure_fresh(name: str, part: dict, trace_every: int) -> None:
    """Complete each of a part's loads over 2x with a fresh worker's measurement and its judged ratio;
    the part's judged worst becomes the largest judged ratio (loads within 2x keep their one measurement)."""
    for entry in part.get("over_2x", []):
        entry["fresh_worker"] = _fresh_worker_ratio(name, entry["mutation"], trace_every)
        entry["judged"] = round(judged_ratio(entry["first"]["ratio"], (entry["same_worker"] or {}).get("ratio"),
                                             (entry["fresh_worker"] or {}).get("ratio")), 4)
        if entry["judged"] > part.get("judged_worst_ratio", 0.0):
            part["judged_worst_ratio"] = entry["judged"]
            part["judged_worst"] = {key: entry[key] for key in ("mutation", "kind", "outcome", "files_nbytes", "justified_nbytes")}
        print(f"{name}: mutation {entry['mutation']} first {entry['first']['ratio']:.2f}, same worker "
              f"{(entry['same_worker'] or {}).get('ratio')}, fresh worker {(entry['fresh_worker'] or {}).get('ratio')}: "
              f"judged {entry['judged']:.2f}", flush=True)


def recheck(results: dict, names: list[str]) -> None:
    """Re-run the worst load of each format whose ratio is over 2x in a fresh worker (warmed up
    as usual), once and as the third load of the same files: a peak that a long run saw but
    that does not come back, or that is gone by the third load (a code path's first use:
    regex caches, torch's error machinery), is told apart from a per-load cost."""
    env = _worker_env()
    for name in names:
        total = results["formats"].get(name, {})
        worst = total.get("worst")
        if not worst or total.get("ratio_definition") != RATIO_DEFINITION or total.get("worst_ratio", 0) <= 2:
            continue
        index, ratios = worst["mutation"], {}
        for label, repeat in (("fresh", 1), ("third", 3)):
            command = [sys.executable, __file__, "--worker", name, str(index), str(index + 1), "--report-every", "1",
                       "--trace-every", "1", "--repeat", str(repeat), "--no-remeasure"]
            lines = subprocess.run(command, capture_output=True, text=True, env=env).stdout.splitlines()
            part = next((json.loads(line) for line in lines if line.startswith("{")), None)
            ratios[label] = round(part["worst_ratio"], 3) if part else None
        total["recheck"] = {"mutation": index, **ratios}
        print(f"{name}: mutation {index}: recorded {total['worst_ratio']:.2f}, fresh worker {ratios['fresh']}, third load {ratios['third']}", flush=True)


def _format_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


# --------------------------------------------------------------------------- driver and report
def _load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"formats": {}}


def _merge(total: dict, part: dict) -> None:
    # the re-measurement rule holds for a format only if every part of it ran under it
    rule = part.get("remeasure_rule", 0)
    total["remeasure_rule"] = min(total.get("remeasure_rule", 0), rule) if total.get("done") else rule
    total["done"] = total.get("done", 0) + part["stop"] - part["start"]
    total.setdefault("ranges", []).append([part["start"], part["stop"]])
    for outcome, count in part["counts"].items():
        total.setdefault("counts", {})[outcome] = total.get("counts", {}).get(outcome, 0) + count
    for kind, counts in part["by_kind"].items():
        kinds = total.setdefault("by_kind", {}).setdefault(kind, {})
        for outcome, count in counts.items():
            kinds[outcome] = kinds.get(outcome, 0) + count
    for outcome, text in part["examples"].items():
        total.setdefault("examples", {}).setdefault(outcome, text)
    for key in ("peak_traced", "peak_rss", "peak_use"):
        total[key] = max(total.get(key, 0), part.get(key, 0))
    for key in ("traced_loads", "loads_that_imported", "seconds"):
        total[key] = round(total.get(key, 0) + part.get(key, 0), 2)
    if part.get("worst") and part["worst_ratio"] > total.get("worst_ratio", 0):
        total["worst_ratio"], total["worst"] = part["worst_ratio"], part["worst"]
    if rule:
        total.setdefault("over_2x", []).extend(part.get("over_2x", []))
        if part.get("judged_worst") and part["judged_worst_ratio"] > total.get("judged_worst_ratio", 0):
            total["judged_worst_ratio"], total["judged_worst"] = part["judged_worst_ratio"], part["judged_worst"]
    for key in ("largest_array_nbytes", "address_space_cap", "seed_files", "legit_peak", "legit_rss", "rss_measured", "ratio_definition",
                "legit_use"):
        if key in part:
            total[key] = part[key]


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def _recheck_text(total: dict) -> str:
    again = total.get("recheck")
    if not again or again.get("mutation") != total.get("worst", {}).get("mutation"):
        return ""
    return f"{again['fresh']:.2f} / {again['third']:.2f}" if again["fresh"] is not None and again["third"] is not None else "failed"


def worst_justified_ratio(total: dict) -> float:
    """A format's worst peak over what its files justify (see :func:`justified_nbytes`); for
    results recorded before that definition, an upper bound of it (see the report's notes)."""
    if total.get("ratio_definition") == RATIO_DEFINITION:
        return total.get("worst_ratio", 0.0)
    peak = max(total.get("peak_rss", 0), total.get("peak_traced", 0))
    return min(total.get("worst_ratio", 0.0), peak / max(total["largest_array_nbytes"], FLOOR_NBYTES))


def judged_worst(total: dict) -> float:
    """A format's worst ratio under the re-measurement rule (:func:`judged_ratio` for each load
    over 2x, the one measurement for the others). A format fuzzed before the rule is judged by
    its first measurements (:func:`worst_justified_ratio`): where those are all within 2x the rule
    would not have measured anything again, so the two agree."""
    if total.get("remeasure_rule") == REMEASURE_RULE and total.get("ratio_definition") == RATIO_DEFINITION:
        return total.get("judged_worst_ratio", 0.0)
    return worst_justified_ratio(total)


def _judged_text(total: dict) -> str:
    judged = total.get("judged_worst")
    if total.get("remeasure_rule") != REMEASURE_RULE or not judged:
        return "(before the rule)"
    return f"{judged['mutation']} ({judged_worst(total):.2f})"


def _measured_text(measurement: dict | None) -> str:
    if measurement is None:
        return "none (imported a module / failed)"
    return f"{measurement['ratio']:.2f} ({_mib(measurement['rss'])} / {_mib(measurement['traced'])} / {_mib(measurement.get('rss_file', 0))})"


def write_report(results: dict, json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    target = results.get("target", 10_000)
    lines = [
        "# Fuzzing every loader (issue 12)",
        "",
        f"`{results.get('command', 'python benchmarks/fuzz.py')}` on {results.get('machine', '?')}; "
        f"load average during the run {results.get('load_average', '?')}. Target: {target:,} mutations per format. "
        f"Each load ran in a worker process under an address-space cap (`RLIMIT_AS` = the worker's size after warm-up + "
        f"{ADDRESS_SPACE_HEADROOM >> 30} GiB) and a {PER_LOAD_SECONDS} s CPU-time alarm (`ITIMER_PROF`; wall time on a shared machine is not a hang). Mutations: truncation, 1-8 bit flips, "
        "overwritten bytes, inserted bytes, and header fields set to hostile values; half of the byte mutations and all field "
        "mutations re-signed (checksums recomputed, gzip recompressed) so that the structure checks, not the checksums, must "
        "catch them. Mutation *i* of a format is the same on every run (its random generator is seeded by the format and *i*).",
        "",
        "Typed outcomes: `CorruptFileError` (content), `FileNotFoundError` / `PermissionError` / `IsADirectoryError` "
        "(path); `ok` = the mutated file still loaded (a flipped bit in a weight, whitespace, a re-signed change the "
        "format allows). **Escapes** are every other exception (for the cache: any exception or a wrong result).",
        "",
    ] + [f"> {note}" for note in results.get("notes", [])] + ([""] if results.get("notes") else []) + [
        "| format | mutations | ok | CorruptFileError | other typed | escapes | largest legit array MiB | legit load peak MiB "
        "(resident / traced) | legit x largest array | mutated load peak MiB (resident / traced) | x largest array | "
        "worst x what the files justify (first measurement) | loads over 2x (first measurement) / still over 2x judged | "
        "**judged worst x what the files justify** | within 2x (judged) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, total in results["formats"].items():
        if not total.get("done"):
            continue
        counts = total.get("counts", {})
        escapes = {k: v for k, v in counts.items() if k not in TYPED and k != "ok"}
        other = sum(v for k, v in counts.items() if k in TYPED and k != "CorruptFileError")
        largest = total["largest_array_nbytes"]
        peak = max(total.get("peak_rss", 0), total.get("peak_traced", 0))
        legit = max(total.get("legit_rss", 0), total.get("legit_peak", 0))
        worst, marker = worst_justified_ratio(total), "" if total.get("ratio_definition") == RATIO_DEFINITION else " †"
        judged, ruled = judged_worst(total), total.get("remeasure_rule") == REMEASURE_RULE
        over = total.get("over_2x", [])
        over_text = f"{len(over)} / {sum(entry.get('judged', float('inf')) > REMEASURE_OVER for entry in over)}" if ruled else "(before the rule)"
        lines.append(
            f"| {name} | {total.get('done', 0)} | {counts.get('ok', 0)} | {counts.get('CorruptFileError', 0)} | {other} | "
            f"{sum(escapes.values())}{' (' + ', '.join(f'{k}: {v}' for k, v in escapes.items()) + ')' if escapes else ''} | "
            f"{_mib(largest)} | {_mib(total.get('legit_rss', 0))} / {_mib(total.get('legit_peak', 0))} | {legit / largest:.2f} | "
            f"{_mib(total.get('peak_rss', 0))} / {_mib(total.get('peak_traced', 0))} | {peak / largest:.2f} | "
            f"{worst:.2f}{marker} | {over_text} | **{judged:.2f}**{marker}{'' if ruled else ' ‡'} | {'yes' if judged <= 2 else 'no'} |"
        )
    lines += ["", "Where each format's worst ratio came from (the load with the largest peak over what its files justify):", "",
              "| format | mutation | kind | outcome | resident MiB | traced MiB | mutated files MiB (on disk) | justified MiB | traced loads | seconds | "
              "re-run alone: x justified, fresh worker / third load | judged worst: mutation (x justified) |",
              "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, total in results["formats"].items():
        worst = total.get("worst")
        if worst:
            justified = _mib(worst["justified_nbytes"]) if "justified_nbytes" in worst else "(old: files)"
            lines.append(f"| {name} | {worst['mutation']} | {worst['kind']} | {worst['outcome']} | {_mib(worst['rss'])} | "
                         f"{_mib(worst['traced'])} | {_mib(worst['files_nbytes'])} | {justified} | {total.get('traced_loads', 0)} | "
                         f"{total.get('seconds', 0):.0f} | {_recheck_text(total)} | {_judged_text(total)} |")
    over_rows = [(name, entry) for name, total in results["formats"].items() for entry in total.get("over_2x", [])]
    if over_rows:
        lines += ["", "Every load over 2x on its first measurement, measured twice more (ratio, then resident / traced / file-backed "
                  "resident MiB): the same files again at once in the same worker, and a fresh worker's first load of them; judged "
                  "by the median of the three:", "",
                  "| format | mutation | kind | outcome | justified MiB | first | same worker | fresh worker | judged | over 2x judged |",
                  "| --- | ---: | --- | --- | ---: | --- | --- | --- | ---: | --- |"]
        for name, entry in over_rows:
            judged = entry.get("judged")
            lines.append(f"| {name} | {entry['mutation']} | {entry['kind']} | {entry['outcome']} | {_mib(entry['justified_nbytes'])} | "
                         f"{_measured_text(entry['first'])} | {_measured_text(entry['same_worker'])} | "
                         f"{_measured_text(entry.get('fresh_worker'))} | {'' if judged is None else f'{judged:.2f}'} | "
                         f"{'yes' if judged is None or judged > REMEASURE_OVER else 'no'} |")
    used = {name: total for name, total in results["formats"].items() if total.get("legit_use")}
    if used:
        lines += ["", "What a format does with the loaded result, measured apart from the load (its errors are counted with "
                  "the load's above):", "", "| format | what | legit peak MiB | mutated peak MiB | x largest array |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for name, total in used.items():
            what = FORMATS[name].use.__doc__.split(";")[0].strip() if name in FORMATS and FORMATS[name].use else "use"
            lines.append(f"| {name} | {what} | {_mib(total['legit_use'])} | {_mib(total.get('peak_use', 0))} | "
                         f"{total.get('peak_use', 0) / total['largest_array_nbytes']:.2f} |")
    lines += ["", "Outcomes by mutation kind:", "", "| format | kind | outcomes |", "| --- | --- | --- |"]
    for name, total in results["formats"].items():
        for kind, counts in sorted(total.get("by_kind", {}).items()):
            lines.append(f"| {name} | {kind} | {', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))} |")
    lines += ["", "Formats:", ""] + [f"- `{name}`: {FORMATS[name].description}" for name in results["formats"] if name in FORMATS]
    lines += ["", "*Resident* peak: the rise of the worker's resident memory during one load (its high-water mark is reset "
              "before each load through `/proc/self/clear_refs`; numpy, Python and torch memory alike; the workers run with "
              "`MALLOC_MMAP_THRESHOLD_=131072`, so large buffers are mapped and returned at once and each load's allocations "
              "show). *Traced* peak: `tracemalloc`'s peak (numpy buffers and Python objects, not torch tensors), on every "
              f"{results.get('trace_every', 4)}th load. Both are the largest over the loads (loads that imported a module are "
              "left out, and each worker raises one torch error during its warm-up: one-off costs -- torch symbolizes its C++ "
              "stack on a process's first error, 3.3 MiB resident once, 8 KB after). *Legit*: the same for the unmodified seed "
              "files (three loads after four warm-up loads); *legit x largest array* is that peak over the seed's largest "
              "array, with no floor: a copy a legitimate load makes shows there. *x largest array*: the larger mutated peak "
              "over that array, with no allowance for a mutation that makes the file bigger.",
              "",
              "**The ratio the 2x target is judged by** (*worst x what the files justify*): the largest, over the mutated "
              "loads, of the load's peak (resident or traced, whichever is larger) divided by the largest of (1) the seed's "
              "largest legitimate array, (2) the bytes the mutated files hold -- on disk, and for a gzip file what it "
              "inflates to (up to its first error), since a loader must read that much and a re-pickled batch of float64 "
              "images legitimately holds a bigger array -- and (3) a floor of "
              f"{FLOOR_NBYTES >> 20} MiB. The floor is there because a load of a few KB of JSON (a run's metadata holds no "
              "array at all) costs a constant of Python objects and interpreter memory; it decides the ratio only where the "
              "seed's arrays and files are under 1 MiB (model, split, list, run, idx, idx.gz), and for those the *legit x largest "
              "array* column shows the unfloored legitimate load. Formats marked † were fuzzed before this definition "
              "(their loaders did not change since): their ratio is min(the old ratio -- peak over max(largest array, files on "
              "disk) -- , the overall peak over max(largest array, 1 MiB)), an upper bound of the ratio defined here.",
              "",
              f"**Loads over {REMEASURE_OVER:g}x are measured again** (from this round on): the worker loads the same mutated files "
              "again at once (same mapped/read mode, same tracing), and the driver has a fresh worker (warmed up as every worker "
              "is) load them once. Such a load is judged by the median of its three ratios -- it stays over 2x when either "
              "re-measurement confirms it: a cost every new process pays (the fresh worker) counts as much as a per-load cost (the "
              "same worker); a resident spike neither reproduces does not. A missing re-measurement (a load that imported a "
              "module, a worker that failed) counts as over. Every load within 2x is judged by its one measurement, and every "
              "first measurement stays in the table above (*first measurement* column) and in fuzz.json (`worst`, `over_2x`). "
              "Formats marked ‡ were fuzzed before this rule; their judged worst is their first-measurement worst (where that is "
              "within 2x the rule would have measured nothing again). *File-backed*: the load's growth of `RssFile` (mapped "
              "files and library code faulted in), part of the resident peak."]
    examples = {f"{name}: {outcome}": text for name, total in results["formats"].items() for outcome, text in total.get("examples", {}).items()}
    if examples:
        lines += ["", "## First traceback of each escape", ""]
        for title, text in examples.items():
            lines += [f"### {title}", "", "```", text.strip(), "```", ""]
    md_path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="mutations per format (default 10,000)")
    parser.add_argument("--chunk", type=int, default=2000, help="most mutations per worker process (it reports every --report-every)")
    parser.add_argument("--report-every", type=int, default=250, help="mutations between partial results")
    parser.add_argument("--trace-every", type=int, default=4, help="run every Nth load under tracemalloc (all loads: 1)")
    parser.add_argument("--jobs", type=int, default=1, help="formats fuzzed at the same time (one worker process each)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--out", default=str(RESULTS / "fuzz.json"))
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--reset", default="", help="comma-separated formats to start over (e.g. after a loader changed)")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    parser.add_argument("--recheck", action="store_true",
                        help="re-run each format's worst load (over 2x) in a fresh worker: once, and as the third load of the same files")
    parser.add_argument("--worker", nargs=3, metavar=("FORMAT", "START", "STOP"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--no-remeasure", action="store_true", help=argparse.SUPPRESS)  # a fresh worker's one load
    args = parser.parse_args(argv)
    if args.worker:
        name, start, stop = args.worker
        for part in worker(name, int(start), int(stop), args.report_every, args.trace_every, args.repeat, not args.no_remeasure):
            print(json.dumps(part), flush=True)
        return
    json_path = Path(args.out)
    md_path = json_path.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    results = {"formats": {}} if args.fresh else _load_results(json_path)
    for name in filter(None, (name.strip() for name in args.reset.split(","))):
        results["formats"].pop(name, None)
    if args.report:
        write_report(results, json_path, md_path)
        return
    if args.recheck:
        recheck(results, [name.strip() for name in args.formats.split(",") if name.strip()])
        write_report(results, json_path, md_path)
        return
    names = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        parser.error(f"unknown formats {unknown}; known: {', '.join(FORMATS)}")
    results["machine"] = f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()})"
    results["command"] = "nice -n 10 python benchmarks/fuzz.py" + (f" --n {args.n}" if args.n != 10_000 else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    results["target"], results["trace_every"] = max(args.n, results.get("target", 0)), args.trace_every
    loads = results.setdefault("load_averages", [])
    env = _worker_env()
    lock = threading.Lock()
    for name in names:
        results["formats"].setdefault(name, {})

    def covered(name: str, index: int) -> bool:
        return any(lo <= index < hi for lo, hi in results["formats"][name].get("ranges", []))

    def todo(name: str) -> list[tuple[int, int]]:
        """The uncovered stretches of 0..n of one format, cut to --chunk."""
        stretches, index = [], 0
        while index < args.n:
            if covered(name, index):
                index += 1
                continue
            stop = index
            while stop < args.n and stop - index < args.chunk and not covered(name, stop):
                stop += 1
            stretches.append((index, stop))
            index = stop
        return stretches

    def record(name: str, part: dict) -> None:
        with lock:
            total = results["formats"][name]
            _merge(total, part)
            loads.append(round(os.getloadavg()[0], 2))
            results["load_average"] = f"median {np.median(loads):.1f}, max {max(loads):.1f} (1-minute averages after each block)"
            write_report(results, json_path, md_path)
        print(f"{name}: {total['done']}/{args.n} {total['counts']} ({part['seconds']:.0f} s)", flush=True)

    def run_stretch(name: str, start: int, stop: int) -> None:
        while start < stop:
            command = [sys.executable, __file__, "--worker", name, str(start), str(stop),
                       "--report-every", str(args.report_every), "--trace-every", str(args.trace_every)]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            errors: list[str] = []
            drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
            drain.start()
            for line in process.stdout:
                if line.startswith("{"):
                    part = json.loads(line)
                    remeasure_fresh(name, part, args.trace_every)  # loads over 2x: a fresh worker's measurement too
                    record(name, part)
                    start = part["stop"]
            process.wait()
            drain.join()
            if process.returncode != 0 and start < stop:
                # the worker itself died (a crash no per-load handler could catch): its block counts as one escape
                block = min(stop, start + args.report_every)
                died = f"worker died (exit {process.returncode})"
                record(name, {"start": start, "stop": block, "counts": {died: 1}, "by_kind": {}, "examples": {died: "".join(errors)[-3000:]},
                              "seconds": 0.0})
                start = block

    # one thread per job; each takes the format that has done the fewest mutations so far, so that
    # a run stopped at any time has about as many mutations for every format
    pending = {name: todo(name) for name in names}

    def next_item():
        with lock:
            open_names = [name for name in names if pending[name]]
            if not open_names:
                return None
            name = min(open_names, key=lambda n: (results["formats"][n].get("done", 0), names.index(n)))
            return (name, *pending[name].pop(0))

    def job() -> None:
        while (item := next_item()) is not None:
            run_stretch(*item)

    threads = [threading.Thread(target=job) for _ in range(max(1, args.jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
