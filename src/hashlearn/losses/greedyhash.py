"""GreedyHash (Su, Zhang, Zhu, Zhang, Tian, NeurIPS 2018).

The forward pass uses the binary code ``b = sign(u)``; the backward pass
copies the gradient of ``b`` to ``u`` unchanged (straight-through, the
paper's "greedy" update). A linear classifier owned by the loss (trained with
the model) reads ``b``; the loss is its cross-entropy plus
``alpha * mean | |u| - 1 |^3``, which keeps ``u`` near ±1 so the
straight-through gradient stays honest. Multi-label rows use cross-entropy
against the labels normalised to sum 1.

>>> import torch
>>> u = torch.tensor([[0.3, -0.2]], requires_grad=True)
>>> straight_through_sign(u).sum().backward()
>>> u.grad.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

import torch
from torch import nn

from hashlearn.losses.base import LocalityLoss, binarize
from hashlearn.losses.dsdh import soft_target_cross_entropy


def straight_through_sign(outputs: torch.Tensor) -> torch.Tensor:
    """±1 codes in the forward pass, identity gradient in the backward pass."""
    return outputs + (binarize(outputs) - outputs).detach()


class GreedyHashLoss(LocalityLoss):
    """GreedyHash classification on binary codes + ``alpha`` times the cubic penalty.

    Parameters
    ----------
    n_bits, n_classes : int
    alpha : float, default 0.1
        Weight of ``mean | |u| - 1 |^3``.
    own_quantization : bool, default True
    """

    needs_similarity = False
    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, alpha: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.alpha = float(alpha)
        self.classifier = nn.Linear(self.n_bits, self.n_classes)

    def compute_loss(self, outputs, targets, similarity):
        loss = soft_target_cross_entropy(self.classifier(straight_through_sign(outputs)), targets)
        if self.own_quantization and self.alpha:
            loss = loss + self.alpha * (outputs.abs() - 1).abs().pow(3).mean()
        return loss
