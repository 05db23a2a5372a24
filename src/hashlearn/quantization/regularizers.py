"""Classic quantization regularizers (``"reg"``), each with its own weight.

* bit balance: every bit should be +1 for half the items. ``"mean"``:
  ``mean_j (mean_i u_ij)^2``; ``"entropy"``: ``mean_j (log 2 - H(p_j))`` with
  ``p_j = (mean_i u_ij + 1) / 2`` the bit's share of ones (0 when balanced);
* bit decorrelation: ``||U^T U / B - I||_F^2 / n_bits^2`` — the mean squared
  entry, so the scale does not grow with ``n_bits^2``;
* quantization error: ``mean (|u| - 1)^2``.

>>> import torch
>>> balanced = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
>>> float(RegularizerQuantizer()(balanced))   # balanced, decorrelated, binary
0.0
"""

from __future__ import annotations

import math

import torch

from hashlearn.quantization.base import Quantizer

BALANCE_KINDS = ("mean", "entropy")
PROBABILITY_EPS = 1e-6


def bit_balance(outputs: torch.Tensor, kind: str = "mean") -> torch.Tensor:
    means = outputs.mean(dim=0)
    if kind == "mean":
        return means.pow(2).mean()
    p = ((means + 1) / 2).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    entropy = -(p * torch.log(p) + (1 - p) * torch.log1p(-p))
    return (math.log(2) - entropy).mean()


def bit_decorrelation(outputs: torch.Tensor) -> torch.Tensor:
    batch, n_bits = outputs.shape
    covariance = outputs.T @ outputs / batch
    identity = torch.eye(n_bits, dtype=outputs.dtype, device=outputs.device)
    return (covariance - identity).pow(2).mean()


def quantization_error(outputs: torch.Tensor) -> torch.Tensor:
    return (outputs.abs() - 1).pow(2).mean()


class RegularizerQuantizer(Quantizer):
    """Weighted sum of bit balance, bit decorrelation and quantization error.

    Parameters
    ----------
    balance_weight, decorrelation_weight, error_weight : float, default 1.0
    balance : {"mean", "entropy"}, default "mean"
    """

    def __init__(self, *, balance_weight: float = 1.0, decorrelation_weight: float = 1.0, error_weight: float = 1.0, balance: str = "mean"):
        super().__init__()
        if balance not in BALANCE_KINDS:
            raise ValueError(f"balance must be one of {BALANCE_KINDS}, got {balance!r}.")
        weights = {"balance_weight": balance_weight, "decorrelation_weight": decorrelation_weight, "error_weight": error_weight}
        for name, value in weights.items():
            if not float(value) >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        self.balance_weight, self.decorrelation_weight, self.error_weight = (float(v) for v in weights.values())
        self.balance = balance

    def compute(self, outputs):
        loss = outputs.new_zeros(())
        if self.balance_weight:
            loss = loss + self.balance_weight * bit_balance(outputs, self.balance)
        if self.decorrelation_weight:
            loss = loss + self.decorrelation_weight * bit_decorrelation(outputs)
        if self.error_weight:
            loss = loss + self.error_weight * quantization_error(outputs)
        return loss

    def extra_repr(self) -> str:
        return (
            f"balance_weight={self.balance_weight}, decorrelation_weight={self.decorrelation_weight}, "
            f"error_weight={self.error_weight}, balance={self.balance!r}"
        )
