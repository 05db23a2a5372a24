"""Hamming indexes: flat, multi-index hashing, hash table, two-stage, sharded; factory and io."""

from hashlearn.index._threads import get_num_threads, set_num_threads
from hashlearn.index.base import BinaryIndex, RangeResult
from hashlearn.index.factory import index_factory
from hashlearn.index.flat import FlatIndex
from hashlearn.index.mih import MultiIndexHashing
from hashlearn.index.table import HashTableIndex

__all__ = ["BinaryIndex", "RangeResult", "FlatIndex", "MultiIndexHashing", "HashTableIndex", "index_factory", "get_num_threads", "set_num_threads"]
