"""Backbones: map inputs to a feature vector of size ``out_features``."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int) -> nn.Sequential:
    """``Linear -> ReLU`` for each hidden width, then a final ``Linear`` to ``out_features`` (no activation)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class MLPBackbone(nn.Module):
    """Fully connected layers with ReLU on feature vectors ``(B, in_features)``."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (512,), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.net = nn.Sequential(*layers) if layers else nn.Identity()
        self.in_features = in_features
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SmallCNN(nn.Module):
    """Two conv blocks and a linear layer for small images ``(B, C, H, W)`` in ``[0, 1]``.

    Default geometry is 28x28 grey images (Fashion-MNIST, MNIST); a flat
    ``(B, C*H*W)`` input is reshaped.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32, out_features: int = 256):
        super().__init__()
        self.in_channels = in_channels
        self.image_size = image_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * side * side, out_features), nn.ReLU(inplace=True))
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.view(x.shape[0], self.in_channels, self.image_size, self.image_size)
        elif x.dim() == 3:
            x = x.unsqueeze(1)
        return self.fc(self.features(x))


BACKBONES = {"mlp": MLPBackbone, "small_cnn": SmallCNN}

#: width of the frozen encoders' features (``hashlearn.data.features``); a hash model on
#: them is the ``"mlp"`` backbone with ``in_features`` set to this width (the encoder is not
#: part of the model: features are computed once and cached, then only the head is trained)
FEATURE_WIDTHS = {"efficientnet": 1280, "minilm": 384}


def feature_backbone_kwargs(encoder: str, hidden=(512,), dropout: float = 0.0) -> dict:
    """``backbone_kwargs`` of an MLP head on cached encoder features.

    >>> feature_backbone_kwargs("efficientnet")
    {'in_features': 1280, 'hidden': [512], 'dropout': 0.0}
    """
    if encoder not in FEATURE_WIDTHS:
        raise ValueError(f"encoder must be one of {sorted(FEATURE_WIDTHS)}, got {encoder!r}.")
    return {"in_features": FEATURE_WIDTHS[encoder], "hidden": list(hidden), "dropout": float(dropout)}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """The backbone registered as ``name`` built with ``kwargs`` (``TypeError`` names a bad argument)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}.")
    return BACKBONES[name](**kwargs)
