"""The one registry of index kinds, read by the factory, the ``.hlx`` file format and the CLI.

An index kind is registered once, here (or, for a plug-in, with :func:`register`):
its ``kind`` (the name saved in files), its class (imported lazily), and how it
is written in :func:`~hashlearn.index.factory.index_factory` descriptions.
``index_factory`` parses descriptions with it, :mod:`hashlearn.index.io` finds the
class of a saved kind with it, and ``hashlearn index build --help`` lists it.

>>> from hashlearn.index.registry import get_kind
>>> get_kind("mih").spelling
'MIH<n_tables>'
>>> get_kind("nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
hashlearn.errors.CorruptFileError: unknown index kind 'nope'; known kinds: ['asymmetric', ..., 'two_stage'...].
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hashlearn.errors import CorruptFileError


@dataclass
class IndexKind:
    """One kind of index.

    Parameters
    ----------
    kind : str
        Name saved in index files (``BinaryIndex.kind`` of the class).
    target : type or str
        The class, or its ``"module:Class"`` path (imported on first use).
    name : str or None
        Name in factory descriptions (``"MIH"``); ``None``: the kind can be saved and
        loaded but not built from a description.
    number : str or None
        Constructor keyword that a number after the name sets (``MIH4`` -> ``n_tables=4``).
    builder : str or None
        ``"module:function"`` that builds a composite kind from its description
        (``builder(number, inner, n_bits, kwargs, build, whole)``, ``inner`` the text
        in parentheses, ``build`` the factory's recursive builder); ``None`` for a plain
        kind built as ``cls(n_bits, **kwargs)``.
    spelling : str
        How the description is written, for error messages and ``--help``.
    summary : str
        One line on what the index does.
    """

    kind: str
    target: type | str
    name: str | None = None
    number: str | None = None
    builder: str | None = None
    spelling: str = ""
    summary: str = ""

    def __post_init__(self):
        if not isinstance(self.kind, str) or not self.kind:
            raise TypeError(f"kind must be a non-empty string, got {self.kind!r}.")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.isalpha()):
            raise ValueError(f"name must be letters only (the factory reads digits after it as a number), got {self.name!r}.")
        if not self.spelling and self.name:
            self.spelling = self.name + (f"<{self.number}>" if self.number else "")

    @property
    def cls(self) -> type:
        """The index class (imported the first time it is asked for)."""
        if isinstance(self.target, str):
            module_name, _, class_name = self.target.partition(":")
            self.target = getattr(importlib.import_module(module_name), class_name)
        return self.target

    def build_function(self):
        """The composite builder, or ``None`` for a plain kind."""
        if self.builder is None:
            return None
        module_name, _, function_name = self.builder.partition(":")
        return getattr(importlib.import_module(module_name), function_name)


#: kind -> :class:`IndexKind`, in registration order; one line per index kind
KINDS: dict[str, IndexKind] = {}


def register(entry: IndexKind) -> IndexKind:
    """Add (or replace) an index kind; returns it."""
    if not isinstance(entry, IndexKind):
        raise TypeError(f"register() takes an IndexKind, got {type(entry).__name__}.")
    if entry.name is not None:
        for other in KINDS.values():
            if other.name == entry.name and other.kind != entry.kind:
                raise ValueError(f"factory name {entry.name!r} is already taken by index kind {other.kind!r}.")
    KINDS[entry.kind] = entry
    return entry


def get_kind(kind: str) -> IndexKind:
    """The entry of a saved ``kind``; ``CorruptFileError`` (a file names it) if none is registered."""
    if kind not in KINDS:
        raise CorruptFileError(f"unknown index kind {kind!r}; known kinds: {sorted(KINDS)}.")
    return KINDS[kind]


def by_name(name: str) -> IndexKind | None:
    """The kind written ``name`` in factory descriptions, or ``None``."""
    for entry in KINDS.values():
        if entry.name == name:
            return entry
    return None


def factory_spellings() -> str:
    """Every factory spelling, comma-separated (for messages and ``--help``)."""
    return ", ".join(entry.spelling for entry in KINDS.values() if entry.name is not None)


def describe() -> list[tuple[str, str, str]]:
    """``(spelling, kind, summary)`` of every kind a description can build."""
    return [(entry.spelling, entry.kind, entry.summary) for entry in KINDS.values() if entry.name is not None]


register(IndexKind("flat", "hashlearn.index.flat:FlatIndex", name="Flat", summary="exact scan of every code"))
register(IndexKind(
    "mih", "hashlearn.index.mih:MultiIndexHashing", name="MIH", number="n_tables",
    summary="exact multi-index hashing, MIH4: 4 substring tables, MIH: as many as the data calls for",
))  # fmt: skip
register(IndexKind("table", "hashlearn.index.table:HashTableIndex", name="Table", summary="exact hash table over whole codes of at most 32 bits"))
register(IndexKind(
    "two_stage", "hashlearn.index.two_stage:TwoStageIndex", name="TwoStage", number="n_first_bits",
    builder="hashlearn.index.factory:build_two_stage",
    spelling="TwoStage(<first>,<Flat|Cosine|L2>), TwoStage<prefix_bits>(<first>,<Flat|Cosine|L2>)",
    summary="candidates from a first stage on a prefix of the bits, re-ranked by full codes or float vectors",
))  # fmt: skip
register(IndexKind(
    "sharded", "hashlearn.index.sharded:ShardedIndex", name="Shard", number="n_shards",
    builder="hashlearn.index.factory:build_sharded", spelling="Shard<n_shards>(<index>)",
    summary="shards of another index on a dask.distributed cluster",
))  # fmt: skip
register(IndexKind(
    "asymmetric", "hashlearn.index.asymmetric:AsymmetricIndex",
    summary="float queries scored against +-1 codes (inner product); built in Python, saved and loaded as .hlx",
))  # fmt: skip
