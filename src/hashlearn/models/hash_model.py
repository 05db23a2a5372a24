"""HashModel = backbone + hash head; saved as safetensors weights + JSON config."""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from hashlearn._validation import check_n_bits
from hashlearn.codes import sign_to_codes
from hashlearn.models.inference import batched_outputs
from hashlearn.models.base import BackboneModel



class HashHead(nn.Module):
    """Linear layer to ``n_bits`` outputs squashed into ``[-1, 1]`` by ``tanh``."""

    def __init__(self, in_features: int, n_bits: int):
        super().__init__()
        self.linear = nn.Linear(in_features, n_bits)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(features))


class HashModel(BackboneModel):
    """A deep hash model.

    ``forward(x)`` returns continuous codes in ``[-1, 1]`` of shape ``(B, n_bits)``;
    ``features(x)`` the backbone's latent features; ``encode(x)`` packed ``uint8`` codes.

    Parameters
    ----------
    backbone : str
        Registered backbone name (``"mlp"``, ``"small_cnn"``, ...).
    n_bits : int
        Code length, a multiple of 8.
    backbone_kwargs : dict
        Arguments of the backbone (JSON-serialisable: they are saved with the weights).
    """

    size_key = "n_bits"

    def __init__(self, backbone: str, n_bits: int, backbone_kwargs: dict | None = None):
        n_bits = check_n_bits(n_bits)
        super().__init__(backbone, backbone_kwargs)
        self.n_bits = n_bits
        self.head = HashHead(self.backbone.out_features, self.n_bits)

    def transform(self, x, batch_size: int = 1024) -> np.ndarray:
        """Continuous outputs for a numpy array or tensor, in eval mode (mode restored after)."""
        return batched_outputs(self, x, self.n_bits, batch_size)

    def encode(self, x, batch_size: int = 1024) -> np.ndarray:
        """Packed ``uint8`` codes ``(n, n_bits // 8)``."""
        return sign_to_codes(self.transform(x, batch_size=batch_size))
