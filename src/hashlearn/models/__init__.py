"""Deep hash models: backbones, hash heads, HashModel."""

from hashlearn.models.backbones import BACKBONES, MLPBackbone, SmallCNN, build_backbone
from hashlearn.models.hash_model import HashHead, HashModel
from hashlearn.models.classifier import Classifier

__all__ = ["BACKBONES", "MLPBackbone", "SmallCNN", "build_backbone", "HashHead", "HashModel"]
