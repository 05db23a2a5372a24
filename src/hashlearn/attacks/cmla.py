"""CMLA: the cross-modal adversarial query of "Cross-Modal Learning with Adversarial Samples".

C. Li, S. Gao, C. Deng, D. Xie, W. Liu, "Cross-Modal Learning with
Adversarial Samples", NeurIPS 2019. A query of one modality (an image, or a
text in its feature space) is perturbed within a norm budget so that its code
moves away from the codes of its *paired* item in the other modality -- the
cross-modal retrieval fails -- while it stays close to its own clean code,
so that its same-modality retrieval looks untouched.

With ``h = tanh(alpha * z(x + delta))`` the relaxed code from the tower's
pre-activation ``z`` (``alpha`` annealed geometrically from ``alpha_start`` to
``alpha_end``, as in HAG), ``b_p`` the paired other-modality code and ``b_c``
the query's clean code (both ``{-1, +1}^m``), CMLA minimises per query

    ``inter_weight * (<h, b_p> / m + 1)^2  +  intra_weight * (1 - <h, b_c> / m)^2``

The inter-modal term is 0 when the code is the opposite of the paired code,
the intra-modal term is 0 when the code equals the clean code. On bits where
``b_p`` and ``b_c`` agree the two terms pull in opposite directions
(``intra_weight`` sets the trade-off); on bits where they differ both agree.

Norms: images in pixel space (``linf`` or ``l2``, ``clip=(0, 1)``); texts in
their feature space -- binary bag-of-words with ``clip=(0, 1)``, or sentence
embeddings with ``clip=None`` -- usually with an ``l2`` budget, which the
caller states relative to the features' typical norm.

``attack(x, target_codes)`` takes the paired codes (packed ``uint8``, one row
per query) as ``target_codes``; records add ``bits_from_paired`` (Hamming
distance of the adversarial code to the paired code; the attack raises it)
next to ``bits_flipped`` (distance to the clean code; the attack keeps it low).

Examples
--------
>>> import torch
>>> from hashlearn.codes import sign_to_codes
>>> from hashlearn.models import HashModel
>>> _ = torch.manual_seed(0)
>>> tower = HashModel("mlp", 16, {"in_features": 8, "hidden": (16,)})
>>> x, paired = torch.rand(4, 8), sign_to_codes(torch.randn(4, 16).numpy())
>>> result = CMLA(tower, eps=0.1, steps=5).attack(x, paired)
>>> bool((result.x_adv - x).abs().max() <= 0.1 + 1e-6), sorted(result.records)[:2]
(True, ['bits_flipped', 'bits_from_paired'])
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn.attacks.base import HashAttack, _check_float, geometric_slope, pre_activation


class CMLA(HashAttack):
    """Cross-modal adversarial queries: away from the paired code, close to the clean code.

    Parameters
    ----------
    model : torch.nn.Module
        The tower of the query's modality (e.g. ``two_tower.tower("image")``).
    inter_weight : float, default 1.0
        Weight of the inter-modal term (away from the paired other-modality code).
    intra_weight : float, default 0.5
        Weight of the intra-modal term (close to the query's clean code); 0 gives
        a purely cross-modal targeted-away attack.
    alpha_start, alpha_end : float
        Slope of the relaxed sign at the first and last step.
    eps, norm, steps, step_size, clip, ... : see :class:`~hashlearn.attacks.base.HashAttack`.
    """

    name = "cmla"
    targeted = True  # target_codes are the paired other-modality codes

    def __init__(self, model, *, steps: int = 100, inter_weight: float = 1.0, intra_weight: float = 0.5,
                 alpha_start: float = 1.0, alpha_end: float = 10.0, **kwargs):
        super().__init__(model, steps=steps, **kwargs)
        self.inter_weight = _check_float(inter_weight, "inter_weight", minimum=0.0)
        self.intra_weight = _check_float(intra_weight, "intra_weight", minimum=0.0, strict=False)
        self.alpha_start = _check_float(alpha_start, "alpha_start", minimum=0.0)
        self.alpha_end = _check_float(alpha_end, "alpha_end", minimum=0.0)
        self._clean: torch.Tensor | None = None

    def alpha(self, step: int) -> float:
        """Slope of ``tanh`` at ``step``: geometric from ``alpha_start`` to ``alpha_end``."""
        return geometric_slope(step, self.steps, self.alpha_start, self.alpha_end)

    def outputs(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return torch.tanh(self.alpha(step) * pre_activation(self.model, x))

    def inter_term(self, outputs: torch.Tensor, paired: torch.Tensor) -> torch.Tensor:
        """``(<h, b_p> / m + 1)^2`` per query."""
        return ((outputs * paired).sum(dim=1) / outputs.shape[1] + 1) ** 2

    def intra_term(self, outputs: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """``(1 - <h, b_c> / m)^2`` per query."""
        return (1 - (outputs * clean).sum(dim=1) / outputs.shape[1]) ** 2

    def default_objective(self, outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        loss = self.inter_weight * self.inter_term(outputs, reference)
        if self.intra_weight:
            loss = loss + self.intra_weight * self.intra_term(outputs, self._clean)
        return loss

    def _perturb(self, x, reference, generator):
        with torch.no_grad():  # the batch's clean codes anchor the intra-modal term
            self._clean = torch.where(self.model(x) > 0, 1.0, -1.0).to(x.dtype)
        try:
            return super()._perturb(x, reference, generator)
        finally:
            self._clean = None

    def _records(self, x, x_adv, clean_sign, adv_outputs, target) -> dict[str, np.ndarray]:
        records = super()._records(x, x_adv, clean_sign, adv_outputs, target)
        records["bits_from_paired"] = records.pop("bits_to_target")
        return records

    def _extra_repr(self) -> list[str]:
        return ["inter_weight", "intra_weight", "alpha_start", "alpha_end"]


__all__ = ["CMLA"]
