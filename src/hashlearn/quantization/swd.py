"""Sliced Wasserstein quantizer (``"swd"``).

The squared sliced 2-Wasserstein distance between the batch of continuous
codes ``U (B, n_bits)`` and an equal-size sample ``T`` of ±1 Bernoulli(0.5)
codes: project both on ``n_projections`` random unit directions, sort each
projection over the batch, and average the squared differences of the sorted
values. Zero only when the codes are distributed like uniform random binary
codes, so it asks for binary, balanced and independent bits with one term.

Each quantizer owns a seeded CPU generator (one per call site), so a run is
reproducible; the target sample and the directions are redrawn every call.
The result does not depend on the order of the batch.

>>> import torch
>>> swd = SlicedWassersteinQuantizer(n_projections=16, random_state=0)
>>> float(swd(torch.zeros(32, 8))) > 0.5   # all-zero codes are far from binary
True
"""

from __future__ import annotations

import torch

from hashlearn._validation import check_positive_int
from hashlearn.quantization.base import Quantizer, make_generator, sort_rows


def random_binary_codes(batch: int, n_bits: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch, n_bits)`` float ±1 codes, each bit Bernoulli(0.5)."""
    return torch.randint(0, 2, (batch, n_bits), generator=generator).float() * 2 - 1


def random_directions(n_bits: int, n_projections: int, generator: torch.Generator) -> torch.Tensor:
    """``(n_bits, n_projections)`` unit columns, uniform on the sphere."""
    directions = torch.randn(n_bits, n_projections, generator=generator)
    return directions / directions.norm(dim=0, keepdim=True)


def sliced_wasserstein(outputs: torch.Tensor, targets: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Mean over directions and order statistics of the squared difference of sorted projections."""
    # (n_projections, B): one row per direction, sorted along the contiguous dimension
    projected_outputs = sort_rows(directions.T @ outputs.T)
    projected_targets = sort_rows(directions.T @ targets.T)
    return (projected_outputs - projected_targets).pow(2).mean()


class SlicedWassersteinQuantizer(Quantizer):
    """SWD to Bernoulli(0.5) ±1 codes over ``n_projections`` random directions.

    Parameters
    ----------
    n_projections : int, default 64
    random_state : int or None, default 0
        Seed of this quantizer's generator.
    """

    def __init__(self, *, n_projections: int = 64, random_state: int | None = 0):
        super().__init__()
        self.n_projections = check_positive_int(n_projections, "n_projections")
        self.random_state = random_state
        self.generator = make_generator(random_state)

    def compute(self, outputs):
        batch, n_bits = outputs.shape
        targets = random_binary_codes(batch, n_bits, self.generator)
        directions = random_directions(n_bits, self.n_projections, self.generator)
        like = {"dtype": outputs.dtype, "device": outputs.device}
        return sliced_wasserstein(outputs, targets.to(**like), directions.to(**like))

    def extra_repr(self) -> str:
        return f"n_projections={self.n_projections}, random_state={self.random_state}"
