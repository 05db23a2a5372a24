"""Build an index from a short description string, in the spirit of faiss's ``index_factory``.

The descriptions come from the index-kind registry (:mod:`hashlearn.index.registry`);
the kinds registered with hashlearn are:

============================  ==========================================================
``Flat``                      exact scan (:class:`~hashlearn.index.flat.FlatIndex`)
``MIH`` / ``MIH4``            multi-index hashing, substring tables chosen from the data / 4
``Table``                     hash table over whole codes (exact-match buckets)
``TwoStage(MIH,Flat)``        first stage MIH over the first half of the bits, re-ranked by
                              the Hamming distance of the full codes; ``TwoStage16(...)``
                              uses a 16-bit prefix; the re-ranker may be ``Flat`` (Hamming),
                              ``Cosine`` or ``L2`` (float vectors given to add / search)
``Shard4(Flat)``              4 shards of ``Flat`` on a dask.distributed LocalCluster
============================  ==========================================================

Descriptions nest (``Shard2(TwoStage(MIH,Flat))``) except that shards cannot be sharded.
A kind registered with :func:`hashlearn.index.registry.register` is accepted here at once.
"""

from __future__ import annotations

import re

from hashlearn._validation import check_n_bits
from hashlearn.index import registry
from hashlearn.index.base import MAX_BITS, BinaryIndex

#: re-rankers of ``TwoStage(first,RERANK)``
RERANKERS = {"Flat": "hamming", "Cosine": "cosine", "L2": "l2"}

_TERM = re.compile(r"^([A-Za-z]+?)(\d*)(?:\((.*)\))?$")


def accepted() -> str:
    """The accepted spellings, for messages."""
    return registry.factory_spellings()


def index_factory(description: str, n_bits: int, **kwargs) -> BinaryIndex:
    """Build the (empty) index ``description`` describes for codes of ``n_bits`` bits.

    ``kwargs`` go to the outermost index (e.g. ``client=`` for ``Shard``, ``n_candidates=``
    for ``TwoStage``).

    >>> index_factory("MIH4", 64)
    MultiIndexHashing(n_bits=64, n_tables=4, max_cost_fraction=0.25, ntotal=0)
    >>> index_factory("Bogus", 64)
    Traceback (most recent call last):
    ...
    ValueError: unknown index description 'Bogus'; accepted: Flat, MIH<n_tables>, Table, TwoStage(<first>,<Flat|Cosine|L2>), TwoStage<prefix_bits>(<first>,<Flat|Cosine|L2>), Shard<n_shards>(<index>)
    """
    if not isinstance(description, str):
        raise TypeError(f"description must be a string such as 'Flat' or 'MIH4', got {type(description).__name__}.")
    n_bits = check_n_bits(n_bits, maximum=MAX_BITS)
    return _build(description.replace(" ", ""), n_bits, kwargs, description)


def _build(text: str, n_bits: int, kwargs: dict, whole: str) -> BinaryIndex:
    match = _TERM.match(text)
    if not match:
        raise _unknown(text, whole)
    name, number, inner = match.group(1), match.group(2), match.group(3)
    number = int(number) if number else None
    entry = registry.by_name(name)
    if entry is None:
        raise _unknown(text, whole)
    builder = entry.build_function()
    if builder is not None:
        if inner is None:
            raise _unknown(text, whole)
        return builder(number, inner, n_bits, kwargs, _build, whole)
    if inner is not None:
        raise _unknown(text, whole)
    if number is not None:
        if entry.number is None:
            raise ValueError(f"'{name}' takes no number in index description {whole!r}; accepted: {accepted()}")
        kwargs = {entry.number: number, **kwargs}
    return entry.cls(n_bits, **kwargs)


def build_two_stage(number, inner: str, n_bits: int, kwargs: dict, build, whole: str) -> BinaryIndex:
    """``TwoStage[prefix_bits](<first>,<Flat|Cosine|L2>)``."""
    parts = _split_arguments(inner)
    if len(parts) != 2 or parts[1] not in RERANKERS:
        raise ValueError(f"TwoStage needs (<first stage>,<Flat|Cosine|L2>), got 'TwoStage({inner})' in {whole!r}.")
    n_first_bits = number if number is not None else max(8, -(-n_bits // 16) * 8)
    first = build(parts[0], check_n_bits(n_first_bits, "TwoStage prefix bits"), {}, whole)
    return registry.get_kind("two_stage").cls(n_bits, first, rerank=RERANKERS[parts[1]], **kwargs)


def build_sharded(number, inner: str, n_bits: int, kwargs: dict, build, whole: str) -> BinaryIndex:
    """``Shard<n_shards>(<index>)``."""
    if number is None:
        raise ValueError(f"Shard needs a shard count, e.g. 'Shard4(Flat)', got 'Shard({inner})' in {whole!r}.")
    if inner.startswith("Shard"):
        raise ValueError(f"shards cannot themselves be sharded: {whole!r}.")
    build(inner, n_bits, {}, whole)  # check the inner description before starting a cluster
    return registry.get_kind("sharded").cls(n_bits, n_shards=number, shard_factory=inner, **kwargs)


def _split_arguments(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _unknown(text: str, whole: str) -> ValueError:
    where = "" if text == whole else f" (in {whole!r})"
    return ValueError(f"unknown index description {text!r}{where}; accepted: {accepted()}")
