"""Classic quantization regularizers (``"reg"``), each with its own weight and form.

* bit balance -- every bit should be +1 for half the items. ``balance="mean"``:
  ``mean_j (mean_i u_ij)^2``; ``"entropy"``: ``mean_j (log 2 - H(p_j))`` with
  ``p_j = (mean_i u_ij + 1) / 2`` the bit's share of ones (0 when balanced);
* bit decorrelation. ``decorrelation="outputs"``: ``||U^T U / B - I||_F^2 / n_bits^2``
  on the batch's outputs; ``"weights"``: ``||W^T W - I||_F^2 / n_bits^2`` on the
  hash layer's projection ``W (d, n_bits)`` (orthonormal projections, independent
  of the batch; the quantizer must be attached to the model, see :meth:`attach`).
  Both are mean squared entries, so the scale does not grow with ``n_bits^2``;
* quantization error. ``error="square"``: ``mean (|u| - 1)^2``; ``"entropy"``:
  ``mean H((u + 1) / 2) / log 2``, the binary entropy of each entry read as the
  probability of a 1 -- 0 at ±1, 1 at 0; flat near 0 and steep near ±1, where the
  square's pull vanishes (it finishes binarising what is almost binary).

>>> import torch
>>> balanced = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
>>> float(RegularizerQuantizer()(balanced))   # balanced, decorrelated, binary
0.0
>>> round(float(RegularizerQuantizer(balance_weight=0, decorrelation_weight=0, error="entropy")(torch.zeros(2, 2))), 6)
1.0
"""

from __future__ import annotations

import math

import torch

from hashlearn.quantization.base import Quantizer

BALANCE_KINDS = ("mean", "entropy")
DECORRELATION_KINDS = ("outputs", "weights")
ERROR_KINDS = ("square", "entropy")
PROBABILITY_EPS = 1e-6


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-p log p - (1 - p) log(1 - p)`` in nats, with ``p`` clamped to ``[eps, 1 - eps]``."""
    p = p.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return -(p * torch.log(p) + (1 - p) * torch.log1p(-p))


def bit_balance(outputs: torch.Tensor, kind: str = "mean") -> torch.Tensor:
    means = outputs.mean(dim=0)
    if kind == "mean":
        return means.pow(2).mean()
    return (math.log(2) - binary_entropy((means + 1) / 2)).mean()


def bit_decorrelation(outputs: torch.Tensor) -> torch.Tensor:
    """``||U^T U / B - I||_F^2 / n_bits^2`` of a batch ``U (B, n_bits)``."""
    batch, n_bits = outputs.shape
    covariance = outputs.T @ outputs / batch
    identity = torch.eye(n_bits, dtype=outputs.dtype, device=outputs.device)
    return (covariance - identity).pow(2).mean()


def weight_decorrelation(weight: torch.Tensor) -> torch.Tensor:
    """``||W^T W - I||_F^2 / n_bits^2`` of projections ``W (d, n_bits)``, given as torch's ``(n_bits, d)`` weight."""
    gram = weight @ weight.T
    identity = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return (gram - identity).pow(2).mean()


def quantization_error(outputs: torch.Tensor, kind: str = "square") -> torch.Tensor:
    if kind == "square":
        return (outputs.abs() - 1).pow(2).mean()
    return binary_entropy((outputs + 1) / 2).mean() / math.log(2)


def hash_layer_weight(model: torch.nn.Module) -> torch.Tensor:
    """The weight ``(n_bits, d)`` of a model's hash layer: ``model.head.linear`` (a :class:`HashModel`), or the last ``nn.Linear``."""
    head = getattr(getattr(model, "head", None), "linear", None)
    if isinstance(head, torch.nn.Linear):
        return head.weight
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if not linears:
        raise TypeError(f"{type(model).__name__} has no nn.Linear layer whose weights could be decorrelated.")
    return linears[-1].weight


class RegularizerQuantizer(Quantizer):
    """Weighted sum of bit balance, bit decorrelation and quantization error.

    Parameters
    ----------
    balance_weight, decorrelation_weight, error_weight : float, default 1.0
    balance : {"mean", "entropy"}, default "mean"
    decorrelation : {"outputs", "weights"}, default "outputs"
        ``"weights"`` needs :meth:`attach` (``build_deep_method`` calls it).
    error : {"square", "entropy"}, default "square"
    """

    def __init__(self, *, balance_weight: float = 1.0, decorrelation_weight: float = 1.0, error_weight: float = 1.0, balance: str = "mean",
                 decorrelation: str = "outputs", error: str = "square"):
        super().__init__()
        for name, value, kinds in (("balance", balance, BALANCE_KINDS), ("decorrelation", decorrelation, DECORRELATION_KINDS),
                                   ("error", error, ERROR_KINDS)):
            if value not in kinds:
                raise ValueError(f"{name} must be one of {kinds}, got {value!r}.")
        weights = {"balance_weight": balance_weight, "decorrelation_weight": decorrelation_weight, "error_weight": error_weight}
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        self.balance_weight, self.decorrelation_weight, self.error_weight = (float(v) for v in weights.values())
        self.balance, self.decorrelation, self.error = balance, decorrelation, error
        self._hash_weight: list[torch.Tensor] = []  # a plain list: the model's weight is not a parameter of the loss

    def attach(self, model: torch.nn.Module) -> "RegularizerQuantizer":
        """Remember the hash layer of ``model`` for ``decorrelation="weights"`` (a no-op for the other forms)."""
        self._hash_weight = [hash_layer_weight(model)]
        return self

    def compute(self, outputs):
        loss = outputs.new_zeros(())
        if self.balance_weight:
            loss = loss + self.balance_weight * bit_balance(outputs, self.balance)
        if self.decorrelation_weight:
            if self.decorrelation == "outputs":
                loss = loss + self.decorrelation_weight * bit_decorrelation(outputs)
            else:
                if not self._hash_weight:
                    raise RuntimeError("decorrelation='weights' needs the model's hash layer: call quantizer.attach(model) first.")
                weight = self._hash_weight[0]
                if weight.shape[0] != outputs.shape[1]:
                    raise ValueError(f"the attached hash layer has {weight.shape[0]} outputs but the codes have {outputs.shape[1]} bits.")
                loss = loss + self.decorrelation_weight * weight_decorrelation(weight).to(outputs.dtype)
        if self.error_weight:
            loss = loss + self.error_weight * quantization_error(outputs, self.error)
        return loss

    def extra_repr(self) -> str:
        return (
            f"balance_weight={self.balance_weight}, decorrelation_weight={self.decorrelation_weight}, "
            f"error_weight={self.error_weight}, balance={self.balance!r}, decorrelation={self.decorrelation!r}, error={self.error!r}"
        )
