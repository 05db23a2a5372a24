"""The lifelong loss for two-tower models: the image and text codes of new pairs against the stored old codes of both sides.

Xu et al., "Deep Lifelong Cross-modal Hashing" (arXiv 2304.13357, 2023). A
cross-modal database stores two codes per old pair, its image code ``b^I_j``
and its text code ``b^T_j``; they are fixed targets (never re-encoded). With
``f_i`` the relaxed image code and ``g_i`` the relaxed text code of a new pair
``i`` (``(B, K)`` in [-1, 1]) and ``s_ij`` the cosine of the label vectors
(the multi-label semantic similarity of :class:`~hashlearn.losses.lifelong.LifelongLoss`):

* **old codes**, inter-modal (the directions searched: an image query ranks the
  stored text codes, a text query the stored image codes):
  ``old_weight * (mean_ij (K s_ij - <f_i, b^T_j>)^2 + mean_ij (K s_ij - <g_i, b^I_j>)^2) / (2 K^2)``;
* **within the batch**, inter-modal over every image-text pair of the batch
  (``i = j`` included: a pair's two codes should agree):
  ``new_weight * mean_ij (K s_ij - <f_i, g_j>)^2 / K^2``;
* **centers**: ``center_weight`` x the mean over both towers of the CSQ
  cross-entropy toward each pair's hash center -- one center per class for
  both modalities (a shared Hamming space), an old class's the bitwise
  majority of its stored codes of *both* sides, the new ones far from them;
  memory pairs weighted by ``replay_weight``;
* ``eta`` x the mean over both towers of ``(u - sign(u))^2``.

Every term is the single-modal loss's own (:func:`~hashlearn.losses.lifelong.similarity_gap`,
the center and anchor helpers of :class:`LifelongLoss`), applied across modalities.
Before :meth:`set_old_database` only the within-batch, center and
quantization terms remain: a plain supervised cross-modal loss (a first stage).
A memory pair's target is its class's center (``memory_targets="codes"`` has
two stored codes per pair to choose from and is not offered).

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> loss = CrossModalLifelongLoss(8, 3).set_old_database((torch.ones(4, 8), -torch.ones(4, 8)), torch.tensor([0, 0, 1, 2]))
>>> F, G = torch.tanh(torch.randn(5, 8, generator=g)), torch.tanh(torch.randn(5, 8, generator=g))
>>> float(loss((F, G), torch.tensor([0, 1, 1, 2, 0]))) > 0, loss.n_old_pairs
(True, 4)
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn.losses.crossmodal import CrossModalLoss
from hashlearn.losses.dpsh import sign_quantization_error
from hashlearn.losses.lifelong import LifelongLoss, similarity_gap


def _as_array(codes) -> np.ndarray:
    return codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)


class CrossModalLifelongLoss(CrossModalLoss, LifelongLoss):
    """:class:`LifelongLoss` across modalities, on paired batches ``((image_outputs, text_outputs), labels)``.

    The parameters are :class:`LifelongLoss`'s (``memory_targets`` must be ``"centers"``).
    """

    def __init__(self, n_bits: int, n_classes: int, **kwargs):
        if kwargs.get("memory_targets", "centers") != "centers":
            raise ValueError(f"memory_targets of the cross-modal lifelong loss must be 'centers' (a memory pair aims at its class's "
                             f"center), got {kwargs['memory_targets']!r}.")
        super().__init__(n_bits, n_classes, **kwargs)
        self.n_old_pairs = 0

    def set_old_database(self, codes, labels, *, seed: int = 0, recorded_centers: dict | None = None) -> "CrossModalLifelongLoss":
        """Fix the old database: ``codes = (image_codes, text_codes)``, one row per old pair in each (±1 or packed ``uint8``),
        ``labels`` the pairs' ids or multi-hot rows. The old classes' centers are the majority of both sides' codes."""
        if not (isinstance(codes, (tuple, list)) and len(codes) == 2):
            raise TypeError(f"old codes of a cross-modal database are a pair (image_codes, text_codes), got {type(codes).__name__}.")
        image_codes, text_codes = _as_array(codes[0]), _as_array(codes[1])
        if image_codes.shape != text_codes.shape or image_codes.dtype != text_codes.dtype:
            raise ValueError(f"image and text old codes must have one row per old pair (same shape and dtype), got "
                             f"{image_codes.dtype} {image_codes.shape} and {text_codes.dtype} {text_codes.shape}.")
        labels = _as_array(labels)
        super().set_old_database(np.concatenate([image_codes, text_codes]), np.concatenate([labels, labels]), seed=seed,
                                 recorded_centers=recorded_centers)
        self.n_old_pairs = len(image_codes)
        return self

    def compute_loss(self, image_outputs, text_outputs, targets, similarity):
        loss = image_outputs.new_zeros(())
        if self.new_weight:
            loss = loss + self.new_weight * similarity_gap(image_outputs, text_outputs, targets, targets, self.n_bits).mean()
        if self.center_weight:
            loss = loss + self.center_weight * (self._center_term(image_outputs, targets) + self._center_term(text_outputs, targets)) / 2
        if self.n_old_pairs and self.old_weight:
            m = self.n_old_pairs
            old_image, old_text = self.old_codes[:m].to(image_outputs), self.old_codes[m:].to(image_outputs)
            old_targets = self.old_targets[:m].to(image_outputs)
            pick = self._anchor_pick(m, image_outputs.device)  # the same old pairs for both directions
            if pick is not None:
                old_image, old_text, old_targets = old_image[pick], old_text[pick], old_targets[pick]
            image_to_text = similarity_gap(image_outputs, old_text, targets, old_targets, self.n_bits).mean()
            text_to_image = similarity_gap(text_outputs, old_image, targets, old_targets, self.n_bits).mean()
            loss = loss + self.old_weight * (image_to_text + text_to_image) / 2
        if self.own_quantization and self.eta:
            loss = loss + self.eta * (sign_quantization_error(image_outputs) + sign_quantization_error(text_outputs)) / 2
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_old_pairs={self.n_old_pairs}"


__all__ = ["CrossModalLifelongLoss"]
