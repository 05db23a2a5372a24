"""DCH: deep Cauchy hashing (Cao, Long, Liu, Wang, CVPR 2018).

With the normalised Hamming distance ``d_ij = n_bits/2 * (1 - cos(u_i, u_j))``
and the Cauchy probability ``gamma / (gamma + d)`` of being similar, the
class-balanced Cauchy cross-entropy of a pair is
``s_ij * log(1 + d_ij/gamma) + (1 - s_ij) * log(1 + gamma/d_ij)``
(the paper's ``s log(d/gamma) + log(1 + gamma/d)`` rearranged), weighted as in
HashNet (mean over similar pairs + mean over dissimilar pairs). The Cauchy
quantization loss is ``mean_i log(1 + d(|u_i|, 1)/gamma)``. Distances are
clamped at ``1e-6`` so identical dissimilar codes give a large, finite loss.

Batch-wise: pairs ``i != j`` within the batch.

>>> import torch
>>> loss = DCHLoss(n_bits=8, n_classes=2)
>>> codes = torch.tensor([[1.0] * 8, [1.0] * 8])
>>> round(float(loss(codes, torch.tensor([0, 0]))), 6)   # identical, similar, binary: ~no loss
0.0
"""

from __future__ import annotations

import torch

from hashlearn.losses.base import LocalityLoss, class_balanced_pair_mean, unit_rows

MIN_DISTANCE = 1e-6


def cosine_hamming_distance(outputs: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` matrix ``n_bits/2 * (1 - cos)``, equal to the Hamming distance for ±1 codes."""
    unit = unit_rows(outputs)
    return outputs.shape[1] / 2 * (1 - unit @ unit.T)


class DCHLoss(LocalityLoss):
    """DCH Cauchy cross-entropy + ``lam`` times the Cauchy quantization loss.

    Parameters
    ----------
    n_bits, n_classes : int
    gamma : float, default 20.0
        Cauchy scale (the paper's choice).
    lam : float, default 0.1
        Weight of the Cauchy quantization loss (lambda in the paper).
    own_quantization : bool, default True
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, gamma: float = 20.0, lam: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}.")
        self.gamma, self.lam = float(gamma), float(lam)

    def compute_loss(self, outputs, targets, similarity):
        distance = cosine_hamming_distance(outputs).clamp_min(MIN_DISTANCE)
        pair_losses = similarity * torch.log1p(distance / self.gamma) + (1 - similarity) * torch.log1p(self.gamma / distance)
        loss = class_balanced_pair_mean(pair_losses, similarity)
        if self.own_quantization and self.lam:
            ones = torch.ones_like(outputs)
            cos_to_ones = (unit_rows(outputs.abs()) * unit_rows(ones)).sum(dim=1)
            distance_to_ones = self.n_bits / 2 * (1 - cos_to_ones)
            loss = loss + self.lam * torch.log1p(distance_to_ones / self.gamma).mean()
        return loss
