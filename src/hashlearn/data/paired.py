"""Paired (cross-modal) data: every item is one image and one text that describe the same thing.

A :class:`PairedDataset` holds, for ``n`` items, an image side (pixels or
image feature vectors), a text side (raw strings and/or text feature vectors
such as bag-of-words or tag vectors) and multi-hot labels. Item ``i`` is the
pair ``(image i, text i)``; a split of a paired set is a split of pairs, so a
query pair takes both its image and its text out of the database.

Beyond index disjointness, :func:`check_pair_leakage` checks contents: no
query image may equal a database image and no query text a database text
(duplicates inside a source would otherwise let a query find itself), and
:func:`make_paired_split` draws splits over groups of duplicates so the check
holds by construction.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ds = PairedDataset("toy", images=rng.random((40, 3, 8, 8), dtype=np.float32),
...                    text_vectors=(rng.random((40, 5)) > 0.5).astype(np.float32),
...                    labels=np.eye(4, dtype=np.uint8)[np.arange(40) % 4])
>>> split = make_paired_split(ds, n_query=8, n_train=20, n_val=4, seed=0)
>>> [len(part) for part in (split.query, split.database, split.train, split.validation)]
[8, 32, 20, 4]
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from hashlearn._validation import check_labels, check_positive_int
from hashlearn.errors import DataLeakageError

MODALITIES = ("image", "text")
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass
class PairedDataset:
    """Images, texts and multi-hot labels of ``n`` instance-paired items.

    Parameters
    ----------
    name : str
    images : array
        ``(n, C, H, W)`` pixels (uint8, or float32 in ``[0, 1]``) or ``(n, d)``
        float image features (``image_kind="features"``). uint8 pixels are kept
        as they are and converted per batch by :meth:`image_inputs` (a 20k x
        224 x 224 x 3 set is 3 GB as uint8, 12 GB as float32).
    labels : array
        ``(n, n_classes)`` multi-hot 0/1 (single-label ids are one-hot encoded).
    texts : list of str, optional
        Raw texts (needed for sentence encoders such as MiniLM).
    text_vectors : array, optional
        ``(n, v)`` text features: bag-of-words / tag vectors (``YAll``-style).
        At least one of ``texts`` and ``text_vectors`` is required.
    meta : dict
        ``classes`` (label names), ``vocabulary`` (column names of ``text_vectors``), source ...
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    texts: list[str] | None = None
    text_vectors: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    predefined_split: dict[str, np.ndarray] | None = None

    modality = "paired"

    def __post_init__(self):
        if not isinstance(self.images, np.ndarray) or self.images.ndim not in (2, 4) or len(self.images) == 0:
            found = f"{self.images.dtype} {self.images.shape}" if isinstance(self.images, np.ndarray) else type(self.images).__name__
            raise ValueError(f"images must be a non-empty array (n, C, H, W) of pixels or (n, d) of features, got {found}.")
        n = len(self.images)
        if self.images.dtype != np.uint8 and not np.issubdtype(self.images.dtype, np.floating):
            raise TypeError(f"images must be uint8 pixels or float values, got dtype {self.images.dtype}.")
        labels = check_labels(self.labels, "labels", n_samples=n)
        if labels.ndim == 1:
            labels = np.eye(int(labels.max()) + 1, dtype=np.uint8)[labels]
        self.labels = labels
        if self.texts is None and self.text_vectors is None:
            raise ValueError("a paired data set needs texts (list of str) or text_vectors (n, v); got neither.")
        if self.texts is not None:
            self.texts = list(self.texts)
            if len(self.texts) != n:
                raise ValueError(f"texts has {len(self.texts)} items but images has {n}; every image needs its text.")
            bad = next((i for i, text in enumerate(self.texts) if not isinstance(text, str)), None)
            if bad is not None:
                raise TypeError(f"texts must all be str, item {bad} is {type(self.texts[bad]).__name__}.")
        if self.text_vectors is not None:
            vectors = np.asarray(self.text_vectors)
            if vectors.ndim != 2 or len(vectors) != n:
                raise ValueError(f"text_vectors must have shape (n={n}, v), got {vectors.shape}.")
            if not np.issubdtype(vectors.dtype, np.number) and vectors.dtype != bool:
                raise TypeError(f"text_vectors must be numeric, got dtype {vectors.dtype}.")
            self.text_vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    # --- what the rest of hashlearn reads -------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def data(self):
        """The image side (so size-based helpers that read ``data`` see one row per pair)."""
        return self.images

    @property
    def kind(self) -> str:
        return "multi-label"

    @property
    def n_classes(self) -> int:
        return int(self.labels.shape[1])

    @property
    def image_kind(self) -> str:
        """``"pixels"`` for ``(n, C, H, W)`` images, ``"features"`` for ``(n, d)`` vectors."""
        return "pixels" if self.images.ndim == 4 else "features"

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.images.shape[1:])

    def image_inputs(self, index=None) -> np.ndarray:
        """Float32 image inputs of the items ``index`` (all by default); uint8 pixels scaled to ``[0, 1]``."""
        images = self.images if index is None else self.images[np.asarray(index)]
        if images.dtype == np.uint8:
            return images.astype(np.float32) / np.float32(255)
        return np.ascontiguousarray(images, dtype=np.float32)

    def text_inputs(self, index=None) -> np.ndarray:
        """Float32 text feature vectors (``text_vectors``) of the items ``index``."""
        if self.text_vectors is None:
            raise ValueError(f"{self.name} has no text_vectors; encode its texts (e.g. with the minilm encoder) instead.")
        return self.text_vectors if index is None else self.text_vectors[np.asarray(index)]

    def text_items(self, index=None) -> list[str]:
        """Raw texts of the items ``index``."""
        if self.texts is None:
            raise ValueError(f"{self.name} has no raw texts, only text_vectors ({self.text_vectors.shape[1]}-d).")
        return list(self.texts) if index is None else [self.texts[i] for i in np.asarray(index)]

    def modality_fingerprints(self, modality: str) -> np.ndarray:
        """One SHA-256 digest (as ``S64``) per item of ``modality``'s content, for duplicate checks."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
        if modality == "image":
            rows = np.ascontiguousarray(self.images).reshape(len(self), -1)
            return np.array([hashlib.sha256(row.tobytes()).hexdigest() for row in rows], dtype="S64")
        if self.texts is not None:
            return np.array([hashlib.sha256(" ".join(t.lower().split()).encode()).hexdigest() for t in self.texts], dtype="S64")
        rows = np.ascontiguousarray(self.text_vectors)
        return np.array([hashlib.sha256(row.tobytes()).hexdigest() for row in rows], dtype="S64")


# --------------------------------------------------------------------------------------
# bag of words
# --------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lower-cased runs of ASCII letters and digits (``"flag: Côte d’Ivoire"`` -> ``['flag', 'c', 'te', 'd', 'ivoire']``)."""
    return _TOKEN.findall(text.lower())


def build_vocabulary(texts, min_count: int = 2) -> list[str]:
    """Tokens that occur in at least ``min_count`` texts, sorted (a fixed, label-free vocabulary)."""
    min_count = check_positive_int(min_count, "min_count")
    document_frequency: dict[str, int] = {}
    for text in texts:
        for token in set(tokenize(text)):
            document_frequency[token] = document_frequency.get(token, 0) + 1
    return sorted(token for token, count in document_frequency.items() if count >= min_count)


def bag_of_words(texts, vocabulary: list[str]) -> np.ndarray:
    """Binary ``(n, len(vocabulary))`` float32 presence vectors (tokens outside the vocabulary are dropped)."""
    column = {token: j for j, token in enumerate(vocabulary)}
    if len(column) != len(vocabulary):
        raise ValueError("vocabulary has duplicate tokens.")
    out = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
    for i, text in enumerate(texts):
        for token in tokenize(text):
            j = column.get(token)
            if j is not None:
                out[i, j] = 1.0
    return out


# --------------------------------------------------------------------------------------
# splits over pairs
# --------------------------------------------------------------------------------------
def duplicate_groups(dataset: PairedDataset) -> np.ndarray:
    """Group id ``(n,)`` per item: items sharing an identical image or an identical text are one group
    (transitively, by union-find), so a split over groups never separates duplicates."""
    n = len(dataset)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for modality in MODALITIES:
        first_seen: dict[bytes, int] = {}
        for i, digest in enumerate(dataset.modality_fingerprints(modality).tolist()):
            j = first_seen.setdefault(digest, i)
            if j != i:
                root_i, root_j = find(i), find(j)
                if root_i != root_j:
                    parent[max(root_i, root_j)] = min(root_i, root_j)
    roots = np.array([find(i) for i in range(n)])
    _, groups = np.unique(roots, return_inverse=True)
    return groups.astype(np.int64)


def check_pair_leakage(split, dataset: PairedDataset) -> None:
    """Raise :class:`DataLeakageError` if a query pair's image or text also appears in the database
    (same content under another index), or in the training or validation parts."""
    split.check()
    if split.n_items != len(dataset):
        raise ValueError(f"split was made for {split.n_items} items but the data set has {len(dataset)}.")
    for modality in MODALITIES:
        fingerprints = dataset.modality_fingerprints(modality)
        query = set(fingerprints[split.query].tolist())
        for part in ("database", "train", "validation"):
            index = getattr(split, part)
            shared = [i for i in index.tolist() if fingerprints[i] in query]
            if shared:
                raise DataLeakageError(
                    f"split leaks over pairs: {len(shared)} {part} item(s) have the same {modality} as a query item "
                    f"(e.g. index {shared[0]}); split by duplicate groups (make_paired_split)."
                )


def make_paired_split(dataset: PairedDataset, *, n_query: int, n_train: int, n_val: int, seed: int = 0,
                      protocol: str = "default", description: str = ""):
    """A seeded split of pairs: query groups drawn first, the rest is the database; train and
    validation are drawn (disjoint) from the database. Duplicate groups stay on one side, so
    :func:`check_pair_leakage` passes; the split is returned checked."""
    from hashlearn.data.protocols import Split

    seed = check_positive_int(seed, "seed", minimum=0)
    n_items = len(dataset)
    for name, value in (("n_query", n_query), ("n_train", n_train), ("n_val", n_val)):
        check_positive_int(value, name, minimum=0)
    if n_query + n_val > n_items or n_train + n_val > n_items - n_query:
        raise ValueError(
            f"cannot split {n_items} pairs into n_query={n_query}, n_train={n_train}, n_val={n_val} "
            "(train and validation come from the database); lower the sizes."
        )
    groups = duplicate_groups(dataset)
    rng = np.random.default_rng(seed)
    order = rng.permutation(groups.max() + 1)
    sizes = np.bincount(groups)
    # queries: whole groups in random order until n_query items (singletons fill the last places)
    query_groups, count = [], 0
    for group in order:
        if count + sizes[group] <= n_query:
            query_groups.append(group)
            count += sizes[group]
        if count == n_query:
            break
    if count != n_query:
        raise ValueError(f"could not draw exactly {n_query} query pairs from duplicate groups; lower n_query.")
    query = np.sort(np.flatnonzero(np.isin(groups, query_groups)))
    database = np.setdiff1d(np.arange(n_items), query)
    train = np.sort(rng.choice(database, size=n_train, replace=False))
    validation = np.sort(rng.choice(np.setdiff1d(database, train), size=n_val, replace=False))
    split = Split(query, database, train, validation, dataset=dataset.name, protocol=protocol, seed=seed, n_items=n_items,
                  meta={"description": description, "paired": True, "stratified": False,
                        "n_duplicate_groups": int(groups.max() + 1)})
    split.check()
    check_pair_leakage(split, dataset)
    return split


__all__ = ["MODALITIES", "PairedDataset", "bag_of_words", "build_vocabulary", "check_pair_leakage", "duplicate_groups",
           "make_paired_split", "tokenize"]
