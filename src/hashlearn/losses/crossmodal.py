"""Base class of the cross-modal losses: a loss on a *paired* batch of codes.

``CrossModalLoss.forward((image_outputs, text_outputs), labels)`` checks both
``(B, n_bits)`` halves (row ``i`` of each is one image-text pair), turns the
labels into multi-hot targets, builds the ``(B, B)`` similarity ``S[i, j] = 1``
when item ``i`` and item ``j`` share a label, and calls the one hook,
``compute_loss(image_outputs, text_outputs, targets, similarity)``.

It is a :class:`~hashlearn.losses.base.LocalityLoss`, so
:func:`~hashlearn.losses.build_objective` composes it with any quantizer
exactly as for single-modal losses (``"dcmh+hswd"``); the quantizer then sees
each modality's codes and the two values are averaged
(:class:`~hashlearn.losses.composite.CompositeLoss`).
"""

from __future__ import annotations

import torch

from hashlearn._tensor_checks import check_outputs, labels_to_multi_hot
from hashlearn.losses.base import LocalityLoss, pairwise_similarity


def check_paired_outputs(outputs, n_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image_outputs, text_outputs)``, both floating ``(B, n_bits)`` of one dtype and batch size."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
        raise TypeError(
            f"a cross-modal loss takes a pair (image_outputs, text_outputs) of (batch, n_bits) tensors, got {type(outputs).__name__}; "
            "train it with a two-tower model (hashlearn.models.two_tower)."
        )
    image_outputs = check_outputs(outputs[0], n_bits, "image_outputs")
    text_outputs = check_outputs(outputs[1], n_bits, "text_outputs")
    if image_outputs.shape != text_outputs.shape or image_outputs.dtype != text_outputs.dtype:
        raise ValueError(
            f"image_outputs and text_outputs must have the same shape and dtype (one row per pair), got "
            f"{tuple(image_outputs.shape)} {image_outputs.dtype} and {tuple(text_outputs.shape)} {text_outputs.dtype}."
        )
    return image_outputs, text_outputs


class CrossModalLoss(LocalityLoss):
    """A supervised loss on paired image and text codes; subclasses fill in ``compute_loss``."""

    cross_modal = True

    def forward(self, outputs, labels) -> torch.Tensor:
        image_outputs, text_outputs = check_paired_outputs(outputs, self.n_bits)
        targets = labels_to_multi_hot(labels, self.n_classes, image_outputs)
        return self.compute_loss(image_outputs, text_outputs, targets, pairwise_similarity(targets))

    def compute_loss(self, image_outputs, text_outputs, targets, similarity) -> torch.Tensor:
        raise NotImplementedError


__all__ = ["CrossModalLoss", "check_paired_outputs"]
