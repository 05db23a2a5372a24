"""CSQ: central similarity quantization (Yuan et al., CVPR 2020).

Each class gets a fixed ±1 hash center; codes are pulled to their center by
binary cross-entropy between ``(u+1)/2`` and ``(c+1)/2`` (averaged over bits
and items), plus ``lam * mean (|u| - 1)^2``.

Centers (``make_hash_centers``): rows of a Hadamard matrix when ``n_classes <=
n_bits``, of ``[H; -H]`` when ``n_classes <= 2 * n_bits`` (pairwise distance
``n_bits/2`` or ``n_bits``); otherwise, or when ``n_bits`` is not a power of
two, or with ``centers="random"``, Bernoulli(0.5) centers: up to ``max_tries``
draws, keeping the first whose minimum pairwise Hamming distance reaches
``min_distance`` (default ``n_bits // 4``), else the draw with the largest
minimum. A multi-label item's center is the sign of the sum of its labels'
centers, ties broken by a fixed random ±1 vector (drawn with the same seed).
Centers are buffers: they follow ``.to(device)`` and the state_dict.

>>> make_hash_centers(8, 3).tolist()[1]
[1, -1, 1, -1, 1, -1, 1, -1]
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import hadamard

from hashlearn._validation import check_positive_int, check_random_state
from hashlearn.losses.base import LocalityLoss

CENTER_METHODS = ("hadamard", "random")
PROBABILITY_EPS = 1e-6


def _min_pairwise_hamming(centers: np.ndarray) -> int:
    if len(centers) < 2:
        return centers.shape[1]
    bits = centers > 0
    distances = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    np.fill_diagonal(distances, centers.shape[1])
    return int(distances.min())


def make_hash_centers(
    n_bits: int, n_classes: int, method: str = "hadamard", random_state=0, min_distance: int | None = None, max_tries: int = 100
) -> np.ndarray:
    """``(n_classes, n_bits)`` int8 ±1 hash centers (see the module docstring)."""
    n_bits, n_classes = check_positive_int(n_bits, "n_bits"), check_positive_int(n_classes, "n_classes")
    if method not in CENTER_METHODS:
        raise ValueError(f"centers must be one of {CENTER_METHODS}, got {method!r}.")
    power_of_two = n_bits & (n_bits - 1) == 0
    if method == "hadamard" and power_of_two and n_classes <= 2 * n_bits:
        matrix = hadamard(n_bits)
        return np.concatenate([matrix, -matrix])[:n_classes].astype(np.int8)
    rng = check_random_state(random_state)
    min_distance = n_bits // 4 if min_distance is None else check_positive_int(min_distance, "min_distance", minimum=0)
    best, best_distance = None, -1
    for _ in range(check_positive_int(max_tries, "max_tries")):
        centers = np.where(rng.random((n_classes, n_bits)) < 0.5, -1, 1).astype(np.int8)
        distance = _min_pairwise_hamming(centers)
        if distance > best_distance:
            best, best_distance = centers, distance
        if distance >= min_distance:
            break
    return best


class CSQLoss(LocalityLoss):
    """CSQ center loss + ``lam`` times the quantization error.

    Parameters
    ----------
    n_bits, n_classes : int
    lam : float, default 1e-4
        Weight of ``mean (|u| - 1)^2`` (the authors' value).
    centers : {"hadamard", "random"}, default "hadamard"
    random_state : int, default 0
        Seed of random centers and of the multi-label tie breaker.
    own_quantization : bool, default True
    """

    needs_similarity = False
    has_own_quantization = True

    def __init__(
        self, n_bits: int, n_classes: int, *, lam: float = 1e-4, centers: str = "hadamard", random_state: int = 0, own_quantization: bool = True
    ):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.lam, self.center_method, self.random_state = float(lam), centers, random_state
        rng = check_random_state(random_state)
        hash_centers = make_hash_centers(self.n_bits, self.n_classes, centers, rng)
        tie_breaker = np.where(rng.random(self.n_bits) < 0.5, -1, 1)
        self.register_buffer("centers", torch.as_tensor(hash_centers, dtype=torch.float32))
        self.register_buffer("tie_breaker", torch.as_tensor(tie_breaker, dtype=torch.float32))

    def item_centers(self, targets: torch.Tensor) -> torch.Tensor:
        """±1 center of each item: its class center, or the binarised centroid of its labels' centers."""
        summed = targets @ self.centers.to(targets.dtype)
        return torch.where(summed == 0, self.tie_breaker.to(targets.dtype), torch.sign(summed))

    def compute_loss(self, outputs, targets, similarity):
        target_bits = (self.item_centers(targets) + 1) / 2
        probabilities = ((outputs + 1) / 2).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        center_loss = -(target_bits * torch.log(probabilities) + (1 - target_bits) * torch.log1p(-probabilities)).mean()
        if self.own_quantization and self.lam:
            center_loss = center_loss + self.lam * (outputs.abs() - 1).pow(2).mean()
        return center_loss
