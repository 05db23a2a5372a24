"""Deep models: backbones, hash heads, HashModel, and the Classifier used as a backdoor victim."""

from hashlearn.models.backbones import BACKBONES, FEATURE_WIDTHS, MLPBackbone, SmallCNN, build_backbone, feature_backbone_kwargs
from hashlearn.models.classifier import Classifier
from hashlearn.models.hash_model import HashHead, HashModel

__all__ = [
    "BACKBONES",
    "FEATURE_WIDTHS",
    "feature_backbone_kwargs",
    "MLPBackbone",
    "SmallCNN",
    "build_backbone",
    "Classifier",
    "HashHead",
    "HashModel",
]
