"""Hamming indexes: flat, multi-index hashing, hash table, two-stage, sharded; factory and io."""

from hashlearn.index.base import BinaryIndex, RangeResult

__all__ = ["BinaryIndex", "RangeResult"]
