"""DBDH: deep balanced discrete hashing (Zheng, Zhu, Wang, Li, Neurocomputing 2020).

DPSH's pairwise likelihood computed on the *discrete* codes ``b = sign(u)``,
with a straight-through estimator (the forward pass uses ``b``, the backward
pass treats ``sign`` as the identity), plus a balance term on each code:
``alpha * mean_i (mean_k u_ik)^2`` -- every code should have as many +1 as -1
bits, which spreads codes over the Hamming space.

The straight-through sign is DBDH's own quantization (the likelihood sees
binary codes, so nothing else pulls ``u`` to ±1). With a pluggable quantizer
(``"dbdh+hswd"``, ``own_quantization=False``) the likelihood reads the
continuous ``u`` and the quantizer does the binarisation; the balance term
stays, as the locality part of the objective.

>>> import torch
>>> loss = DBDHLoss(n_bits=8, n_classes=3)
>>> outputs = torch.tanh(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
>>> float(loss(outputs, torch.tensor([0, 0, 1, 2]))) > 0
True
"""

from __future__ import annotations

import torch

from hashlearn.losses.base import LocalityLoss, binarize
from hashlearn.losses.dpsh import pairwise_likelihood_loss


def straight_through_sign(outputs: torch.Tensor) -> torch.Tensor:
    """``sign(u)`` (±1, +1 where ``u > 0``) in the forward pass, gradient 1 in the backward pass."""
    return outputs + (binarize(outputs) - outputs).detach()


def code_balance(outputs: torch.Tensor) -> torch.Tensor:
    """``mean_i (mean_k u_ik)^2``: 0 when each code has equally many positive and negative entries."""
    return outputs.mean(dim=1).pow(2).mean()


class DBDHLoss(LocalityLoss):
    """DBDH: pairwise likelihood on straight-through codes + ``alpha`` times the code balance.

    Parameters
    ----------
    n_bits, n_classes : int
    alpha : float, default 0.1
        Weight of the balance term (the authors' value).
    own_quantization : bool, default True
        True: the likelihood reads ``sign(u)`` with straight-through gradients;
        False: it reads ``u`` (a pluggable quantizer binarises instead).
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, alpha: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.alpha = float(alpha)
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {alpha!r}.")

    def compute_loss(self, outputs, targets, similarity):
        codes = straight_through_sign(outputs) if self.own_quantization else outputs
        loss = pairwise_likelihood_loss(codes, similarity)
        if self.alpha:
            loss = loss + self.alpha * code_balance(outputs)
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
