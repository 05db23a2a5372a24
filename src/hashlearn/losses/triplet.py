"""Supervised triplet loss on relaxed Hamming distances.

For every anchor ``a`` of the batch, every positive ``p`` (shares a label with
``a``, ``p != a``) and every negative ``n`` (shares none), the hinge
``max(0, margin + d(a, p) - d(a, n))`` with the relaxed normalised Hamming
distance ``d(i, j) = (1 - <u_i, u_j> / n_bits) / 2`` -- the fraction of
differing bits when ``u`` is ±1 -- averaged over all valid triplets of the
batch ("batch all"). Its own quantization term is DPSH's ``eta * mean (u - sign(u))^2``.

>>> import torch
>>> loss = TripletLoss(n_bits=8, n_classes=2, own_quantization=False)
>>> code = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
>>> float(loss(torch.stack([code, code, -code]), torch.tensor([0, 0, 1])))   # already separated by > margin
0.0
"""

from __future__ import annotations

import torch

from hashlearn.losses.base import LocalityLoss
from hashlearn.losses.dpsh import sign_quantization_error


def relaxed_hamming_fraction(outputs: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` matrix ``(1 - <u_i, u_j> / n_bits) / 2``: the share of differing bits for ±1 codes."""
    return (1 - outputs @ outputs.T / outputs.shape[1]) / 2


def batch_all_triplet_loss(distances: torch.Tensor, similarity: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``max(0, margin + d[a, p] - d[a, n])`` over valid ``(a, p, n)``; 0 (attached) when none is valid."""
    batch = distances.shape[0]
    eye = torch.eye(batch, dtype=torch.bool, device=distances.device)
    positive = (similarity > 0) & ~eye
    negative = similarity <= 0
    valid = positive[:, :, None] & negative[:, None, :]
    hinge = (margin + distances[:, :, None] - distances[:, None, :]).clamp_min(0)
    selected = torch.where(valid, hinge, torch.zeros((), dtype=hinge.dtype, device=hinge.device))
    return selected.sum() / valid.sum().clamp_min(1).to(hinge.dtype)


class TripletLoss(LocalityLoss):
    """Batch-all triplet hinge on relaxed Hamming fractions + ``eta`` times the quantization error.

    Parameters
    ----------
    n_bits, n_classes : int
    margin : float, default 0.25
        Required gap between the negative's and the positive's share of differing bits.
    eta : float, default 0.1
        Weight of ``mean (u - sign(u))^2``.
    own_quantization : bool, default True
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, margin: float = 0.25, eta: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.margin, self.eta = float(margin), float(eta)
        if not 0 <= self.margin <= 1:
            raise ValueError(f"margin must be in [0, 1] (a share of the bits), got {margin!r}.")
        if not self.eta >= 0:
            raise ValueError(f"eta must be a number >= 0, got {eta!r}.")

    def compute_loss(self, outputs, targets, similarity):
        loss = batch_all_triplet_loss(relaxed_hamming_fraction(outputs), similarity, self.margin)
        if self.own_quantization and self.eta:
            loss = loss + self.eta * sign_quantization_error(outputs)
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, eta={self.eta}"
