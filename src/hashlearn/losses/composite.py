"""The training objective: a locality loss plus a weighted quantizer.

``CompositeLoss(locality, quantizer, weight)(outputs, labels)`` returns
``locality(outputs, labels) + weight * quantizer(outputs)``. It is an
``nn.Module``: its parameters are the locality loss's (DSDH's and GreedyHash's
classifiers), which the trainer optimises with the model's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hashlearn.losses.base import LocalityLoss
from hashlearn.quantization import NoQuantizer, Quantizer


class CompositeLoss(nn.Module):
    """``locality + weight * quantizer``; the last terms are kept in ``last_terms`` for logging.

    Parameters
    ----------
    locality : LocalityLoss
    quantizer : Quantizer or None
        ``None`` means no quantizer (``NoQuantizer``).
    weight : float, default 0.0
        Weight of the quantizer, >= 0.

    For a cross-modal loss ``outputs`` is the pair ``(image_outputs,
    text_outputs)`` and the quantizer term is its mean over the two.

    The training hooks ``on_epoch_start(epoch)`` and ``step()`` are passed on
    to both parts.
    """

    def __init__(self, locality: LocalityLoss, quantizer: Quantizer | None = None, weight: float = 0.0):
        super().__init__()
        if not isinstance(locality, LocalityLoss):
            raise TypeError(f"locality must be a LocalityLoss, got {type(locality).__name__}.")
        quantizer = NoQuantizer() if quantizer is None else quantizer
        if not isinstance(quantizer, Quantizer):
            raise TypeError(f"quantizer must be a Quantizer or None, got {type(quantizer).__name__}.")
        weight = float(weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be a finite number >= 0, got {weight}.")
        self.locality, self.quantizer, self.weight = locality, quantizer, weight
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, outputs: torch.Tensor, labels) -> torch.Tensor:
        locality = self.locality(outputs, labels)
        if isinstance(outputs, (tuple, list)):  # paired (cross-modal) codes: the mean over modalities
            quantization = sum(self.quantizer(part) for part in outputs) / len(outputs)
        else:
            quantization = self.quantizer(outputs)
        self.last_terms = {"locality": locality.detach(), "quantization": quantization.detach()}
        return locality + self.weight * quantization if self.weight else locality

    def on_epoch_start(self, epoch: int) -> None:
        self.locality.on_epoch_start(epoch)
        self.quantizer.on_epoch_start(epoch)

    def step(self) -> None:
        self.locality.step()
        self.quantizer.step()

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
