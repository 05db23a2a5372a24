"""Lifelong hashing loss (Xu et al., "Deep Lifelong Cross-modal Hashing", arXiv 2304.13357, 2023).

New items arrive; the database codes of the old items are stored and must not
change (re-encoding millions of items is what lifelong hashing avoids). The
loss fits the new items' relaxed codes ``u`` (``(B, K)`` in [-1, 1]) to

* the **old database codes** ``b_j`` in {-1, +1} as fixed targets (never
  re-encoded, no gradient): ``(K s_ij - <u_i, b_j>)^2`` over new items ``i``
  and old items ``j`` -- similar pairs are pulled to the old code, dissimilar
  ones pushed to orthogonal (half the bits differ);
* each other, with the same form within the batch: ``(K s_ij - <u_i, u_j>)^2``
  over pairs ``i != j``;
* ``eta * (u - sign(u))^2``, the quantization term.

``s_ij`` is the **multi-label semantic similarity**, the cosine of the label
vectors (``<y_i, y_j> / (|y_i| |y_j|)``, in [0, 1]; 0/1 for single labels).
Each term is a mean divided by ``K^2``, so the scale does not depend on the
batch, the number of old codes or the code length. Without old codes (before
:meth:`LifelongLoss.set_old_database`) only the within-batch and
quantization terms remain: a plain supervised loss, usable for the first stage.

The same cross term is the backward-compatibility term of a model upgrade
(BEBR-style): with the *old model's* database codes as the fixed targets, a
new model learns query codes that search the old index.

>>> import torch
>>> loss = LifelongLoss(n_bits=8, n_classes=3).set_old_database(torch.ones(4, 8), torch.tensor([0, 0, 1, 2]))
>>> outputs = torch.tanh(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
>>> float(loss(outputs, torch.tensor([0, 1, 1, 2, 0]))) > 0, loss.n_old
(True, 4)
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn._tensor_checks import as_tensor, labels_to_multi_hot
from hashlearn.losses.base import LocalityLoss, masked_mean, off_diagonal_mask
from hashlearn.losses.dpsh import sign_quantization_error


def label_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(len(a), len(b))`` cosine similarity of multi-hot label rows; a row without labels is similar to nothing."""
    norm_a = a.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    norm_b = b.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    return (a / norm_a) @ (b / norm_b).T


class LifelongLoss(LocalityLoss):
    """Similarity-preserving loss against fixed old codes, within the batch, plus quantization.

    Parameters
    ----------
    n_bits, n_classes : int
    old_weight : float, default 1.0
        Weight of the term against the old database codes.
    new_weight : float, default 1.0
        Weight of the within-batch term.
    eta : float, default 0.1
        Weight of ``mean (u - sign(u))^2``.
    anchors_per_step : int or None, default None
        Compare each batch with this many old codes drawn at random (seeded by
        :meth:`set_old_database`); ``None`` uses every old code at every step.
    own_quantization : bool, default True
    """

    has_own_quantization = True
    needs_similarity = False  # the cosine label similarity is computed here

    def __init__(self, n_bits: int, n_classes: int, *, old_weight: float = 1.0, new_weight: float = 1.0, eta: float = 0.1,
                 anchors_per_step: int | None = None, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        for name, value in (("old_weight", old_weight), ("new_weight", new_weight), ("eta", eta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if anchors_per_step is not None and (isinstance(anchors_per_step, bool) or not isinstance(anchors_per_step, int) or anchors_per_step < 1):
            raise ValueError(f"anchors_per_step must be None or an integer >= 1, got {anchors_per_step!r}.")
        self.old_weight, self.new_weight, self.eta = float(old_weight), float(new_weight), float(eta)
        self.anchors_per_step = anchors_per_step
        # the stored codes are data, not weights: kept out of state_dict (checkpoints stay small; the run holds them)
        self.register_buffer("old_codes", torch.zeros(0, self.n_bits), persistent=False)
        self.register_buffer("old_targets", torch.zeros(0, self.n_classes), persistent=False)
        self._generator = torch.Generator().manual_seed(0)

    @property
    def n_old(self) -> int:
        return int(self.old_codes.shape[0])

    def set_old_database(self, codes, labels, *, seed: int = 0) -> "LifelongLoss":
        """Fix the old database: ``codes`` as ±1 ``(M, n_bits)`` or packed ``uint8 (M, n_bits // 8)``, ``labels`` ids or multi-hot."""
        codes_array = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
        if codes_array.dtype == np.uint8 and codes_array.ndim == 2 and codes_array.shape[1] * 8 == self.n_bits:
            from hashlearn.codes import codes_to_pm1

            codes_array = codes_to_pm1(codes_array, self.n_bits)
        if codes_array.ndim != 2 or codes_array.shape[1] != self.n_bits:
            raise ValueError(f"old codes must be ±1 of shape (M, {self.n_bits}) or packed uint8 (M, {self.n_bits // 8}), got {codes_array.dtype} {codes_array.shape}.")
        if not np.isin(codes_array, (-1, 1)).all():
            raise ValueError("old codes must hold only -1 and +1 (binary codes), or be packed uint8 codes.")
        like = self.old_codes
        pm1 = torch.as_tensor(codes_array, dtype=like.dtype, device=like.device)
        targets = labels_to_multi_hot(as_tensor(labels, "labels"), self.n_classes, pm1, name="old labels")
        self.old_codes, self.old_targets = pm1, targets
        self._generator = torch.Generator().manual_seed(int(seed))
        return self

    def compute_loss(self, outputs, targets, similarity):
        k = float(self.n_bits)
        within = (k * label_cosine(targets, targets) - outputs @ outputs.T).pow(2)
        loss = self.new_weight * masked_mean(within, off_diagonal_mask(outputs.shape[0], outputs.device)) / k**2
        if self.n_old and self.old_weight:
            old_codes, old_targets = self.old_codes.to(outputs), self.old_targets.to(outputs)
            if self.anchors_per_step is not None and self.anchors_per_step < self.n_old:
                pick = torch.randperm(self.n_old, generator=self._generator)[: self.anchors_per_step].to(outputs.device)
                old_codes, old_targets = old_codes[pick], old_targets[pick]
            cross = (k * label_cosine(targets, old_targets) - outputs @ old_codes.T).pow(2)
            loss = loss + self.old_weight * cross.mean() / k**2
        if self.own_quantization and self.eta:
            loss = loss + self.eta * sign_quantization_error(outputs)
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, old_weight={self.old_weight}, new_weight={self.new_weight}, eta={self.eta}, n_old={self.n_old}"


class BackwardCompatibleLoss(torch.nn.Module):
    """A new model's own objective plus ``weight`` x the lifelong cross term against an old model's codes.

    BEBR-style backward compatibility: ``old_codes`` are the old model's codes of
    (a sample of) its database with their labels; the new model's query codes learn to
    find them, so an upgrade can search the old index before it is re-encoded.

    >>> import torch
    >>> from hashlearn.losses import build_objective
    >>> loss = BackwardCompatibleLoss(build_objective("csq", 8, 3), torch.ones(4, 8), torch.tensor([0, 1, 2, 0]))
    >>> float(loss(torch.zeros(2, 8), torch.tensor([0, 1]))) > 0
    True
    """

    def __init__(self, objective: torch.nn.Module, old_codes, old_labels, *, weight: float = 1.0, anchors_per_step: int | None = 1024,
                 seed: int = 0):
        super().__init__()
        n_bits = getattr(getattr(objective, "locality", objective), "n_bits", None)
        n_classes = getattr(getattr(objective, "locality", objective), "n_classes", None)
        if n_bits is None or n_classes is None:
            raise TypeError(f"objective must be a supervised hashing loss with n_bits and n_classes, got {type(objective).__name__}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"weight must be a number >= 0, got {weight!r}.")
        self.objective, self.weight = objective, float(weight)
        self.compatibility = LifelongLoss(n_bits, n_classes, new_weight=0.0, eta=0.0, anchors_per_step=anchors_per_step)
        self.compatibility.set_old_database(old_codes, old_labels, seed=seed)

    def forward(self, outputs, labels):
        return self.objective(outputs, labels) + self.weight * self.compatibility(outputs, labels)

    def on_epoch_start(self, epoch: int) -> None:
        getattr(self.objective, "on_epoch_start", lambda _: None)(epoch)

    def step(self) -> None:
        getattr(self.objective, "step", lambda: None)()


__all__ = ["BackwardCompatibleLoss", "LifelongLoss", "label_cosine"]
