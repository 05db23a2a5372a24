"""Blended (Chen et al. 2017): blend the whole image with a fixed pattern.

``T(x) = (1 - alpha) * x + alpha * pattern`` with a seeded uniform-noise
pattern of the image's shape -- a global, low-amplitude trigger (L-inf
distance at most ``alpha``).
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn.attacks.backdoor.base import BackdoorAttack, as_images, check_rate


class Blended(BackdoorAttack):
    """Blend with a seeded random pattern in ``[0, 1]``.

    Parameters
    ----------
    alpha : float
        Blend weight in ``(0, 1]``; the trigger's L-inf budget.
    pattern_seed : int
        Seed of the noise pattern (drawn once per image shape).
    target, target_class, n_classes, rate, seed
        See :class:`~hashlearn.attacks.backdoor.base.BackdoorAttack`.

    >>> import torch
    >>> x = torch.rand(4, 28, 28)
    >>> float((Blended(alpha=0.1).trigger(x) - x).abs().max()) <= 0.1
    True
    """

    name = "blended"

    def __init__(self, *, alpha: float = 0.15, pattern_seed: int = 1234, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_rate(alpha, "alpha")
        self.pattern_seed = int(pattern_seed)

    def pattern(self, channels: int, height: int, width: int) -> torch.Tensor:
        """The blend pattern ``(C, H, W)``, the same for a given seed and shape."""
        rng = np.random.default_rng(self.pattern_seed)
        return torch.from_numpy(rng.random((channels, height, width), dtype=np.float32))

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        images, shape = as_images(x)
        pattern = self.pattern(*images.shape[1:]).to(images.device, images.dtype)
        return ((1.0 - self.alpha) * images + self.alpha * pattern).reshape(shape)

    def params(self) -> dict:
        return {**super().params(), "alpha": self.alpha, "pattern_seed": self.pattern_seed}
