"""DPSH: deep pairwise-supervised hashing (Li, Wang, Kang, IJCAI 2016).

Pairwise likelihood ``p(s_ij | u_i, u_j) = sigmoid(theta_ij)`` with
``theta_ij = <u_i, u_j> / 2``; the negative log-likelihood of a pair is
``softplus(theta_ij) - s_ij * theta_ij``. DPSH's own quantization term
``eta * ||u - sign(u)||^2`` pulls outputs to ±1.

Batch-wise: pairs are all ordered pairs ``i != j`` of the batch (the paper uses
every pair of the mini-batch against the whole training set via a stored U
matrix); both terms are means, so their scale does not depend on B or n_bits.

>>> import torch
>>> loss = DPSHLoss(n_bits=8, n_classes=3)
>>> outputs = torch.tanh(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
>>> float(loss(outputs, torch.tensor([0, 0, 1, 2]))) > 0
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hashlearn.losses.base import LocalityLoss, binarize, masked_mean, off_diagonal_mask


def pairwise_likelihood_loss(outputs: torch.Tensor, similarity: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Mean over pairs ``i != j`` of ``softplus(theta) - s * theta``, ``theta = scale * <u_i, u_j>``."""
    theta = scale * (outputs @ outputs.T)
    pair_losses = F.softplus(theta) - similarity * theta
    return masked_mean(pair_losses, off_diagonal_mask(outputs.shape[0], outputs.device))


def sign_quantization_error(outputs: torch.Tensor) -> torch.Tensor:
    """Mean over items and bits of ``(u - sign(u))^2`` (the sign is not differentiated)."""
    return (outputs - binarize(outputs)).pow(2).mean()


class DPSHLoss(LocalityLoss):
    """DPSH pairwise likelihood + ``eta`` times its own quantization term.

    Parameters
    ----------
    n_bits, n_classes : int
    eta : float, default 0.1
        Weight of ``mean (u - sign(u))^2``. 0.1 is the usual value for this
        per-element mean (the paper's eta multiplies a sum over the training set).
    own_quantization : bool, default True
        False drops the quantization term (a pluggable quantizer replaces it).
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, eta: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.eta = float(eta)

    def compute_loss(self, outputs, targets, similarity):
        loss = pairwise_likelihood_loss(outputs, similarity)
        if self.own_quantization and self.eta:
            loss = loss + self.eta * sign_quantization_error(outputs)
        return loss
