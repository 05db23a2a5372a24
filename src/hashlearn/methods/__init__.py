"""Shallow hashing estimators (``fit`` / ``transform`` / ``encode``) and their registry."""

from hashlearn.methods.base import BaseHasher
from hashlearn.methods.itq import ITQ
from hashlearn.methods.lsh import LSH

#: name -> estimator class (one line per method)
SHALLOW_METHODS: dict[str, type[BaseHasher]] = {
    "lsh": LSH,
    "itq": ITQ,
}


def build_shallow(name: str, **kwargs) -> BaseHasher:
    if name not in SHALLOW_METHODS:
        raise ValueError(f"unknown shallow method {name!r}; expected one of {sorted(SHALLOW_METHODS)}.")
    return SHALLOW_METHODS[name](**kwargs)


__all__ = ["BaseHasher", "ITQ", "LSH", "SHALLOW_METHODS", "build_shallow"]
