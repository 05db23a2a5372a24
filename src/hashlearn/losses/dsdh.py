"""DSDH: deep supervised discrete hashing (Li, Sun, He, Tan, NeurIPS 2017).

DPSH's pairwise likelihood plus a linear classifier ``W`` on the codes
(``mu * ||y - W^T b||^2 + nu * ||W||_F^2``) and the quantization term
``eta * ||b - u||^2``.

Batch-wise simplification: the paper solves for the discrete codes ``B`` and
for ``W`` in closed form over the whole training set (discrete cyclic
coordinate descent). Here ``W`` is an ``nn.Linear`` (no bias) owned by the
loss and trained by the optimiser together with the model, and the classifier
reads the relaxed codes ``u`` (``b = sign(u)`` has no gradient); the
quantization term pulls ``u`` to ``b``, so the classifier sees codes close to
the binary ones. ``classification="mse"`` is the paper's squared error on
one-/multi-hot targets; ``"ce"`` is softmax cross-entropy against the labels
normalised to sum 1 (the usual choice for multi-label rows).

>>> import torch
>>> loss = DSDHLoss(n_bits=8, n_classes=3)
>>> sorted(name for name, _ in loss.named_parameters())
['classifier.weight']
"""

from __future__ import annotations

import torch
from torch import nn

from hashlearn.losses.base import LocalityLoss
from hashlearn.losses.dpsh import pairwise_likelihood_loss, sign_quantization_error

CLASSIFICATIONS = ("mse", "ce")


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against multi-hot targets normalised to sum 1 (plain CE for one-hot rows).
    Rows without any label contribute 0."""
    distribution = targets / targets.sum(dim=1, keepdim=True).clamp_min(1)
    return -(distribution * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


class DSDHLoss(LocalityLoss):
    """DSDH pairwise likelihood + classification on codes + quantization.

    Parameters
    ----------
    n_bits, n_classes : int
    mu : float, default 1.0
        Weight of the classification loss (mean over items).
    nu : float, default 0.01
        Weight of ``||W||_F^2``.
    eta : float, default 0.1
        Weight of ``mean (u - sign(u))^2``.
    classification : {"mse", "ce"}, default "mse"
        ``||y - W^T u||^2`` (summed over classes, averaged over items) or cross-entropy.
    own_quantization : bool, default True
    """

    has_own_quantization = True

    def __init__(
        self,
        n_bits: int,
        n_classes: int,
        *,
        mu: float = 1.0,
        nu: float = 0.01,
        eta: float = 0.1,
        classification: str = "mse",
        own_quantization: bool = True,
    ):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        if classification not in CLASSIFICATIONS:
            raise ValueError(f"classification must be one of {CLASSIFICATIONS}, got {classification!r}.")
        self.mu, self.nu, self.eta = float(mu), float(nu), float(eta)
        self.classification = classification
        self.classifier = nn.Linear(self.n_bits, self.n_classes, bias=False)

    def compute_loss(self, outputs, targets, similarity):
        logits = self.classifier(outputs)
        if self.classification == "mse":
            classification = (targets - logits).pow(2).sum(dim=1).mean()
        else:
            classification = soft_target_cross_entropy(logits, targets)
        loss = pairwise_likelihood_loss(outputs, similarity) + self.mu * classification
        loss = loss + self.nu * self.classifier.weight.pow(2).sum()
        if self.own_quantization and self.eta:
            loss = loss + self.eta * sign_quantization_error(outputs)
        return loss
