"""Build an index from a short description string, in the spirit of faiss's ``index_factory``.

Accepted descriptions (``n_bits`` is always the code length of the whole index):

============================  ==========================================================
``Flat``                      exact scan (:class:`~hashlearn.index.flat.FlatIndex`)
``MIH`` / ``MIH4``            multi-index hashing, default / 4 substring tables
``Table``                     hash table over whole codes (exact-match buckets)
``TwoStage(MIH,Flat)``        first stage MIH over the first half of the bits, re-ranked by
                              the Hamming distance of the full codes; ``TwoStage16(...)``
                              uses a 16-bit prefix; the re-ranker may be ``Flat`` (Hamming),
                              ``Cosine`` or ``L2`` (float vectors given to add / search)
``Shard4(Flat)``              4 shards of ``Flat`` on a dask.distributed LocalCluster
============================  ==========================================================

Descriptions nest (``Shard2(TwoStage(MIH,Flat))``) except that shards cannot be sharded.
"""

from __future__ import annotations

import re

from hashlearn._validation import check_n_bits
from hashlearn.index.base import MAX_BITS, BinaryIndex
from hashlearn.index.io import index_class

#: leaf name -> (index kind, keyword of the optional number, or None when it takes none);
#: one line per index class
LEAVES: dict[str, tuple[str, str | None]] = {
    "Flat": ("flat", None),
    "MIH": ("mih", "n_tables"),
    "Table": ("table", None),
}
#: re-rankers of ``TwoStage(first,RERANK)``
RERANKERS = {"Flat": "hamming", "Cosine": "cosine", "L2": "l2"}

ACCEPTED = (
    "Flat, MIH, MIH<n_tables> (e.g. MIH4), Table, TwoStage(<first>,<Flat|Cosine|L2>), "
    "TwoStage<prefix_bits>(<first>,<Flat|Cosine|L2>), Shard<n_shards>(<index>)"
)

_TERM = re.compile(r"^([A-Za-z]+?)(\d*)(?:\((.*)\))?$")


def index_factory(description: str, n_bits: int, **kwargs) -> BinaryIndex:
    """Build the (empty) index ``description`` describes for codes of ``n_bits`` bits.

    ``kwargs`` go to the outermost index (e.g. ``client=`` for ``Shard``, ``n_candidates=``
    for ``TwoStage``).

    >>> index_factory("Bogus", 64)
    Traceback (most recent call last):
    ...
    ValueError: unknown index description 'Bogus'; accepted: Flat, MIH, MIH<n_tables> (e.g. MIH4), Table, TwoStage(<first>,<Flat|Cosine|L2>), TwoStage<prefix_bits>(<first>,<Flat|Cosine|L2>), Shard<n_shards>(<index>)
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
    if name in LEAVES and inner is None:
        kind, keyword = LEAVES[name]
        if number is not None:
            if keyword is None:
                raise ValueError(f"'{name}' takes no number in index description {whole!r}; accepted: {ACCEPTED}")
            kwargs = {keyword: number, **kwargs}
        return index_class(kind)(n_bits, **kwargs)
    if name == "TwoStage" and inner is not None:
        parts = _split_arguments(inner)
        if len(parts) != 2 or parts[1] not in RERANKERS:
            raise ValueError(f"TwoStage needs (<first stage>,<Flat|Cosine|L2>), got {text!r} in {whole!r}.")
        from hashlearn.index.two_stage import TwoStageIndex

        n_first_bits = number if number is not None else max(8, -(-n_bits // 16) * 8)
        first = _build(parts[0], check_n_bits(n_first_bits, "TwoStage prefix bits"), {}, whole)
        return TwoStageIndex(n_bits, first, rerank=RERANKERS[parts[1]], **kwargs)
    if name == "Shard" and inner is not None:
        from hashlearn.index.sharded import ShardedIndex

        if number is None:
            raise ValueError(f"Shard needs a shard count, e.g. 'Shard4(Flat)', got {text!r} in {whole!r}.")
        if inner.startswith("Shard"):
            raise ValueError(f"shards cannot themselves be sharded: {whole!r}.")
        _build(inner, n_bits, {}, whole)  # check the inner description before starting a cluster
        return ShardedIndex(n_bits, n_shards=number, shard_factory=inner, **kwargs)
    raise _unknown(text, whole)


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
    return ValueError(f"unknown index description {text!r}{where}; accepted: {ACCEPTED}")
