"""Base class of the quantization losses: ``quantizer(outputs) -> scalar``.

A quantizer measures how far a batch of continuous codes ``(B, n_bits)`` is
from binary (and, for some, from balanced, independent) codes. It is added to
a locality loss with one weight by ``CompositeLoss``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hashlearn._tensor_checks import check_outputs


class Quantizer(nn.Module):
    """Checks ``outputs`` (a floating ``(B, n_bits)`` tensor) and calls ``compute(outputs)``.

    ``on_epoch_start(epoch)`` and ``step()`` are the same training hooks as the
    locality losses have (no-ops here).
    """

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.compute(check_outputs(outputs))

    def compute(self, outputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before each epoch; no-op."""

    def step(self) -> None:
        """Called by the trainer after each optimiser step; no-op."""


class NoQuantizer(Quantizer):
    """No quantization loss: always 0.

    >>> import torch
    >>> float(NoQuantizer()(torch.zeros(2, 8)))
    0.0
    """

    def compute(self, outputs):
        return outputs.new_zeros(())


def make_generator(random_state: int | None) -> torch.Generator:
    """A CPU generator seeded with ``random_state`` (fresh entropy for ``None``)."""
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
    else:
        if isinstance(random_state, bool) or not isinstance(random_state, int):
            raise TypeError(f"random_state must be an int or None, got {type(random_state).__name__}.")
        generator.manual_seed(random_state)
    return generator


def sort_rows(values: torch.Tensor) -> torch.Tensor:
    """Each row of a 2-D tensor sorted ascending, differentiable.

    On CPU the order comes from numpy's vectorised argsort (torch 2.x's CPU sort
    is about 10x slower on these shapes) and the values are gathered in torch, so
    gradients flow as through ``torch.sort``; elsewhere ``torch.sort`` is used.
    """
    if values.device.type != "cpu":
        return torch.sort(values, dim=1).values
    order = torch.from_numpy(np.argsort(values.detach().numpy(), axis=1))
    return values.gather(1, order)


def lowest_in_rows(values: torch.Tensor, count: int) -> torch.Tensor:
    """Indices ``(rows, count)`` of the ``count`` smallest entries of each row, in no order
    (a selection, linear on average; numpy's ``argpartition`` on CPU, ``torch.topk`` elsewhere)."""
    if values.device.type != "cpu":
        return torch.topk(values, count, dim=1, largest=False, sorted=False).indices
    partitioned = np.argpartition(values.detach().numpy(), count - 1, axis=1)[:, :count]
    return torch.from_numpy(np.ascontiguousarray(partitioned))
