"""Base for indexes that keep their codes in a :class:`FlatIndex` and derive lookup
structures from them (multi-index hashing, hash table)."""

from __future__ import annotations

import threading

import numpy as np

from hashlearn.index.base import BinaryIndex
from hashlearn.index.flat import FlatIndex


class StoredCodesIndex(BinaryIndex):
    """Delegates storage, ids, removal and persistence to a flat store; subclasses
    build their structure lazily in :meth:`build` and drop it when the codes change.

    The structures are never saved: :meth:`from_state` rebuilds them from the codes,
    so a tampered file cannot point the compiled kernels out of bounds.
    """

    def __init__(self, n_bits: int):
        super().__init__(n_bits)
        self._flat = FlatIndex(n_bits)
        self._built = False
        self._build_lock = threading.Lock()
        #: queries of the last search or range search answered by the flat scan
        self.last_scanned_queries = 0

    def _params(self) -> dict:
        """Constructor arguments besides ``n_bits`` (saved in the meta)."""
        return {}

    def build(self) -> None:
        """Build the lookup structure now (otherwise the first search does).

        Safe to call from several threads: one builds, the others wait for it.
        """
        with self._build_lock:
            self._build()
            self._built = True

    def _build(self) -> None:
        """Subclass hook: derive the lookup structure from ``self._flat``."""

    def _ensure_built(self) -> None:
        if not self._built:
            with self._build_lock:
                if not self._built:
                    self._build()
                    self._built = True

    @property
    def flat(self) -> FlatIndex:
        """The flat store holding the codes (searching it scans them all)."""
        return self._flat

    @property
    def ntotal(self) -> int:
        return self._flat.ntotal

    @property
    def codes(self) -> np.ndarray:
        """The stored codes ``(ntotal, n_bytes)`` (a read-only view)."""
        return self._flat.codes

    @property
    def ids(self) -> np.ndarray:
        """The id of every stored code, in storage order."""
        return self._flat.ids

    def add(self, codes, ids=None) -> None:
        self._flat.add(codes, ids)
        self._built = False

    def remove_ids(self, ids) -> int:
        removed = self._flat.remove_ids(ids)
        if removed:
            self._built = False
        return removed

    def reconstruct(self, id_: int) -> np.ndarray:
        return self._flat.reconstruct(id_)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self._flat.state()
        meta.update(kind=self.kind, **self._params())
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]):
        if meta.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"{cls.__name__}.from_state got the state of a {meta['kind']!r} index, expected {cls.kind!r}.")
        params = {key: meta[key] for key in cls(meta["n_bits"])._params() if key in meta}
        index = cls(meta["n_bits"], **params)
        index._flat._load_storage(meta, arrays)
        return index

    def __repr__(self) -> str:
        params = "".join(f", {key}={value!r}" for key, value in self._params().items())
        return f"{type(self).__name__}(n_bits={self.n_bits}{params}, ntotal={self.ntotal})"
