"""Registry of locality losses (one line each) and the method-name parser.

A method name is a loss name, optionally followed by ``+quantizer``:
``"dsdh"`` is DSDH with its own quantization term; ``"dsdh+hswd"`` turns that
term off and adds ``quantization_weight * HSWD``; ``"dsdh+none"`` has no
quantization at all (an ablation).

>>> objective = build_objective("dpsh+hswd", n_bits=16, n_classes=10)
>>> objective.locality.own_quantization, type(objective.quantizer).__name__, objective.weight
(False, 'HSWDQuantizer', 0.1)
"""

from __future__ import annotations

from hashlearn.losses.base import LocalityLoss
from hashlearn.losses.composite import CompositeLoss
from hashlearn.losses.csq import CSQLoss
from hashlearn.losses.dbdh import DBDHLoss
from hashlearn.losses.dch import DCHLoss
from hashlearn.losses.dpsh import DPSHLoss
from hashlearn.losses.dsdh import DSDHLoss
from hashlearn.losses.greedyhash import GreedyHashLoss
from hashlearn.losses.hashnet import HashNetLoss
from hashlearn.losses.triplet import TripletLoss
from hashlearn.losses.unsupervised import UnsupervisedLoss
from hashlearn.quantization import QUANTIZERS, build_quantizer

LOSSES: dict[str, type[LocalityLoss]] = {
    "dpsh": DPSHLoss,
    "dsdh": DSDHLoss,
    "hashnet": HashNetLoss,
    "dch": DCHLoss,
    "csq": CSQLoss,
    "greedyhash": GreedyHashLoss,
    "dbdh": DBDHLoss,
    "triplet": TripletLoss,
    "unsupervised": UnsupervisedLoss,
}

DEFAULT_QUANTIZATION_WEIGHT = 0.1


def available_methods() -> list[str]:
    """Every valid method name: each loss alone and with each quantizer."""
    return [name for loss in LOSSES for name in (loss, *(f"{loss}+{q}" for q in QUANTIZERS))]


def parse_method_name(method_name: str) -> tuple[str, str | None]:
    """``"dsdh+hswd"`` -> ``("dsdh", "hswd")``; ``"dsdh"`` -> ``("dsdh", None)``."""
    if not isinstance(method_name, str):
        raise TypeError(f"method_name must be a string such as 'dsdh' or 'dsdh+hswd', got {type(method_name).__name__}.")
    parts = method_name.strip().lower().split("+")
    if len(parts) > 2:
        raise ValueError(f"method_name {method_name!r} has more than one '+'; expected 'loss' or 'loss+quantizer'.")
    loss_name, quantizer_name = parts[0], (parts[1] if len(parts) == 2 else None)
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r} in method {method_name!r}; available losses: {', '.join(LOSSES)}.")
    if quantizer_name is not None and quantizer_name not in QUANTIZERS:
        raise ValueError(
            f"unknown quantizer {quantizer_name!r} in method {method_name!r}; available quantizers: {', '.join(QUANTIZERS)}."
        )
    return loss_name, quantizer_name


def build_objective(
    method_name: str,
    n_bits: int,
    n_classes: int | None = None,
    *,
    quantization_weight: float = DEFAULT_QUANTIZATION_WEIGHT,
    quantizer_kwargs: dict | None = None,
    **loss_kwargs,
) -> CompositeLoss:
    """The ``CompositeLoss`` for ``method_name`` (see the module docstring).

    ``loss_kwargs`` go to the locality loss (e.g. ``eta=0.05`` for DPSH),
    ``quantizer_kwargs`` to the quantizer (e.g. ``{"n_projections": 32}``),
    ``quantization_weight`` is the quantizer's weight (unused without ``+q``).
    """
    loss_name, quantizer_name = parse_method_name(method_name)
    if "own_quantization" in loss_kwargs:
        raise TypeError("own_quantization is set by the method name ('dsdh' keeps it, 'dsdh+q' turns it off); do not pass it.")
    if quantizer_name is None:
        if quantizer_kwargs:
            raise ValueError(f"quantizer_kwargs given but method {method_name!r} names no quantizer (use e.g. '{loss_name}+swd').")
        return CompositeLoss(LOSSES[loss_name](n_bits, n_classes, **loss_kwargs))
    locality = LOSSES[loss_name](n_bits, n_classes, own_quantization=False, **loss_kwargs)
    quantizer = build_quantizer(quantizer_name, **(quantizer_kwargs or {}))
    weight = 0.0 if quantizer_name == "none" else quantization_weight
    return CompositeLoss(locality, quantizer, weight)
