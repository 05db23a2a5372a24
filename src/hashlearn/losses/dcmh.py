"""DCMH: deep cross-modal hashing (Jiang and Li, CVPR 2017).

With ``F`` the image codes and ``G`` the text codes of a batch (rows are
items) and ``Theta_ij = <F_i, G_j> / 2``, DCMH minimises the inter-modal
negative log-likelihood of the cross-modal similarities

    ``- sum_ij (S_ij Theta_ij - log(1 + e^Theta_ij))``

plus its own quantization ``gamma (||B - F||^2 + ||B - G||^2)`` towards the
shared binary codes ``B`` and the bit balance ``eta (||F^T 1||^2 + ||G^T 1||^2)``.

Batch-wise codes instead of the shared binary matrix: the paper keeps one
``B = sign(gamma (F + G))`` for the whole training set and alternates between
the towers and ``B``. Here ``B = sign(F + G)`` is computed from the batch's own
codes (not differentiated), as the single-modal losses do with their stored
code matrices. Every term is a mean -- the likelihood over all ``B x B``
image-text pairs (``i = j`` included: a pair is its own positive), the
quantization over entries, the balance over bits of the squared batch mean --
so the weights do not depend on the batch size or ``n_bits``.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> F, G = torch.tanh(torch.randn(4, 8, generator=g)), torch.tanh(torch.randn(4, 8, generator=g))
>>> float(DCMHLoss(8, 3)((F, G), torch.tensor([0, 0, 1, 2]))) > 0
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hashlearn.losses.base import binarize
from hashlearn.losses.crossmodal import CrossModalLoss


def inter_modal_likelihood(image_outputs: torch.Tensor, text_outputs: torch.Tensor, similarity: torch.Tensor,
                           scale: float = 0.5) -> torch.Tensor:
    """Mean over all image-text pairs ``(i, j)`` of ``softplus(Theta_ij) - S_ij Theta_ij``, ``Theta = scale F G^T``."""
    theta = scale * (image_outputs @ text_outputs.T)
    return (F.softplus(theta) - similarity * theta).mean()


class DCMHLoss(CrossModalLoss):
    """DCMH inter-modal likelihood + ``gamma`` quantization to ``sign(F + G)`` + ``eta`` bit balance.

    Parameters
    ----------
    n_bits, n_classes : int
    gamma : float, default 0.1
        Weight of ``mean (B - F)^2 + mean (B - G)^2`` with ``B = sign(F + G)``.
    eta : float, default 0.1
        Weight of ``mean_bits (mean_i F_i)^2 + mean_bits (mean_i G_i)^2``.
    own_quantization : bool, default True
        False drops both terms (a pluggable quantizer replaces them: ``"dcmh+hswd"``).
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, gamma: float = 0.1, eta: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.gamma, self.eta = float(gamma), float(eta)

    def compute_loss(self, image_outputs, text_outputs, targets, similarity):
        loss = inter_modal_likelihood(image_outputs, text_outputs, similarity)
        if self.own_quantization:
            shared = binarize((image_outputs + text_outputs).detach())
            if self.gamma:
                loss = loss + self.gamma * ((shared - image_outputs).pow(2).mean() + (shared - text_outputs).pow(2).mean())
            if self.eta:
                loss = loss + self.eta * (image_outputs.mean(dim=0).pow(2).mean() + text_outputs.mean(dim=0).pow(2).mean())
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, eta={self.eta}"
