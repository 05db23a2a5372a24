"""Locality-preserving losses of deep hashing, and the objective builder.

Every loss is ``loss(outputs, labels) -> scalar`` with ``outputs`` the
continuous codes ``(B, n_bits)`` in [-1, 1]; ``build_objective("dsdh+hswd",
n_bits, n_classes)`` composes a loss with a quantizer (``hashlearn.quantization``).
"""

from hashlearn.losses.base import LocalityLoss, pairwise_similarity
from hashlearn.losses.composite import CompositeLoss
from hashlearn.losses.csq import CSQLoss, make_hash_centers
from hashlearn.losses.crossmodal import CrossModalLoss
from hashlearn.losses.dch import DCHLoss
from hashlearn.losses.dcmh import DCMHLoss
from hashlearn.losses.dpsh import DPSHLoss
from hashlearn.losses.dsdh import DSDHLoss
from hashlearn.losses.greedyhash import GreedyHashLoss
from hashlearn.losses.hashnet import HashNetLoss
from hashlearn.losses.ssah import SSAHLoss
from hashlearn.losses.registry import (
    DEFAULT_METHOD,
    INPUT_KINDS,
    LOSSES,
    LossSpec,
    available_methods,
    build_objective,
    loss_spec,
    parse_method_name,
    training_defaults,
)
from hashlearn.losses.unsupervised import UnsupervisedLoss

__all__ = [
    "DEFAULT_METHOD",
    "INPUT_KINDS",
    "training_defaults",
    "LOSSES",
    "CSQLoss",
    "CompositeLoss",
    "CrossModalLoss",
    "DCMHLoss",
    "SSAHLoss",
    "DCHLoss",
    "DPSHLoss",
    "DSDHLoss",
    "GreedyHashLoss",
    "HashNetLoss",
    "LocalityLoss",
    "LossSpec",
    "UnsupervisedLoss",
    "available_methods",
    "build_objective",
    "loss_spec",
    "make_hash_centers",
    "pairwise_similarity",
    "parse_method_name",
]
