"""Shallow hashing estimators (``fit`` / ``transform`` / ``encode``) and their registry.

Each is a scikit-learn transformer (``clone``, ``Pipeline``, ``get_params``);
``est.save(directory)`` and :func:`load_estimator` persist a fitted one without pickle.
"""

from hashlearn.methods.base import BaseHasher, load_estimator
from hashlearn.methods.itq import ITQ
from hashlearn.methods.lsh import LSH
from hashlearn.methods.nac import NeuralActivationCodes
from hashlearn.methods.pcah import PCAH
from hashlearn.methods.sh import SpectralHashing
from hashlearn.methods.sign import SignHasher

#: name -> estimator class (one line per method)
SHALLOW_METHODS: dict[str, type[BaseHasher]] = {
    "lsh": LSH,
    "itq": ITQ,
    "sign": SignHasher,
    "pcah": PCAH,
    "sh": SpectralHashing,
    "nac": NeuralActivationCodes,
}


def build_shallow(name: str, **kwargs) -> BaseHasher:
    """An unfitted estimator of the registered method ``name`` with ``kwargs`` as parameters."""
    if name not in SHALLOW_METHODS:
        raise ValueError(f"unknown shallow method {name!r}; expected one of {sorted(SHALLOW_METHODS)}.")
    return SHALLOW_METHODS[name](**kwargs)


__all__ = ["BaseHasher", "ITQ", "LSH", "PCAH", "SignHasher", "SpectralHashing", "SHALLOW_METHODS", "build_shallow", "load_estimator"]
