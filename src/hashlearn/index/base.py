"""The contract every Hamming index implements.

Modelled on faiss's binary indexes: ``n_bits`` is in bits, codes are
``uint8 (n, n_bits // 8)``; ``search(queries, k) -> SearchResult``;
``range_search(queries, radius) -> RangeResult`` in CSR form. Ties are broken
by ascending id; missing results have id -1 and distance ``MISSING_DISTANCE``.

Persistence goes through :meth:`BinaryIndex.state` / :meth:`BinaryIndex.from_state`:
a JSON-serialisable ``meta`` dict plus named numpy arrays -- never pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from hashlearn._validation import check_n_bits, check_positive_int
from hashlearn.codes import SearchResult, validate_codes

MAX_BITS = 1024


class RangeResult(NamedTuple):
    """Radius search result in CSR form: the results of query ``q`` are
    ``distances[lims[q]:lims[q+1]]`` and ``ids[lims[q]:lims[q+1]]``, sorted by (distance, id)."""

    lims: np.ndarray  # int64 (nq + 1,)
    distances: np.ndarray  # int32
    ids: np.ndarray  # int64


class BinaryIndex(ABC):
    """Base class: validates inputs at the boundary, subclasses do the work."""

    #: name used in factory strings and saved files
    kind: str = "abstract"
    #: whether ``from_state`` keeps memory-mapped arrays as they are; a kind that copies them
    #: (a sharded index hands its shards to dask workers) is read by ``load_index`` even with
    #: ``mmap=True``: mapped, the file's pages and the copies would be resident at once
    keeps_mapped_arrays: bool = True

    def __init__(self, n_bits: int):
        self.n_bits = check_n_bits(n_bits, maximum=MAX_BITS)
        self.n_bytes = self.n_bits // 8

    # --- public API -----------------------------------------------------------------
    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of codes stored."""

    @abstractmethod
    def add(self, codes, ids=None) -> None:
        """Add codes; ``ids`` default to ``ntotal, ntotal + 1, ...``."""

    @abstractmethod
    def search(self, queries, k: int) -> SearchResult:
        """Exact (or index-specific) k nearest neighbours."""

    @abstractmethod
    def range_search(self, queries, radius: int) -> RangeResult:
        """All items within Hamming distance ``radius`` (inclusive)."""

    def remove_ids(self, ids) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not support remove_ids")

    def reconstruct(self, id_: int) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not support reconstruct")

    # --- persistence contract ---------------------------------------------------------
    @abstractmethod
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: JSON-serialisable metadata and named arrays."""

    @classmethod
    @abstractmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "BinaryIndex":
        """Inverse of :meth:`state` (arrays may be memory-mapped)."""

    # --- validation helpers shared by subclasses ------------------------------------
    def _check_codes(self, codes, name: str = "codes") -> np.ndarray:
        return validate_codes(codes, n_bits=self.n_bits, name=name)

    def _check_ids(self, ids, n: int) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or len(ids) != n:
            raise ValueError(f"ids must be a 1-D array with one id per code ({n}), got shape {ids.shape}.")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}.")
        if n and ids.min() < 0:
            raise ValueError("ids must be non-negative (-1 marks a missing result).")
        return ids.astype(np.int64, copy=False)

    def _check_k(self, k) -> int:
        """``k`` as an int >= 1, clamped to ``ntotal``: a search answers at most
        ``(nq, min(k, ntotal))`` results, so ``k=10**9`` cannot allocate ``nq x 10**9``."""
        return min(check_positive_int(k, "k"), self.ntotal)

    def _check_radius(self, radius) -> int:
        """``radius`` as an int in ``[0, n_bits]`` (no two codes are further apart than ``n_bits``)."""
        radius = check_positive_int(radius, "radius", minimum=0)
        return min(radius, self.n_bits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bits={self.n_bits}, ntotal={self.ntotal})"
