"""Defenses: adversarial training against adversarial queries, poison detection against backdoors.

The names load on first use, so ``import hashlearn.defenses.spectral`` (numpy
only) does not pull in torch through the adversarial-training module.
Defenses never import :mod:`hashlearn.attacks`: an attack a defense needs is
passed in (``AdversarialTraining(attack=PGD)``).
"""

import importlib

_EXPORTS = {
    "AdversarialTraining": "hashlearn.defenses.adversarial_training",
    "ActivationClustering": "hashlearn.defenses.activation_clustering",
    "SpectralSignature": "hashlearn.defenses.spectral",
    "detection_rates": "hashlearn.defenses.detection",
    "latent_features": "hashlearn.defenses.detection",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hashlearn.defenses' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
