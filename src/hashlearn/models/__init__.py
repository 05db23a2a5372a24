"""Deep hash models: backbones, hash heads, HashModel."""

from hashlearn.models.backbones import BACKBONES, FEATURE_WIDTHS, MLPBackbone, SmallCNN, build_backbone, feature_backbone_kwargs
from hashlearn.models.hash_model import HashHead, HashModel
from hashlearn.models.classifier import Classifier

__all__ = ["BACKBONES", "FEATURE_WIDTHS", "feature_backbone_kwargs", "MLPBackbone", "SmallCNN", "build_backbone", "HashHead", "HashModel"]
