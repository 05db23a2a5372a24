"""DHTA and P2P: targeted attacks toward an anchor code (Bai et al. 2020)."""

from __future__ import annotations

import numpy as np
import torch

from hashlearn._validation import check_labels, check_random_state
from hashlearn.attacks.base import HashAttack, _check_int, inner_product_objective
from hashlearn.codes import codes_to_pm1, pack_bits, validate_codes


def target_objective(outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``-<outputs, target> / n_bits``: minimising it pulls codes toward the target code."""
    return -inner_product_objective(outputs, reference)


def majority_code(pm1_codes: np.ndarray) -> np.ndarray:
    """Bitwise majority of ``(k, n_bits)`` codes in ``{-1, +1}`` as 0/1 bits; a tie gives bit 1."""
    return (pm1_codes.sum(axis=0) >= 0).astype(np.uint8)


class TargetedHashAttack(HashAttack):
    """A targeted attack whose target codes are derived from a labelled database.

    ``attack(x, target_codes=...)`` takes the codes directly;
    ``attack(x, target_labels=...)`` derives them with :meth:`target_codes_for`.
    """

    targeted = True

    @classmethod
    def from_options(cls, model, *, database_codes=None, database_labels=None, **options) -> "TargetedHashAttack":
        """Like :meth:`HashAttack.from_options`; the targets come from ``database_codes`` / ``database_labels``."""
        if database_codes is None or database_labels is None:
            raise ValueError(f"{cls.__name__} is targeted: pass database_codes and database_labels (its targets come from them).")
        return cls(model, database_codes, database_labels, **options)

    def __init__(self, model, database_codes, database_labels, **kwargs):
        super().__init__(model, **kwargs)
        self.database_codes = validate_codes(database_codes, name="database_codes")
        self.database_labels = check_labels(database_labels, "database_labels", n_samples=len(self.database_codes))

    def default_objective(self, outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return target_objective(outputs, reference)

    def attack(self, x, target_codes=None, target_labels=None):
        if (target_codes is None) == (target_labels is None):
            raise ValueError("pass exactly one of target_codes (packed codes) and target_labels (class ids).")
        if target_labels is not None:
            target_codes = self.target_codes_for(target_labels)
        return super().attack(x, target_codes)

    def target_codes_for(self, target_labels) -> np.ndarray:
        """Packed target codes ``(n, n_bits // 8)`` for class ids ``(n,)``."""
        raise NotImplementedError

    def _members(self, label: int) -> np.ndarray:
        """Database rows carrying ``label`` (single-label equality or a set multi-hot bit)."""
        if self.database_labels.ndim == 1:
            members = np.flatnonzero(self.database_labels == label)
        elif 0 <= label < self.database_labels.shape[1]:
            members = np.flatnonzero(self.database_labels[:, label])
        else:
            members = np.zeros(0, np.int64)
        if len(members) == 0:
            raise ValueError(f"target_labels contains {label}, which no database item carries.")
        return members

    def _check_target_labels(self, target_labels) -> np.ndarray:
        labels = check_labels(target_labels, "target_labels")
        if labels.ndim != 1:
            raise ValueError(f"target_labels must be 1-D class ids, got shape {labels.shape}.")
        return labels


class DHTA(TargetedHashAttack):
    """Deep hashing targeted attack: pull the query code toward an anchor code.

    J. Bai, B. Chen, Y. Li, D. Wu, W. Guo, S. Xia, E. Yang, "Targeted Attack for
    Deep Hashing based Retrieval", ECCV 2020. For each query, ``k`` database
    items with the target label are drawn at random (seeded); their bitwise
    majority code (ties give bit 1) is the *anchor* ``a``, and the attack
    minimises ``-<f(x + delta), a> / m``. ``k=1`` is the paper's P2P
    (point-to-point) baseline, see :class:`P2P`.

    Parameters beyond :class:`~hashlearn.attacks.base.HashAttack`: the packed
    ``database_codes`` ``(N, n_bits // 8)``, their ``database_labels`` (``(N,)``
    ids or ``(N, C)`` multi-hot) and ``k``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
    >>> database = torch.rand(20, 6)
    >>> attack = DHTA(model, model.encode(database), np.arange(20) % 2, k=3, eps=0.1, steps=5)
    >>> result = attack.attack(torch.rand(2, 6), target_labels=[1, 1])
    >>> sorted(result.records)
    ['bits_flipped', 'bits_to_target', 'l2', 'linf', 'rmse']
    """

    name = "dhta"

    def __init__(self, model, database_codes, database_labels, *, k: int = 9, steps: int = 100, **kwargs):
        super().__init__(model, database_codes, database_labels, steps=steps, **kwargs)
        self.k = _check_int(k, "k")

    def target_codes_for(self, target_labels) -> np.ndarray:
        labels = self._check_target_labels(target_labels)
        rng = check_random_state(self.seed)
        database = codes_to_pm1(self.database_codes)
        bits = np.empty((len(labels), database.shape[1]), np.uint8)
        for row, label in enumerate(labels):
            members = self._members(int(label))
            chosen = rng.choice(members, size=min(self.k, len(members)), replace=False)
            bits[row] = majority_code(database[chosen])
        return pack_bits(bits)

    def _extra_repr(self) -> list[str]:
        return ["k"]


class P2P(DHTA):
    """Point-to-point targeted attack: DHTA with a single random target item (``k=1``)."""

    name = "p2p"

    def __init__(self, model, database_codes, database_labels, **kwargs):
        if kwargs.get("k", 1) != 1:
            raise ValueError(f"k must be 1 for P2P (one target item), got {kwargs['k']!r}; use DHTA for more.")
        kwargs.pop("k", None)
        super().__init__(model, database_codes, database_labels, k=1, **kwargs)
