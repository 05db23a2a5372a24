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
from hashlearn.losses.dbdh import DBDHLoss
from hashlearn.losses.dch import DCHLoss
from hashlearn.losses.dcmh import DCMHLoss
from hashlearn.losses.dpsh import DPSHLoss
from hashlearn.losses.dsdh import DSDHLoss
from hashlearn.losses.greedyhash import GreedyHashLoss
from hashlearn.losses.hashnet import HashNetLoss
from hashlearn.losses.lifelong import LifelongLoss
from hashlearn.losses.lifelong_crossmodal import CrossModalLifelongLoss
from hashlearn.losses.ssah import SSAHLoss
from hashlearn.losses.triplet import TripletLoss
from hashlearn.losses.unsupervised import UnsupervisedLoss
from hashlearn.quantization import QUANTIZERS, build_quantizer


#: input kinds with their own training defaults (``data.features`` of a run)
INPUT_KINDS = ("pixels", "efficientnet", "minilm")
TRAINING_DEFAULT_KEYS = ("lr", "epochs", "quantization_weight")
#: the method ``hashlearn train`` uses when none is named: the best of the defaults sweep on every input kind
DEFAULT_METHOD = "csq"
DEFAULT_QUANTIZATION_WEIGHT = 0.1


def _by_input(pixels=None, efficientnet=None, minilm=None) -> dict:
    """``{"pixels": {"lr": .., "epochs": .., "quantization_weight": ..}, ...}`` from ``(lr, epochs[, weight])`` tuples."""
    table = {}
    for kind, values in (("pixels", pixels), ("efficientnet", efficientnet), ("minilm", minilm)):
        if values is not None:
            table[kind] = dict(zip(TRAINING_DEFAULT_KEYS, values))
    return table


@dataclass(frozen=True)
class LossSpec:
    """One registered loss: the class, what it is, and how it is trained by default.

    ``supervised`` losses take class labels; the others take float feature
    targets (the inputs themselves). ``lr``, ``epochs`` and ``loss_kwargs`` are
    the defaults a run uses unless its config sets ``trainer.lr``,
    ``trainer.epochs`` or ``method.loss``; ``by_input`` overrides ``lr``,
    ``epochs`` and ``quantization_weight`` per input kind (``"pixels"``,
    ``"efficientnet"``, ``"minilm"``: the run's ``data.features``), as chosen on
    the validation split by ``benchmarks/defaults_sweep.py``
    (``benchmarks/results/defaults_sweep.md``).
    """

    cls: type[LocalityLoss]
    description: str
    supervised: bool = True
    lr: float = 1e-3
    epochs: int = 10
    loss_kwargs: Mapping = field(default_factory=dict)
    by_input: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "loss_kwargs", MappingProxyType(dict(self.loss_kwargs)))
        object.__setattr__(self, "by_input", MappingProxyType({kind: MappingProxyType(dict(values)) for kind, values in self.by_input.items()}))
        for kind, values in self.by_input.items():
            unknown = set(values) - set(TRAINING_DEFAULT_KEYS)
            if kind not in INPUT_KINDS or unknown:
                raise ValueError(f"LossSpec of {self.cls.__name__}: by_input[{kind!r}] must use an input kind of {INPUT_KINDS} "
                                 f"and keys of {TRAINING_DEFAULT_KEYS}, got {sorted(values)}.")
        if self.supervised != (self.cls.label_kind == "class"):
            raise ValueError(f"LossSpec of {self.cls.__name__}: supervised={self.supervised} contradicts label_kind={self.cls.label_kind!r}.")


#: name -> spec (one line per loss). ``_by_input(pixels=(lr, epochs[, +q weight]), ...)`` are the validation-sweep
#: choices (defaults_sweep.md); on pixels only csq, greedyhash and dpsh had their rate swept (a CNN run costs minutes
#: on the shared cores), the others take csq's rate and budget, and the +q weight keeps 0.1 there (not swept)
LOSSES: dict[str, LossSpec] = {
    "dpsh": LossSpec(DPSHLoss, "Deep Pairwise-Supervised Hashing (Li et al., IJCAI 2016)",
                     by_input=_by_input((1e-3, 8), (3e-4, 12, 0.01), (3e-3, 30, 0.01))),
    # cross-entropy classifier: chosen on validation over MSE on single- and multi-label data (loss_settings_sweep.md)
    "dsdh": LossSpec(DSDHLoss, "Deep Supervised Discrete Hashing (Li et al., NeurIPS 2017)", loss_kwargs={"classification": "ce"},
                     by_input=_by_input((1e-3, 8), (1e-3, 12, 0.1), (1e-2, 23, 0.1))),
    "hashnet": LossSpec(HashNetLoss, "HashNet: continuation + weighted pairwise loss (Cao et al., ICCV 2017)",
                        by_input=_by_input((1e-3, 8), (1e-3, 10, 0.01), (1e-2, 27, 0.01))),
    "dch": LossSpec(DCHLoss, "Deep Cauchy Hashing (Cao et al., CVPR 2018)",
                    by_input=_by_input((1e-3, 8), (3e-4, 10, 0.01), (1e-3, 27, 0.1))),
    "csq": LossSpec(CSQLoss, "Central Similarity Quantization (Yuan et al., CVPR 2020)",
                    by_input=_by_input((1e-3, 8), (1e-3, 10, 0.1), (1e-2, 11, 0.01))),
    "greedyhash": LossSpec(GreedyHashLoss, "GreedyHash: sign with straight-through gradient (Su et al., NeurIPS 2018)",
                           by_input=_by_input((1e-3, 7), (1e-3, 10, 0.01), (1e-2, 15, 0.01))),
    "dbdh": LossSpec(DBDHLoss, "Deep Balanced Discrete Hashing: pairwise likelihood + per-code balance (Zheng et al., Neurocomputing 2020)",
                     by_input=_by_input((1e-3, 8), (3e-4, 12, 0.01), (1e-3, 30, 0.01))),
    # eta 0: the own-quantization weight chosen on validation (loss_settings_sweep.md; the class default 0.1
    # saturated tanh before the codes separated: validation mAP@1000 0.48 at 16 bits)
    "triplet": LossSpec(TripletLoss, "supervised batch-all triplet hinge on relaxed Hamming distances", loss_kwargs={"eta": 0.0},
                        by_input=_by_input((1e-3, 8), (3e-4, 12, 0.01), (1e-3, 29, 0.01))),
    "unsupervised": LossSpec(UnsupervisedLoss, "contrastive loss on float-kNN neighbours (unlabelled embeddings)", supervised=False),
    "dcmh": LossSpec(DCMHLoss, "Deep Cross-Modal Hashing (Jiang and Li, CVPR 2017); paired image-text batches", epochs=40),
    # not swept: csq's rates and budgets; a lifelong stage (hashlearn lifelong) adds the stored old codes as fixed targets
    "lifelong": LossSpec(LifelongLoss, "lifelong hashing: fixed old codes as targets + cosine label similarity (Xu et al., DLCH 2023)",
                         by_input=_by_input((1e-3, 8), (1e-3, 10, 0.1), (1e-2, 11, 0.01))),
    "ssah": LossSpec(SSAHLoss, "SSAH-style: label network + optional modality adversary (Li et al., CVPR 2018); paired", epochs=40),
    # the lifelong loss across modalities: the two-tower stages of `hashlearn lifelong` (image / text codes vs stored old codes)
    "lifelong-crossmodal": LossSpec(CrossModalLifelongLoss, "lifelong hashing of image-text pairs: inter-modal terms against the stored "
                                    "old image and text codes, shared centers (Xu et al., DLCH 2023); paired", epochs=40),
}

def training_defaults(method_name: str, features: str = "pixels") -> dict:
    """``{"lr", "epochs", "quantization_weight"}`` of a method for inputs of kind ``features``.

    >>> training_defaults("csq+hswd", "efficientnet")
    {'lr': 0.001, 'epochs': 10, 'quantization_weight': 0.1}
    """
    spec = loss_spec(method_name)
    values = {"lr": spec.lr, "epochs": spec.epochs, "quantization_weight": DEFAULT_QUANTIZATION_WEIGHT}
    values.update(spec.by_input.get(features, {}))
    return values


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
