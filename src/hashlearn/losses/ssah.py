"""SSAH-style: self-supervised adversarial hashing (Li, Deng, Liu, Wang, Ji, Tao, CVPR 2018).

A *label network* maps each item's multi-hot labels to semantic codes
``H_l = tanh(W_2 relu(W_1 y))`` and predicts the labels back from them
(``sigmoid(W_3 H_l)``); trained by its own pairwise likelihood on the label
similarity and the label reconstruction, it supplies the semantic codes that
supervise both towers:

    ``L = L_label + pl(H_l', F) + pl(H_l', G) + gamma * quantization [+ beta * adversarial]``

where ``pl(A, B)`` is the mean over all pairs of ``softplus(Theta) - S Theta``
with ``Theta = <A_i, B_j> / 2``, ``H_l'`` is ``H_l`` without gradient (the
label network learns only from its own loss, as in SSAH's alternating steps),
and the own quantization pulls ``F``, ``G`` and ``H_l`` to ``B = sign(H_l)``.

The optional adversary (``adversarial_weight > 0``) is a small modality
discriminator on the codes, trained to tell image codes from text codes while
the towers are trained, through a gradient-reversal layer, to fool it -- so
one optimiser step does both sides of the min-max game. SSAH's discriminators
act on intermediate features too; here they see codes only.

Batch-wise: SSAH keeps the whole training set's codes; here every term uses
the batch (as the single-modal losses do).

>>> import torch
>>> loss = SSAHLoss(8, 3, adversarial_weight=0.1)
>>> sorted({name.split(".")[0] for name, _ in loss.named_parameters()})
['discriminator', 'label_net']
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashlearn._validation import check_positive_int
from hashlearn.losses.base import binarize
from hashlearn.losses.crossmodal import CrossModalLoss
from hashlearn.losses.dcmh import inter_modal_likelihood


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    """Identity forward, negated gradient backward (the adversary's min-max in one step)."""
    return _ReverseGradient.apply(x)


class LabelNetwork(nn.Module):
    """Labels ``(B, n_classes)`` -> semantic codes ``(B, n_bits)`` in ``[-1, 1]`` and label logits."""

    def __init__(self, n_classes: int, n_bits: int, hidden: int = 512):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_classes, hidden), nn.ReLU(), nn.Linear(hidden, n_bits))
        self.decoder = nn.Linear(n_bits, n_classes)

    def forward(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = torch.tanh(self.encoder(targets))
        return codes, self.decoder(codes)


class SSAHLoss(CrossModalLoss):
    """Label-network supervision of both towers, optional modality adversary.

    Parameters
    ----------
    n_bits, n_classes : int
    gamma : float, default 0.1
        Weight of the own quantization ``mean (B - F)^2 + mean (B - G)^2 + mean (B - H_l)^2``, ``B = sign(H_l)``.
    mu : float, default 1.0
        Weight of the label network's label reconstruction (binary cross-entropy, mean).
    adversarial_weight : float, default 0.0
        Weight of the modality adversary; 0 builds no discriminator.
    hidden : int, default 512
        Width of the label network and of the discriminator.
    own_quantization : bool, default True

    The label network and the discriminator are parameters of the loss (the
    trainer optimises them with the towers); for float64 codes call ``loss.double()``.
    """

    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int, *, gamma: float = 0.1, mu: float = 1.0, adversarial_weight: float = 0.0,
                 hidden: int = 512, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        for name, value in (("gamma", gamma), ("mu", mu), ("adversarial_weight", adversarial_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        self.gamma, self.mu, self.adversarial_weight = float(gamma), float(mu), float(adversarial_weight)
        hidden = check_positive_int(hidden, "hidden")
        self.label_net = LabelNetwork(self.n_classes, self.n_bits, hidden)
        self.discriminator = (nn.Sequential(nn.Linear(self.n_bits, hidden), nn.ReLU(), nn.Linear(hidden, 1))
                              if self.adversarial_weight else None)

    def compute_loss(self, image_outputs, text_outputs, targets, similarity):
        label_codes, label_logits = self.label_net(targets)
        loss = inter_modal_likelihood(label_codes, label_codes, similarity)
        loss = loss + self.mu * F.binary_cross_entropy_with_logits(label_logits, targets)
        semantic = label_codes.detach()
        loss = loss + inter_modal_likelihood(semantic, image_outputs, similarity) + inter_modal_likelihood(semantic, text_outputs, similarity)
        if self.own_quantization and self.gamma:
            shared = binarize(semantic)
            quantization = sum((shared - codes).pow(2).mean() for codes in (image_outputs, text_outputs, label_codes))
            loss = loss + self.gamma * quantization
        if self.discriminator is not None:
            codes = reverse_gradient(torch.cat([image_outputs, text_outputs]))
            modality = torch.cat([torch.ones(len(image_outputs)), torch.zeros(len(text_outputs))]).to(codes)
            logits = self.discriminator(codes).squeeze(1)
            loss = loss + self.adversarial_weight * F.binary_cross_entropy_with_logits(logits, modality)
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, mu={self.mu}, adversarial_weight={self.adversarial_weight}"
