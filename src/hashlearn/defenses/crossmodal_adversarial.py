"""Cross-modal adversarial training (the "+" models of CMLA: DCMH+, SSAH+).

Li et al. (NeurIPS 2019) train a cross-modal hash model on its own
adversarial samples: each modality's queries perturbed away from their paired
other-modality codes, so the towers learn to map perturbed inputs back next
to their pairs. :class:`CrossModalAdversarialTraining` is a
``batch_transform(model, inputs, labels) -> inputs`` for
:meth:`hashlearn.train.Trainer.fit`: for a share ``fraction`` of each paired
batch, the chosen modalities' inputs are replaced by adversarial copies made
against the current model; the unchanged cross-modal objective then trains on
the batch.

The attack is injected (defenses do not import attacks): ``attack_factory(tower,
modality, seed)`` returns an object whose ``attack(x, target_codes)`` gives a
result with ``x_adv`` -- e.g. a :class:`~hashlearn.attacks.cmla.CMLA` with a
budget per modality::

    from hashlearn.attacks import CMLA
    budgets = {"image": dict(eps=8 / 255, norm="linf", clip=(0.0, 1.0)), "text": dict(eps=1.0, norm="l2", clip=(0.0, 1.0))}
    transform = CrossModalAdversarialTraining(lambda tower, modality, seed: CMLA(tower, steps=5, seed=seed, **budgets[modality]))

>>> import torch
>>> from hashlearn.models.two_tower import TwoTowerHashModel
>>> class Nudge:  # a stand-in attack: moves every input by +0.01
...     def __init__(self, tower, modality, seed): pass
...     def attack(self, x, target_codes):
...         return type("Result", (), {"x_adv": x + 0.01})()
>>> model = TwoTowerHashModel(8, ("mlp", {"in_features": 4, "hidden": [8]}), ("mlp", {"in_features": 3, "hidden": [8]}))
>>> images, texts = CrossModalAdversarialTraining(Nudge, fraction=0.5)(model, (torch.zeros(4, 4), torch.zeros(4, 3)), None)
>>> int((images != 0).any(dim=1).sum()), int((texts != 0).any(dim=1).sum())
(2, 2)
"""

from __future__ import annotations

import numbers

import torch

from hashlearn._validation import check_positive_int
from hashlearn.codes import sign_to_codes

MODALITIES = ("image", "text")
_OTHER = {"image": "text", "text": "image"}


class CrossModalAdversarialTraining:
    """Replace part of each paired batch by cross-modal adversarial samples.

    Parameters
    ----------
    attack_factory : callable ``(tower, modality, seed) -> attack``
        Builds the attack on one tower; ``attack.attack(x, target_codes)`` must
        return an object with ``x_adv`` (the adversarial inputs).
    modalities : tuple of {"image", "text"}
        Which sides are perturbed (both by default).
    fraction : float in (0, 1]
        Share of each batch perturbed (the same items in every chosen modality);
        the rest stays clean.
    seed : int
        Seeds the choice of items and the attacks' seeds.
    """

    def __init__(self, attack_factory, *, modalities=MODALITIES, fraction: float = 0.5, seed: int = 0):
        if not callable(attack_factory):
            raise TypeError(f"attack_factory must be callable(tower, modality, seed) -> attack, got {attack_factory!r}.")
        self.attack_factory = attack_factory
        modalities = tuple(modalities)
        if not modalities or any(m not in MODALITIES for m in modalities) or len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities!r}.")
        self.modalities = modalities
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}.")
        self.fraction = float(fraction)
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.n_calls_ = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(modalities={self.modalities!r}, fraction={self.fraction!r}, seed={self.seed!r})"

    def __call__(self, model: torch.nn.Module, inputs, labels):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError(f"inputs must be a pair (images, texts) of a paired batch, got {type(inputs).__name__}.")
        if not hasattr(model, "tower"):
            raise TypeError(f"model must be a two-tower model with .tower(modality), got {type(model).__name__}.")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.n_calls_)
        self.n_calls_ += 1
        batch = {"image": inputs[0], "text": inputs[1]}
        n = len(inputs[0])
        chosen = torch.randperm(n, generator=generator)[: max(1, round(self.fraction * n))].to(inputs[0].device)
        out = dict(batch)
        for modality in self.modalities:
            other = model.tower(_OTHER[modality])
            was_training = other.training
            other.eval()
            try:
                with torch.no_grad():
                    paired_codes = sign_to_codes(other(batch[_OTHER[modality]][chosen]).cpu().numpy())
            finally:
                other.train(was_training)
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            attack = self.attack_factory(model.tower(modality), modality, seed)
            adversarial = attack.attack(batch[modality][chosen], paired_codes).x_adv
            out[modality] = batch[modality].clone()
            out[modality][chosen] = adversarial.to(batch[modality].dtype)
        return out["image"], out["text"]


__all__ = ["CrossModalAdversarialTraining"]
