"""Base class of the locality-preserving losses: one public call, one hook.

``LocalityLoss.forward(outputs, labels)`` checks the inputs, turns labels into
multi-hot targets, builds the pairwise similarity matrix and calls the one hook
a subclass fills in, ``compute_loss(outputs, targets, similarity)``.
"""

from __future__ import annotations

import torch
from torch import nn

from hashlearn._tensor_checks import check_feature_targets, check_outputs, labels_to_multi_hot
from hashlearn._validation import check_positive_int


def pairwise_similarity(targets: torch.Tensor) -> torch.Tensor:
    """``S[i, j] = 1`` when items i and j share at least one label, else 0 (``targets`` multi-hot)."""
    return (targets @ targets.T > 0).to(targets.dtype)


def binarize(outputs: torch.Tensor) -> torch.Tensor:
    """The ±1 code of continuous outputs: +1 where the output is > 0 (the bit is 1), else -1."""
    return torch.where(outputs > 0, 1.0, -1.0).to(outputs.dtype)


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm; an all-zero row stays zero (with a finite, zero gradient)."""
    norms = x.pow(2).sum(dim=1, keepdim=True).clamp_min(eps * eps).sqrt()
    return x / norms


def off_diagonal_mask(batch_size: int, device) -> torch.Tensor:
    """Boolean ``(B, B)`` mask of the pairs ``i != j``."""
    return ~torch.eye(batch_size, dtype=torch.bool, device=device)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 (still attached to the graph) for an empty mask."""
    selected = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return selected.sum() / mask.sum().clamp_min(1).to(values.dtype)


def class_balanced_pair_mean(pair_losses: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """HashNet/DCH weighting: ``sum_ij w_ij l_ij / |pairs|`` over pairs ``i != j`` with
    ``w_ij = |pairs| / |similar|`` for similar pairs and ``|pairs| / |dissimilar|`` otherwise,
    i.e. the mean loss over similar pairs plus the mean loss over dissimilar pairs."""
    mask = off_diagonal_mask(similarity.shape[0], similarity.device)
    similar = mask & (similarity > 0)
    return masked_mean(pair_losses, similar) + masked_mean(pair_losses, mask & ~similar)


class LocalityLoss(nn.Module):
    """A loss on continuous codes ``(B, n_bits)`` in [-1, 1] and labels of the same batch.

    Subclasses implement ``compute_loss(outputs, targets, similarity)``, where
    ``targets`` is the multi-hot ``(B, n_classes)`` label matrix in the outputs'
    dtype (single-label ids are one-hot encoded) and ``similarity`` the
    ``(B, B)`` 0/1 matrix of pairs sharing a label (``None`` when the subclass
    sets ``needs_similarity = False``). An unsupervised subclass sets
    ``label_kind = "features"`` and receives float feature vectors instead.

    Parameters
    ----------
    n_bits : int
        Code length (number of outputs per item).
    n_classes : int
        Number of classes (columns of multi-hot labels).
    own_quantization : bool
        Whether the method's own quantization term is added. ``build_objective``
        turns it off when a pluggable quantizer replaces it (``"dpsh+hswd"``).

    Training hooks: the trainer calls ``on_epoch_start(epoch)`` before each epoch
    and ``step()`` after each optimiser step; both do nothing unless a loss has
    a schedule (HashNet's scale continuation).
    """

    label_kind = "class"
    needs_similarity = True
    has_own_quantization = False

    def __init__(self, n_bits: int, n_classes: int | None = None, *, own_quantization: bool = True):
        super().__init__()
        self.n_bits = check_positive_int(n_bits, "n_bits")
        if self.label_kind == "class":
            if n_classes is None:
                raise TypeError(f"{type(self).__name__} is supervised: n_classes (an integer >= 1) is required.")
            self.n_classes = check_positive_int(n_classes, "n_classes")
        else:
            self.n_classes = check_positive_int(n_classes, "n_classes", allow_none=True)
        if not isinstance(own_quantization, bool):
            raise TypeError(f"own_quantization must be True or False, got {own_quantization!r}.")
        self.own_quantization = own_quantization

    def forward(self, outputs: torch.Tensor, labels) -> torch.Tensor:
        outputs = check_outputs(outputs, self.n_bits)
        if self.label_kind == "features":
            return self.compute_loss(outputs, check_feature_targets(labels, outputs), None)
        targets = labels_to_multi_hot(labels, self.n_classes, outputs)
        similarity = pairwise_similarity(targets) if self.needs_similarity else None
        return self.compute_loss(outputs, targets, similarity)

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor, similarity: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based); no-op by default."""

    def step(self) -> None:
        """Called by the trainer after each optimiser step; no-op by default."""

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}, n_classes={self.n_classes}, own_quantization={self.own_quantization}"
