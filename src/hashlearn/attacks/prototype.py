"""Prototype-code targeted attack: pull queries toward the code of the target class."""

from __future__ import annotations

import numpy as np

from hashlearn.attacks.dhta import TargetedHashAttack, majority_code
from hashlearn.codes import codes_to_pm1, pack_bits


class PrototypeAttack(TargetedHashAttack):
    """Targeted attack toward a class prototype code.

    The prototype of class ``c`` is the sign of the mean of the ``{-1, +1}``
    database codes labelled ``c`` (ties give bit 1) -- the bitwise majority of
    the whole class, i.e. DHTA with ``k`` = the class size, as in the
    prototype-code targets of ProS-GAN (X. Wang, Z. Zhang, B. Wu, F. Shen,
    G. Lu, "Prototype-supervised Adversarial Network for Targeted Attack of
    Deep Hashing", CVPR 2021), computed here directly from the database
    rather than learned. The attack minimises ``-<f(x + delta), p> / m``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
    >>> database = torch.rand(20, 6)
    >>> attack = PrototypeAttack(model, model.encode(database), np.arange(20) % 2, eps=0.1, steps=5)
    >>> attack.target_codes_for([0, 1, 0]).shape
    (3, 1)
    """

    name = "prototype"

    def __init__(self, model, database_codes, database_labels, *, steps: int = 100, **kwargs):
        super().__init__(model, database_codes, database_labels, steps=steps, **kwargs)

    def prototype_codes(self, labels) -> dict[int, np.ndarray]:
        """Packed prototype code (one row) of each class id in ``labels``."""
        database = codes_to_pm1(self.database_codes)
        return {int(c): pack_bits(majority_code(database[self._members(int(c))])[None]) for c in np.unique(labels)}

    def target_codes_for(self, target_labels) -> np.ndarray:
        labels = self._check_target_labels(target_labels)
        prototypes = self.prototype_codes(labels)
        return np.concatenate([prototypes[int(c)] for c in labels]) if len(labels) else self.database_codes[:0]
