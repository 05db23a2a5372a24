"""Adversarial training of hash models through the Trainer's ``batch_transform`` hook.

Each training batch is (partly) replaced by adversarial copies pushed away
from a reference code, then the unchanged objective trains on it. The attack
that perturbs the batch is injected (``attack=PGD`` for Madry-style training;
any :class:`~hashlearn.attacks.base.HashAttack` class works), so this module
does not import :mod:`hashlearn.attacks` (defenses sit beside attacks, not on them):

* ``reference="center"`` -- CgAT style (X. Wang, Y. Lin, Y. Chen, X. Xu, Y. Liu,
  "Center-guided Adversarial Training for Deep Hashing-based Retrieval",
  WWW 2023): the reference is the *center code* of the item's class, the sign
  of a running mean of the model's outputs on that class (for multi-hot
  labels, the sign of the sum of its classes' means). Perturbing away from
  the class center is the worst case for the retrieval of that class.
* ``reference="benign"`` -- ATRDH style (X. Wang, Z. Zhang, G. Lu, Y. Xu,
  "Targeted Attack and Defense for Deep Hashing", SIGIR 2021): the
  reference is the item's own clean code.

Judge the result with :func:`hashlearn.attacks.evaluation.robustness_report`
(clean mAP and mAP under every attack).

>>> import numpy as np, torch
>>> from hashlearn.attacks import PGD
>>> from hashlearn.models import HashModel
>>> transform = AdversarialTraining(attack=PGD, eps=0.1, steps=2)
>>> transform
AdversarialTraining(reference='center', attack=PGD, eps=0.1, norm='linf', steps=2, step_size=None, fraction=1.0, momentum=0.9, seed=0, clip=(0.0, 1.0))
>>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
>>> x, y = torch.rand(4, 6), torch.tensor([0, 1, 0, 1])
>>> x_adv = transform(model, x, y)
>>> x_adv.shape, bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
(torch.Size([4, 6]), True)
"""

from __future__ import annotations

import torch

from hashlearn._validation import check_positive_int, check_real
from hashlearn.codes import sign_to_codes

REFERENCES = ("center", "benign")


class AdversarialTraining:
    """A ``batch_transform(model, x, y) -> x`` for :meth:`hashlearn.train.Trainer.fit`.

    Parameters
    ----------
    reference : {"center", "benign"}
        Code the perturbation pushes away from (see the module docstring).
    attack : HashAttack subclass
        The attack class, e.g. :class:`~hashlearn.attacks.PGD`; it is built per
        batch as ``attack(model, eps=, norm=, steps=, step_size=, random_start=True,
        seed=, clip=)`` and its ``attack(x, target_codes=None)`` must return an
        object with ``x_adv``.
    eps, norm, steps, step_size, clip
        The attack's budget and schedule (validated by the attack class).
    fraction : float in (0, 1]
        Share of each batch replaced by its adversarial copy (chosen at random);
        the rest stays clean, which keeps clean retrieval quality.
    momentum : float in [0, 1)
        Running-mean factor of the class centers (``center`` only).
    seed : int
        Seeds the random starts and the choice of perturbed items.

    Example: ``Trainer(config).fit(model, objective, train, val,
    batch_transform=AdversarialTraining(attack=PGD, eps=8/255, steps=5))``.
    """

    def __init__(
        self,
        reference: str = "center",
        *,
        attack,
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = 5,
        step_size: float | None = None,
        fraction: float = 1.0,
        momentum: float = 0.9,
        seed: int = 0,
        clip: tuple[float, float] | None = (0.0, 1.0),
    ):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}.")
        self.reference = reference
        if not callable(attack):
            raise TypeError(f"attack must be an attack class such as hashlearn.attacks.PGD, got {type(attack).__name__} {attack!r}.")
        self.attack = attack
        self.eps = check_real(eps, "eps", minimum=0.0)
        self.norm = norm
        self.steps = check_positive_int(steps, "steps")
        self.step_size = step_size
        self.fraction = check_real(fraction, "fraction", minimum=0.0)
        if self.fraction > 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
        self.momentum = check_real(momentum, "momentum", minimum=0.0, strict=False)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.clip = clip
        # built once here so a bad norm / step_size / clip fails now, not in the first batch
        self._build_attack(torch.nn.Identity(), seed=0)
        self.class_means_: torch.Tensor | None = None
        self.class_seen_: torch.Tensor | None = None
        self.n_calls_ = 0

    def __repr__(self) -> str:
        names = ["eps", "norm", "steps", "step_size", "fraction", "momentum", "seed", "clip"]
        attack = getattr(self.attack, "__name__", repr(self.attack))
        values = [f"reference={self.reference!r}", f"attack={attack}"] + [f"{n}={getattr(self, n)!r}" for n in names]
        return f"{type(self).__name__}({', '.join(values)})"

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.n_calls_)
        self.n_calls_ += 1
        chosen = torch.randperm(len(x), generator=generator)[: max(1, round(self.fraction * len(x)))].to(x.device)
        attack = self._build_attack(model, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        if self.reference == "benign":
            result = attack.attack(x[chosen])  # pushes away from the clean code
        else:
            centers = self.center_codes(model, x, y)
            result = attack.attack(x[chosen], target_codes=sign_to_codes(centers[chosen]))
        x = x.clone()
        x[chosen] = result.x_adv.to(x.dtype)
        return x

    def _build_attack(self, model: torch.nn.Module, seed: int):
        return self.attack(
            model, eps=self.eps, norm=self.norm, steps=self.steps, step_size=self.step_size,
            random_start=True, seed=seed, clip=self.clip,
        )

    @torch.no_grad()
    def center_codes(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Update the running class means with this batch; return each item's center (±1, ties +1)."""
        was_training = model.training
        model.eval()
        try:
            outputs = model(x).float()
        finally:
            model.train(was_training)
        one_hot = self._one_hot(y, outputs.shape[1], outputs.device)
        counts = one_hot.sum(dim=0)
        batch_means = (one_hot.T @ outputs) / counts.clamp_min(1)[:, None]
        if self.class_means_ is None:
            self.class_means_ = torch.zeros_like(batch_means)
            self.class_seen_ = torch.zeros(len(counts), dtype=torch.bool, device=outputs.device)
        present = counts > 0
        update = present & self.class_seen_
        first = present & ~self.class_seen_
        self.class_means_[update] = self.momentum * self.class_means_[update] + (1 - self.momentum) * batch_means[update]
        self.class_means_[first] = batch_means[first]
        self.class_seen_ |= present
        means = self.class_means_
        summed = one_hot @ torch.where(means >= 0, 1.0, -1.0)
        return torch.where(summed >= 0, 1.0, -1.0)

    def _one_hot(self, y: torch.Tensor, n_bits: int, device) -> torch.Tensor:
        """``(B, n_classes)`` float indicator of each item's classes; grows the center table as needed."""
        if y.dim() == 2:
            one_hot = (y > 0).float()
        else:
            if y.dtype.is_floating_point:
                y = y.long()
            n_classes = int(y.max()) + 1
            if self.class_means_ is not None:
                n_classes = max(n_classes, len(self.class_means_))
            one_hot = torch.nn.functional.one_hot(y, n_classes).float()
        one_hot = one_hot.to(device)
        if self.class_means_ is not None and one_hot.shape[1] > len(self.class_means_):
            n_new = one_hot.shape[1] - len(self.class_means_)
            self.class_means_ = torch.cat([self.class_means_, torch.zeros(n_new, n_bits, device=device)])
            self.class_seen_ = torch.cat([self.class_seen_, torch.zeros(n_new, dtype=torch.bool, device=device)])
        return one_hot
