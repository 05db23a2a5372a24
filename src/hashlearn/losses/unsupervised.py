"""Unsupervised locality loss for unlabelled embeddings.

The "labels" are the items' float feature vectors ``(B, d)`` (e.g. frozen
encoder embeddings). Within the batch, each anchor's ``n_neighbors`` nearest
items in Euclidean feature distance are its neighbours (similar), and the
farthest ``far_fraction`` of the other items are far (dissimilar); ties in
distance go to the lower index. Codes are compared by cosine ``c_ij``:

* ``mode="pairwise"`` (contrastive): ``mean_neighbours (1 - c_ij)^2 +
  mean_far max(0, c_ij - margin)^2`` with ``margin = 0`` by default, i.e. far
  items are pushed to at least orthogonal codes (half the bits differ), the
  target for unrelated items — not to opposite codes, which cannot hold for
  many items at once;
* ``mode="triplet"``: ``mean over (anchor, neighbour, far item) of
  max(0, margin + d_pos - d_far)`` on the normalised Hamming proxy
  ``d = (1 - c) / 2`` in [0, 1], ``margin = 0.25`` by default.

Batch-wise by construction: neighbours are searched only within the batch,
so batches should be large enough (>= 64) for them to be meaningful.

>>> import torch
>>> generator = torch.Generator().manual_seed(0)
>>> features = torch.randn(16, 5, generator=generator)
>>> outputs = torch.tanh(torch.randn(16, 8, generator=generator))
>>> float(UnsupervisedLoss(8, mode="triplet")(outputs, features)) > 0
True
"""

from __future__ import annotations

import torch

from hashlearn._validation import check_positive_int
from hashlearn.losses.base import LocalityLoss, unit_rows

MODES = ("pairwise", "triplet")
DEFAULT_MARGINS = {"pairwise": 0.0, "triplet": 0.25}


def neighbour_ranks(features: torch.Tensor, n_neighbors: int, far_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, n_near)`` of each row's nearest other rows and ``(B, n_far)`` of its farthest."""
    batch = features.shape[0]
    squared_norms = features.pow(2).sum(dim=1)
    distances = (squared_norms[:, None] + squared_norms[None, :] - 2 * features @ features.T).clamp_min(0)
    distances.fill_diagonal_(float("inf"))  # self sorts last
    order = torch.sort(distances, dim=1, stable=True).indices[:, : batch - 1]
    n_near = min(n_neighbors, batch - 1)
    n_far = min(int(far_fraction * (batch - 1)), batch - 1 - n_near)
    return order[:, :n_near], order[:, batch - 1 - n_far :]


class UnsupervisedLoss(LocalityLoss):
    """Contrastive or triplet loss on code cosines, neighbours from float kNN in the batch.

    Parameters
    ----------
    n_bits : int
    n_classes : int or None
        Ignored (accepted so every loss has the same constructor).
    mode : {"pairwise", "triplet"}, default "pairwise"
    n_neighbors : int, default 5
    far_fraction : float in (0, 1], default 0.5
        Share of the other items, the farthest ones, used as dissimilar.
    margin : float or None
        ``None`` picks 0.0 (pairwise, on cosine) or 0.25 (triplet, on normalised distance).
    own_quantization : bool
        Accepted for a uniform interface; there is no own quantization term.
    """

    label_kind = "features"

    def __init__(
        self,
        n_bits: int,
        n_classes: int | None = None,
        *,
        mode: str = "pairwise",
        n_neighbors: int = 5,
        far_fraction: float = 0.5,
        margin: float | None = None,
        own_quantization: bool = True,
    ):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if not 0 < far_fraction <= 1:
            raise ValueError(f"far_fraction must be in (0, 1], got {far_fraction}.")
        self.mode = mode
        self.n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
        self.far_fraction = float(far_fraction)
        self.margin = DEFAULT_MARGINS[mode] if margin is None else float(margin)

    def compute_loss(self, outputs, features, similarity):
        near, far = neighbour_ranks(features, self.n_neighbors, self.far_fraction)
        unit = unit_rows(outputs)
        cosine = unit @ unit.T
        near_cos, far_cos = cosine.gather(1, near), cosine.gather(1, far)
        zero = outputs.sum() * 0  # keeps an empty term attached to the graph
        if self.mode == "pairwise":
            loss = zero
            if near_cos.numel():
                loss = loss + (1 - near_cos).pow(2).mean()
            if far_cos.numel():
                loss = loss + (far_cos - self.margin).clamp_min(0).pow(2).mean()
            return loss
        if not (near_cos.numel() and far_cos.numel()):
            return zero
        near_distance, far_distance = (1 - near_cos) / 2, (1 - far_cos) / 2
        violations = self.margin + near_distance[:, :, None] - far_distance[:, None, :]
        return violations.clamp_min(0).mean()

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}, mode={self.mode!r}, n_neighbors={self.n_neighbors}, far_fraction={self.far_fraction}, margin={self.margin}"
