"""The one registry of locality losses and the method-name parser.

Each loss is registered once, in :data:`LOSSES`: its class, a description,
whether it needs labels, and the defaults it is trained with (learning rate,
epochs, loss arguments). The trainer, the run workflows and ``hashlearn
train`` all read this one entry -- a new loss is one file and one line here.

A method name is a loss name, optionally followed by ``+quantizer``:
``"dsdh"`` is DSDH with its own quantization term; ``"dsdh+hswd"`` turns that
term off and adds ``quantization_weight * HSWD``; ``"dsdh+none"`` has no
quantization at all (an ablation).

>>> objective = build_objective("dpsh+hswd", n_bits=16, n_classes=10)
>>> objective.locality.own_quantization, type(objective.quantizer).__name__, objective.weight
(False, 'HSWDQuantizer', 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from hashlearn.losses.base import LocalityLoss
from hashlearn.losses.composite import CompositeLoss
from hashlearn.losses.csq import CSQLoss
from hashlearn.losses.dch import DCHLoss
from hashlearn.losses.dcmh import DCMHLoss
from hashlearn.losses.dpsh import DPSHLoss
from hashlearn.losses.dsdh import DSDHLoss
from hashlearn.losses.greedyhash import GreedyHashLoss
from hashlearn.losses.hashnet import HashNetLoss
from hashlearn.losses.ssah import SSAHLoss
from hashlearn.losses.unsupervised import UnsupervisedLoss
from hashlearn.quantization import QUANTIZERS, build_quantizer


@dataclass(frozen=True)
class LossSpec:
    """One registered loss: the class, what it is, and how it is trained by default.

    ``supervised`` losses take class labels; the others take float feature
    targets (the inputs themselves). ``lr``, ``epochs`` and ``loss_kwargs`` are
    the defaults a run uses unless its config sets ``trainer.lr``,
    ``trainer.epochs`` or ``method.loss``.
    """

    cls: type[LocalityLoss]
    description: str
    supervised: bool = True
    lr: float = 1e-3
    epochs: int = 10
    loss_kwargs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "loss_kwargs", MappingProxyType(dict(self.loss_kwargs)))
        if self.supervised != (self.cls.label_kind == "class"):
            raise ValueError(f"LossSpec of {self.cls.__name__}: supervised={self.supervised} contradicts label_kind={self.cls.label_kind!r}.")


#: name -> spec (one line per loss)
LOSSES: dict[str, LossSpec] = {
    "dpsh": LossSpec(DPSHLoss, "Deep Pairwise-Supervised Hashing (Li et al., IJCAI 2016)"),
    "dsdh": LossSpec(DSDHLoss, "Deep Supervised Discrete Hashing (Li et al., NeurIPS 2017)"),
    "hashnet": LossSpec(HashNetLoss, "HashNet: continuation + weighted pairwise loss (Cao et al., ICCV 2017)"),
    "dch": LossSpec(DCHLoss, "Deep Cauchy Hashing (Cao et al., CVPR 2018)"),
    "csq": LossSpec(CSQLoss, "Central Similarity Quantization (Yuan et al., CVPR 2020)"),
    "greedyhash": LossSpec(GreedyHashLoss, "GreedyHash: sign with straight-through gradient (Su et al., NeurIPS 2018)"),
    "unsupervised": LossSpec(UnsupervisedLoss, "contrastive loss on float-kNN neighbours (unlabelled embeddings)", supervised=False),
    "dcmh": LossSpec(DCMHLoss, "Deep Cross-Modal Hashing (Jiang and Li, CVPR 2017); paired image-text batches", epochs=40),
    "ssah": LossSpec(SSAHLoss, "SSAH-style: label network + optional modality adversary (Li et al., CVPR 2018); paired", epochs=40),
}

DEFAULT_QUANTIZATION_WEIGHT = 0.1


def available_methods() -> list[str]:
    """Every valid method name: each loss alone and with each quantizer."""
    return [name for loss in LOSSES for name in (loss, *(f"{loss}+{q}" for q in QUANTIZERS))]


def loss_spec(method_name: str) -> LossSpec:
    """The registered spec of the loss in ``method_name`` (``"dsdh+hswd"`` -> the DSDH spec)."""
    return LOSSES[parse_method_name(method_name)[0]]


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

    ``loss_kwargs`` go to the locality loss (e.g. ``eta=0.05`` for DPSH) on top of the
    spec's registered ``loss_kwargs``,
    ``quantizer_kwargs`` to the quantizer (e.g. ``{"n_projections": 32}``),
    ``quantization_weight`` is the quantizer's weight (unused without ``+q``).
    """
    loss_name, quantizer_name = parse_method_name(method_name)
    loss_kwargs = {**LOSSES[loss_name].loss_kwargs, **loss_kwargs}
    if "own_quantization" in loss_kwargs:
        raise TypeError("own_quantization is set by the method name ('dsdh' keeps it, 'dsdh+q' turns it off); do not pass it.")
    if quantizer_name is None:
        if quantizer_kwargs:
            raise ValueError(f"quantizer_kwargs given but method {method_name!r} names no quantizer (use e.g. '{loss_name}+swd').")
        return CompositeLoss(LOSSES[loss_name].cls(n_bits, n_classes, **loss_kwargs))
    locality = LOSSES[loss_name].cls(n_bits, n_classes, own_quantization=False, **loss_kwargs)
    quantizer = build_quantizer(quantizer_name, **(quantizer_kwargs or {}))
    weight = 0.0 if quantizer_name == "none" else quantization_weight
    return CompositeLoss(locality, quantizer, weight)
