"""BadNets (Gu et al. 2017): a small fixed patch stamped in a corner.

The default trigger is a 3x3 checkerboard (white top-left) in the bottom-right
corner, one pixel from the border -- visible, local, and the textbook case
that latent-space defenses catch.
"""

from __future__ import annotations

import torch

from hashlearn._validation import check_positive_int
from hashlearn.attacks.backdoor.base import BackdoorAttack, as_images


class BadNets(BackdoorAttack):
    """Stamp a ``patch_size`` x ``patch_size`` checkerboard at the bottom-right corner.

    Parameters
    ----------
    patch_size : int
        Side of the square patch in pixels.
    margin : int
        Pixels between the patch and the image border.
    target, target_class, n_classes, rate, seed
        See :class:`~hashlearn.attacks.backdoor.base.BackdoorAttack`.

    >>> import torch
    >>> x = BadNets().trigger(torch.zeros(1, 8, 8))
    >>> x[0, 4:7, 4:7]
    tensor([[1., 0., 1.],
            [0., 1., 0.],
            [1., 0., 1.]])
    """

    name = "badnets"

    def __init__(self, *, patch_size: int = 3, margin: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = check_positive_int(patch_size, "patch_size")
        self.margin = check_positive_int(margin, "margin", minimum=0)

    def pattern(self, dtype=torch.float32) -> torch.Tensor:
        """The checkerboard ``(patch_size, patch_size)``: 1 where row + column is even."""
        index = torch.arange(self.patch_size)
        return ((index[:, None] + index[None, :]) % 2 == 0).to(dtype)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        images, shape = as_images(x)
        height, width = images.shape[-2:]
        size, margin = self.patch_size, self.margin
        if size + margin > min(height, width):
            raise ValueError(f"patch_size + margin = {size + margin} does not fit in {height}x{width} images.")
        out = images.clone()
        top, left = height - margin - size, width - margin - size
        out[:, :, top : top + size, left : left + size] = self.pattern(images.dtype).to(images.device)
        return out.reshape(shape)

    def params(self) -> dict:
        return {**super().params(), "patch_size": self.patch_size, "margin": self.margin}
