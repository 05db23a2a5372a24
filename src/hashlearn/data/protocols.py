"""Evaluation protocols: named, seeded, leakage-checked splits.

A split has four parts, as index arrays into the dataset:

* ``query`` -- the evaluation queries (never used for training or model selection);
* ``database`` -- what queries retrieve from; disjoint from ``query``;
* ``train`` -- drawn from the database (the usual protocol of the literature);
* ``validation`` -- drawn from the database, disjoint from ``train``; model
  selection uses it, never the queries.

>>> from hashlearn.data import load_dataset
>>> split = make_split(load_dataset("digits"), seed=0)
>>> [len(part) for part in (split.query, split.database, split.train, split.validation)]
[200, 1597, 500, 100]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_bytes
from hashlearn._validation import check_positive_int
from hashlearn.errors import CorruptFileError, DataLeakageError

PARTS = ("query", "database", "train", "validation")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    """How to split a dataset.

    ``query_from`` names a predefined split of the source (e.g. ``"test"``) to
    draw the queries from; ``None`` draws them from the whole dataset.
    ``stratified`` draws equal numbers per class (single-label data only).
    """

    name: str
    n_query: int
    n_train: int
    n_val: int
    stratified: bool = True
    query_from: str | None = None
    train_in_database: bool = True
    description: str = ""


def _standard(n_query, n_train, n_val, query_from=None, stratified=True, text="") -> dict[str, Protocol]:
    return {"default": Protocol("default", n_query, n_train, n_val, stratified, query_from, description=text)}


#: dataset name -> protocol name -> Protocol
PROTOCOLS: dict[str, dict[str, Protocol]] = {
    "fashion-mnist": _standard(1000, 5000, 1000, "test", text="1,000 queries (100/class) from the test split; database = the other 69,000; train 5,000 (500/class) and validation 1,000 from the database"),
    "mnist": _standard(1000, 5000, 1000, "test", text="as fashion-mnist"),
    "animal-mnist": _standard(1000, 5000, 1000, text="1,000 queries (100/class); train 5,000, validation 1,000 from the database"),
    "mnist5k": _standard(500, 2000, 500, text="500 queries (50/class); train 2,000, validation 500"),
    "digits": _standard(200, 500, 100, text="200 queries (20/class); train 500, validation 100"),
    "cifar10": _standard(1000, 5000, 1000, "test", text="the standard CIFAR-10 protocol: 1,000 queries (100/class) from the test batch"),
    "20newsgroups": _standard(1000, 5000, 1000, stratified=False, text="1,000 random queries; train 5,000, validation 1,000"),
    "r8": _standard(500, 2000, 500, stratified=False, text="500 random queries; train 2,000, validation 500"),
    "r52": _standard(500, 2000, 500, stratified=False, text="500 random queries; train 2,000, validation 500"),
    "yeast": _standard(300, 1000, 200, stratified=False, text="multi-label: 300 random queries; train 1,000, validation 200"),
    "openmoji-tags": _standard(200, 1200, 170, stratified=False, text="multi-label images: 200 random queries; train 1,200, validation 170; database = the other 1,670"),
    "glove-50d": _standard(1000, 20000, 1000, stratified=False, text="unlabelled: 1,000 random queries; train 20,000, validation 1,000"),
    # paired (cross-modal) sets: splits of pairs, drawn by hashlearn.data.paired.make_paired_split
    "openmoji": _standard(200, 1200, 170, stratified=False, text="pairs: 200 random query pairs (image and text both out of the database); train 1,200 and validation 170 from the database"),
    "mirflickr25k": _standard(2000, 10000, 1000, stratified=False, text="DCMH protocol: 2,000 query pairs, database = the rest, 10,000 training pairs from the database (+1,000 validation, not in the literature)"),
    "nus-wide": _standard(2100, 10500, 1000, stratified=False, text="DCMH protocol: 2,100 query pairs (1%), database = the rest, 10,500 training pairs (+1,000 validation)"),
    "ms-coco": _standard(2000, 10000, 1000, stratified=False, text="2,000 query pairs, database = the rest, 10,000 training pairs (+1,000 validation)"),
}


def get_protocol(dataset_name: str, protocol: str = "default", n_items: int | None = None) -> Protocol:
    """The named protocol of a dataset; unknown datasets get a size-based ``default``."""
    known = PROTOCOLS.get(dataset_name)
    if known is not None:
        if protocol not in known:
            raise ValueError(f"unknown protocol {protocol!r} for dataset {dataset_name!r}; expected one of {sorted(known)}.")
        return known[protocol]
    if protocol != "default":
        raise ValueError(f"dataset {dataset_name!r} has only the 'default' protocol, got {protocol!r}.")
    if n_items is None:
        raise ValueError(f"dataset {dataset_name!r} has no registered protocol; pass n_items to size the default one.")
    return Protocol(
        "default",
        n_query=max(1, min(1000, n_items // 10)),
        n_train=max(1, min(5000, n_items // 2)),
        n_val=max(1, min(1000, n_items // 20)),
        stratified=False,
        description="size-based default: 10% queries (at most 1,000), half for training (at most 5,000), 5% validation",
    )


@dataclass
class Split:
    """Index arrays of the four parts, with where they came from."""

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    dataset: str = ""
    protocol: str = "default"
    seed: int = 0
    n_items: int = 0
    train_in_database: bool = True
    meta: dict = field(default_factory=dict)

    def check(self) -> "Split":
        """Raise :class:`DataLeakageError` if the parts overlap where they must not.

        When the parts cover at least an eighth of the items (any real split), one byte per
        item records which parts hold it (an eighth of an int64 index array of all items);
        otherwise each part is compared with a sorted copy of the other (the database once)."""
        dense = self.n_items <= 8 * sum(np.size(getattr(self, name)) for name in PARTS) + (1 << 16)
        owners = np.zeros(self.n_items if dense else 0, dtype=np.uint8)  # bit i: item is in PARTS[i]
        for bit, name in enumerate(PARTS):
            part = getattr(self, name)
            if part.ndim != 1 or not np.issubdtype(part.dtype, np.integer):
                raise TypeError(f"split part {name!r} must be a 1-D integer index array, got {part.dtype} {part.shape}.")
            if len(part) and (part.min() < 0 or part.max() >= self.n_items):
                raise ValueError(f"split part {name!r} has indices outside [0, {self.n_items}).")
            if dense:
                owners[part] |= np.uint8(1 << bit)
                duplicates = np.count_nonzero(owners & np.uint8(1 << bit)) != len(part)
            else:
                ordered = np.sort(part)
                duplicates = bool(np.any(ordered[1:] == ordered[:-1]))
                del ordered
            if duplicates:
                raise DataLeakageError(f"split part {name!r} contains duplicate indices.")
        if dense:
            def holds(name: str, items: np.ndarray) -> np.ndarray:
                return (owners[items] & np.uint8(1 << PARTS.index(name))) != 0
        else:
            ordered = {"database": np.sort(self.database)}  # the largest part, sorted once

            def holds(name: str, items: np.ndarray) -> np.ndarray:
                values = ordered[name] if name in ordered else np.sort(getattr(self, name))
                if not len(values):
                    return np.zeros(len(items), dtype=bool)
                return values[np.minimum(np.searchsorted(values, items), len(values) - 1)] == items
        for a, b in (("query", "database"), ("query", "train"), ("query", "validation"), ("train", "validation")):
            items = getattr(self, a)
            _disjoint(items[holds(b, items)], a, b)
        if self.train_in_database and not holds("database", self.train).all():
            raise DataLeakageError("train must be a subset of database under this protocol, but some train items are not in it.")
        return self

    def sizes(self) -> dict[str, int]:
        return {name: int(len(getattr(self, name))) for name in PARTS}

    def take(self, array, part: str):
        """``array`` restricted to one part (works for numpy arrays and lists)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}.")
        index = getattr(self, part)
        if isinstance(array, np.ndarray):
            return array[index]
        return [array[i] for i in index]

    # --- persistence: arrays in .npz, metadata in JSON, checksum in the JSON ------------
    def save(self, directory: str | Path) -> Path:
        import io

        directory = Path(directory)
        buffer = io.BytesIO()
        np.savez(buffer, **{name: getattr(self, name) for name in PARTS})
        payload = buffer.getvalue()
        atomic_write_bytes(directory / "split.npz", payload)
        info = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "seed": self.seed,
            "n_items": self.n_items,
            "train_in_database": self.train_in_database,
            "sizes": self.sizes(),
            "sha256": sha256_bytes(payload),
            "meta": self.meta,
        }
        atomic_write_json(directory / "split.json", info)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Split":
        """Read a split written by :meth:`save`: the JSON's fields and types, the arrays'
        headers (against their sizes), the checksum, then the leakage checks; every problem
        with the content is a :class:`~hashlearn.errors.CorruptFileError`."""
        from hashlearn._io import MAX_JSON_BYTES, is_int, regular_file, sha256_file
        from hashlearn._npy import read_npz

        directory = Path(directory)
        info_path, arrays_path = directory / "split.json", directory / "split.npz"
        for path in (info_path, arrays_path):
            if not path.exists():
                raise FileNotFoundError(f"{path} not found; expected a split saved by Split.save.")
        info = read_versioned_json(info_path, FORMAT_VERSION)
        fields = {"dataset": str, "protocol": str, "seed": int, "n_items": int, "train_in_database": bool, "sha256": str}
        for key, expected in fields.items():
            value = info.get(key)
            if not isinstance(value, expected) or (expected is int and not is_int(value)):
                raise CorruptFileError(f"{info_path} is corrupt: field {key!r} is missing or not a {expected.__name__}.")
        if info["seed"] < 0 or info["n_items"] < 0:
            raise CorruptFileError(f"{info_path} is corrupt: seed and n_items must be >= 0.")
        if not isinstance(info.get("meta", {}), dict):
            raise CorruptFileError(f"{info_path} is corrupt: field 'meta' must be an object.")
        # a split holds at most four index arrays of n_items entries (and np.savez stores them uncompressed)
        _, size = regular_file(arrays_path, "split arrays file")
        if size > MAX_JSON_BYTES + 4 * 8 * info["n_items"] + 4096:
            raise CorruptFileError(f"{arrays_path} has {size} bytes, more than a split of {info['n_items']} items may have.")
        with open(arrays_path, "rb") as handle:  # hashed in a small buffer, then the arrays read straight from it
            if sha256_file(handle) != info["sha256"]:
                raise CorruptFileError(f"{arrays_path} does not match the checksum in {info_path}: the file was changed or truncated.")
            handle.seek(0)
            arrays = read_npz(handle, str(arrays_path), kinds="iu", max_nbytes=size + 4 * 8 * info["n_items"])
        missing = [name for name in PARTS if name not in arrays]
        if missing:
            raise CorruptFileError(f"{arrays_path} lacks the part(s) {missing}.")
        split = cls(**{name: arrays[name] for name in PARTS}, dataset=info["dataset"], protocol=info["protocol"], seed=info["seed"],
                    n_items=info["n_items"], train_in_database=info["train_in_database"], meta=info.get("meta", {}))
        try:
            return split.check()
        except (TypeError, ValueError) as error:  # DataLeakageError included: a stored split must be valid
            raise CorruptFileError(f"{directory} holds an invalid split: {error}") from error


def _disjoint(common: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise if two parts share items: ``common``, the items of ``name_a`` also in ``name_b``."""
    if len(common):
        common = np.sort(common)
        raise DataLeakageError(
            f"split leaks: {len(common)} item(s) are in both {name_a} and {name_b} (e.g. index {int(common[0])})."
        )


def _draw(rng: np.random.Generator, pool: np.ndarray, n: int, labels, stratified: bool, what: str) -> np.ndarray:
    """Draw ``n`` items from ``pool``, equally per class when ``stratified``."""
    if n > len(pool):
        raise ValueError(f"cannot draw {n} {what} items from a pool of {len(pool)}; lower the protocol's size.")
    if not stratified:
        return np.sort(rng.choice(pool, size=n, replace=False))
    classes = np.unique(labels[pool])
    base, extra = divmod(n, len(classes))
    chosen = []
    for position, label in enumerate(classes):
        members = pool[labels[pool] == label]
        count = base + (position < extra)
        if count > len(members):
            raise ValueError(
                f"class {label} has only {len(members)} items left for {what}, {count} requested; use a non-stratified protocol."
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


def make_split(dataset, protocol: str | Protocol = "default", seed: int = 0) -> Split:
    """Split ``dataset`` (a :class:`~hashlearn.data.Dataset`) by a named protocol, seeded, leakage-checked."""
    seed = check_positive_int(seed, "seed", minimum=0)
    n_items = len(dataset)
    spec = protocol if isinstance(protocol, Protocol) else get_protocol(dataset.name, protocol, n_items)
    if getattr(dataset, "modality", None) == "paired":  # splits of image-text pairs, leakage-checked over both sides
        from hashlearn.data.paired import make_paired_split

        return make_paired_split(dataset, n_query=spec.n_query, n_train=spec.n_train, n_val=spec.n_val, seed=seed,
                                 protocol=spec.name, description=spec.description)
    labels = dataset.labels
    stratified = spec.stratified and labels is not None and labels.ndim == 1
    rng = np.random.default_rng(seed)
    everything = np.arange(n_items)
    if spec.query_from is not None:
        predefined = dataset.predefined_split or {}
        if spec.query_from not in predefined:
            raise ValueError(
                f"protocol {spec.name!r} draws queries from the {spec.query_from!r} split, which dataset {dataset.name!r} does not define."
            )
        query_pool = np.asarray(predefined[spec.query_from])
    else:
        query_pool = everything
    query = _draw(rng, query_pool, spec.n_query, labels, stratified, "query")
    database = np.setdiff1d(everything, query)
    train = _draw(rng, database, spec.n_train, labels, stratified, "train")
    validation = _draw(rng, np.setdiff1d(database, train), spec.n_val, labels, stratified, "validation")
    split = Split(query, database, train, validation, dataset=dataset.name, protocol=spec.name, seed=seed,
                  n_items=n_items, train_in_database=spec.train_in_database, meta={"description": spec.description,
                  "stratified": stratified, "query_from": spec.query_from})
    return split.check()


__all__ = ["PARTS", "PROTOCOLS", "Protocol", "Split", "get_protocol", "make_split"]
