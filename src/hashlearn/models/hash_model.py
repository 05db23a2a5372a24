"""HashModel = backbone + hash head; saved as safetensors weights + JSON config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hashlearn._io import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_bytes
from hashlearn._validation import check_n_bits
from hashlearn.codes import sign_to_codes
from hashlearn.errors import CorruptFileError
from hashlearn.models.backbones import build_backbone
from hashlearn.models.inference import batched_outputs

FORMAT_VERSION = 1


class HashHead(nn.Module):
    """Linear layer to ``n_bits`` outputs squashed into ``[-1, 1]`` by ``tanh``."""

    def __init__(self, in_features: int, n_bits: int):
        super().__init__()
        self.linear = nn.Linear(in_features, n_bits)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(features))


class HashModel(nn.Module):
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

    def __init__(self, backbone: str, n_bits: int, backbone_kwargs: dict | None = None):
        super().__init__()
        self.n_bits = check_n_bits(n_bits)
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone = build_backbone(backbone, **self.backbone_kwargs)
        self.head = HashHead(self.backbone.out_features, self.n_bits)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def config(self) -> dict:
        return {"backbone": self.backbone_name, "n_bits": self.n_bits, "backbone_kwargs": self.backbone_kwargs}

    def transform(self, x, batch_size: int = 1024) -> np.ndarray:
        """Continuous outputs for a numpy array or tensor, in eval mode (mode restored after)."""
        return batched_outputs(self, x, self.n_bits, batch_size)

    def encode(self, x, batch_size: int = 1024) -> np.ndarray:
        """Packed ``uint8`` codes ``(n, n_bits // 8)``."""
        return sign_to_codes(self.transform(x, batch_size=batch_size))

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``model.json`` into ``directory`` (atomically)."""
        from safetensors.torch import save

        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        payload = save(state)
        # weights first, then the JSON that vouches for them (checksum): a crash in between leaves
        # an old JSON whose checksum no longer matches, which load reports instead of mixing versions
        atomic_write_bytes(directory / "model.safetensors", payload)
        meta = {"format_version": FORMAT_VERSION, "class": "HashModel", **self.config, "sha256": sha256_bytes(payload)}
        atomic_write_json(directory / "model.json", meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "HashModel":
        """Rebuild a model written by :meth:`save`; typed errors for missing, damaged or foreign files."""
        from safetensors.torch import load

        directory = Path(directory)
        config_path, weights_path = directory / "model.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                raise FileNotFoundError(f"no {path.name} in {directory}; expected a folder written by HashModel.save.")
        config = read_versioned_json(config_path, FORMAT_VERSION)
        if config.get("class") != "HashModel":
            raise CorruptFileError(f"{config_path} does not describe a HashModel (class={config.get('class')!r}).")
        missing = [key for key in ("backbone", "n_bits") if key not in config]
        if missing:
            raise CorruptFileError(f"{config_path} lacks the key(s) {missing}.")
        payload = weights_path.read_bytes()
        if "sha256" in config and sha256_bytes(payload) != config["sha256"]:
            raise CorruptFileError(f"{weights_path} does not match the checksum in {config_path}: the file was changed or truncated.")
        try:
            model = cls(config["backbone"], config["n_bits"], config.get("backbone_kwargs"))
        except (TypeError, ValueError) as error:
            raise CorruptFileError(f"{config_path} holds an invalid model configuration: {error}") from error
        try:
            state = load(payload)
        except Exception as error:  # safetensors raises its own error types
            raise CorruptFileError(f"cannot read weights {weights_path}: {error}") from error
        try:
            model.load_state_dict(state)
        except RuntimeError as error:  # missing / unexpected keys or shape mismatch
            raise CorruptFileError(f"weights in {weights_path} do not fit the model described in {config_path}: {error}") from error
        model.eval()
        return model
