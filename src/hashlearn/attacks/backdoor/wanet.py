"""WaNet (Nguyen & Tran, ICLR 2021): an imperceptible trigger made of a fixed, smooth image warp.

The trigger resamples the image along a warping field instead of adding a
pattern. The field is drawn once from a seed:

- a ``k x k`` grid of random 2-D offsets, uniform in ``[-1, 1]`` and divided by
  their mean absolute value, is upsampled to the image size (bicubic, corners
  aligned) -- the noise field ``P``;
- with the identity sampling grid ``M`` (coordinates in ``[-1, 1]``), the
  warped grid is ``G = clip((M + s * P / H) * grid_rescale, -1, 1)`` and
  ``T(x) = grid_sample(x, G)`` (bilinear, corners aligned).

``s`` (``strength``) sets how far pixels move: about ``s / 2`` pixels on
average; ``s = 0`` with ``grid_rescale = 1`` is the identity. The
displacement along the width is divided by ``W`` (the paper's square images
use ``H`` for both).

*Noise mode*: besides the ``round(rate * n)`` poisoned samples, ``round(cross_ratio
* n_poison)`` other training samples are warped with ``G`` plus a random per-pixel
jitter in ``[-1/H, 1/H]`` (``clip(G + U / H, -1, 1)``) and keep their true label, so
the victim learns the exact warp and not "any warp" -- the feature the paper
credits for evading Neural Cleanse and human inspection. The paper redraws the
jitter every batch; hashlearn poisons a fixed training set, so each noise-mode
sample gets one jitter, drawn with ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hashlearn._validation import check_labels, check_positive_int, check_real
from hashlearn.attacks.backdoor.base import BackdoorAttack, PoisonedSet, as_images, check_images, check_positive_float, select_poison_indices


@dataclass
class WarpedPoisonedSet(PoisonedSet):
    """A :class:`PoisonedSet` plus ``noise_indices``: the noise-mode rows (randomly warped, labels kept)."""

    noise_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def identity_grid(height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """``(1, H, W, 2)`` sampling grid of ``grid_sample`` that returns the image unchanged (``[..., 0]`` = x)."""
    ys = torch.linspace(-1.0, 1.0, height, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, width, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


def warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample ``(B, C, H, W)`` images along ``grid`` (``(1 or B, H, W, 2)``), bilinear, corners aligned, in ``[0, 1]``."""
    grid = grid.to(images.device, images.dtype).expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True).clamp(0.0, 1.0)


class WaNet(BackdoorAttack):
    """Warp every triggered image along one seeded smooth field; noise-mode samples keep their labels.

    Parameters
    ----------
    grid_size : int
        ``k``: side of the control grid of random offsets (the paper's 4).
    strength : float
        ``s``: warp strength, ``>= 0`` (the paper's 0.5; 0 is no warp).
    grid_rescale : float
        Factor on the warped grid before clipping (the paper's 1).
    cross_ratio : float
        Noise-mode samples per poisoned sample, ``>= 0`` (the paper's 2; 0 turns noise mode off).
    warp_seed : int
        Seed of the warping field (the trigger); ``seed`` draws the poisoned rows and the jitter.
    target, target_class, n_classes, rate, seed
        See :class:`~hashlearn.attacks.backdoor.base.BackdoorAttack`.

    >>> import torch
    >>> x = torch.rand(2, 28, 28)
    >>> bool(torch.allclose(WaNet(strength=0.0).trigger(x), x, atol=1e-5))
    True
    >>> float((WaNet(strength=0.5).trigger(x) - x).abs().mean()) > 0
    True
    """

    name = "wanet"

    def __init__(self, *, grid_size: int = 4, strength: float = 0.5, grid_rescale: float = 1.0, cross_ratio: float = 2.0,
                 warp_seed: int = 1234, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = check_positive_int(grid_size, "grid_size", minimum=2)
        self.strength = check_real(strength, "strength", minimum=0.0, strict=False)
        self.grid_rescale = check_positive_float(grid_rescale, "grid_rescale")
        self.cross_ratio = check_real(cross_ratio, "cross_ratio", minimum=0.0, strict=False)
        self.warp_seed = check_positive_int(warp_seed, "warp_seed", minimum=0)
        self._fields: dict[tuple[int, int], torch.Tensor] = {}

    # -- the warping field -------------------------------------------------
    def noise_field(self, height: int, width: int) -> torch.Tensor:
        """``P``: the ``(1, H, W, 2)`` upsampled random offsets, the same for a given ``warp_seed`` and size."""
        generator = torch.Generator().manual_seed(self.warp_seed)
        offsets = torch.rand(1, 2, self.grid_size, self.grid_size, generator=generator) * 2 - 1
        offsets = offsets / offsets.abs().mean()
        return F.interpolate(offsets, size=(height, width), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)

    def warp_grid(self, height: int, width: int) -> torch.Tensor:
        """``G = clip((M + s * P / size) * grid_rescale, -1, 1)``, ``(1, H, W, 2)`` float32 (cached per size)."""
        key = (int(height), int(width))
        if key not in self._fields:
            scale = torch.tensor([width, height], dtype=torch.float32)  # x offsets / W, y offsets / H
            grid = (identity_grid(height, width) + self.strength * self.noise_field(height, width) / scale) * self.grid_rescale
            self._fields[key] = grid.clamp(-1.0, 1.0)
        return self._fields[key]

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        images, shape = as_images(x)
        return warp(images, self.warp_grid(*images.shape[-2:])).reshape(shape)

    def noise_warp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise mode: warp along ``clip(G + U / size, -1, 1)``, ``U`` uniform in ``[-1, 1]`` per pixel and image."""
        images, shape = as_images(x)
        height, width = images.shape[-2:]
        jitter = torch.rand(images.shape[0], height, width, 2, generator=generator) * 2 - 1
        grid = (self.warp_grid(height, width) + jitter / torch.tensor([width, height], dtype=torch.float32)).clamp(-1.0, 1.0)
        return warp(images, grid).reshape(shape)

    # -- poisoning ---------------------------------------------------------
    def poison(self, X, y) -> WarpedPoisonedSet:
        """``round(rate * n)`` warped + relabelled rows and ``round(cross_ratio * n_poison)`` jittered rows with true labels.

        The noise-mode rows are drawn with ``seed`` from the rows that are not
        poisoned (any class); more than there are is a ``ValueError``.
        """
        X = check_images(X)
        y = check_labels(y, "y", n_samples=len(X))
        if y.ndim != 1:
            raise ValueError("backdoor poisoning needs single-label y of shape (n,), got multi-hot labels.")
        indices = select_poison_indices(y, self.rate, self.mapping, self.seed)
        n_noise = int(round(self.cross_ratio * len(indices)))
        others = np.setdiff1d(np.arange(len(y)), indices)
        if n_noise > len(others):
            raise ValueError(
                f"cross_ratio={self.cross_ratio} asks for {n_noise} noise-mode samples besides the {len(indices)} poisoned ones, "
                f"but only {len(others)} rows are left; lower cross_ratio or rate."
            )
        rng = np.random.default_rng([self.seed, 1])
        noise_indices = np.sort(rng.choice(others, size=n_noise, replace=False)).astype(np.int64)
        X_poisoned, y_poisoned = X.copy(), y.copy()
        X_poisoned[indices] = self.apply_trigger(X[indices])
        y_poisoned[indices] = self.mapping(y[indices])
        if n_noise:
            generator = torch.Generator().manual_seed(self.seed)
            with torch.no_grad():
                for start in range(0, n_noise, 1024):
                    rows = noise_indices[start : start + 1024]
                    X_poisoned[rows] = self.noise_warp(torch.from_numpy(X[rows]), generator).numpy()
        return WarpedPoisonedSet(X_poisoned, y_poisoned, indices, y, noise_indices)

    def params(self) -> dict:
        return {**super().params(), "grid_size": self.grid_size, "strength": self.strength, "grid_rescale": self.grid_rescale,
                "cross_ratio": self.cross_ratio, "warp_seed": self.warp_seed}
