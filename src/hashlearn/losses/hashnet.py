"""HashNet: deep learning to hash by continuation (Cao, Long, Wang, Yu, ICCV 2017).

Weighted pairwise cross-entropy on ``x_ij = alpha * <h_i, h_j>``:
``w_ij * (softplus(x_ij) - s_ij * x_ij)``, with class-balance weights
``w_ij = |pairs| / |similar pairs|`` for similar pairs and
``|pairs| / |dissimilar pairs|`` for dissimilar ones (so the loss is the mean
over similar pairs plus the mean over dissimilar pairs).

Scale continuation: HashNet trains ``h = tanh(beta * z)`` with ``beta``
growing, so ``h`` approaches ``sign(z)``. Our models already output
``u = tanh(z)``; the loss sharpens it to ``h = tanh(beta * atanh(u))``,
computed without ``atanh`` as
``((1+u)^beta - (1-u)^beta) / ((1+u)^beta + (1-u)^beta)`` (finite at u = ±1).
The sign of ``h`` is the sign of ``u``, so continuation changes the training
signal, never the codes. ``beta = init_scale * (1 + gamma * n)^power`` is
updated every ``step_size`` optimiser steps ``n`` (the original schedule);
**the trainer must call ``loss.step()`` after each optimiser step**. The step
count is a buffer, so it is saved with the loss's state_dict.

Batch-wise: pairs ``i != j`` within the batch.

>>> import torch
>>> loss = HashNetLoss(n_bits=8, n_classes=2, step_size=2)
>>> for _ in range(4):
...     loss.step()
>>> round(loss.scale, 4)   # (1 + 0.005 * 4) ** 0.5
1.01
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hashlearn._validation import check_positive_int
from hashlearn.losses.base import LocalityLoss, class_balanced_pair_mean


def scale_continuation(outputs: torch.Tensor, scale: float) -> torch.Tensor:
    """``tanh(scale * atanh(u))`` for ``u`` in [-1, 1], stable at the ends; identity for scale 1."""
    if scale == 1.0:
        return outputs
    u = outputs.clamp(-1.0, 1.0)
    plus, minus = (1 + u).pow(scale), (1 - u).pow(scale)
    return (plus - minus) / (plus + minus)


class HashNetLoss(LocalityLoss):
    """HashNet weighted pairwise cross-entropy with scale continuation.

    Parameters
    ----------
    n_bits, n_classes : int
    alpha : float or None, default None
        Sigmoid scale of the inner product; ``None`` means ``10 / n_bits`` (as in
        the authors' code), which keeps ``|x| <= 10``.
    init_scale, gamma, power : float, defaults 1.0, 0.005, 0.5
        Continuation ``beta = init_scale * (1 + gamma * n_steps) ** power``.
    step_size : int, default 200
        ``beta`` is updated every ``step_size`` calls of ``step()``.
    own_quantization : bool
        Accepted for a uniform interface; HashNet has no quantization term
        (continuation does that job).
    """

    def __init__(
        self,
        n_bits: int,
        n_classes: int,
        *,
        alpha: float | None = None,
        init_scale: float = 1.0,
        gamma: float = 0.005,
        power: float = 0.5,
        step_size: int = 200,
        own_quantization: bool = True,
    ):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        self.alpha = 10.0 / self.n_bits if alpha is None else float(alpha)
        if init_scale < 1.0:
            raise ValueError(f"init_scale must be >= 1 (continuation sharpens tanh), got {init_scale}.")
        self.init_scale, self.gamma, self.power = float(init_scale), float(gamma), float(power)
        self.step_size = check_positive_int(step_size, "step_size")
        self.register_buffer("n_steps", torch.zeros((), dtype=torch.int64))

    @property
    def scale(self) -> float:
        """Current continuation ``beta`` (constant between updates every ``step_size`` steps)."""
        n_updated = int(self.n_steps) // self.step_size * self.step_size
        return self.init_scale * (1.0 + self.gamma * n_updated) ** self.power

    def step(self) -> None:
        self.n_steps += 1

    def compute_loss(self, outputs, targets, similarity):
        sharpened = scale_continuation(outputs, self.scale)
        x = self.alpha * (sharpened @ sharpened.T)
        return class_balanced_pair_mean(F.softplus(x) - similarity * x, similarity)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}, scale={self.scale:.4g}"
