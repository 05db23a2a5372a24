"""Classifier = backbone + linear head; the victim of backdoor attacks on classifiers.

Saved like :class:`~hashlearn.models.HashModel`: safetensors weights + JSON config.

>>> import torch
>>> model = Classifier("mlp", 3, {"in_features": 4, "hidden": [8]})
>>> model(torch.zeros(2, 4)).shape, model.features(torch.zeros(2, 4)).shape
(torch.Size([2, 3]), torch.Size([2, 8]))
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hashlearn._io import atomic_write_bytes, atomic_write_json
from hashlearn._validation import check_positive_int
from hashlearn.errors import CorruptFileError
from hashlearn.models.backbones import build_backbone
from hashlearn.models.inference import batched_outputs

FORMAT_VERSION = 1


class Classifier(nn.Module):
    """A backbone followed by one linear layer ``head`` giving class logits.

    ``forward(x)`` returns logits ``(B, n_classes)``; ``features(x)`` the
    penultimate (latent) features ``(B, backbone.out_features)``; the rows of
    ``head.weight`` are one direction per class in that latent space (used by
    the Wasserstein backdoor and by latent-space defenses).

    Parameters
    ----------
    backbone : str
        Registered backbone name (``"mlp"``, ``"small_cnn"``).
    n_classes : int
        Number of classes, at least 2.
    backbone_kwargs : dict
        Arguments of the backbone (JSON-serialisable: they are saved with the weights).
    """

    def __init__(self, backbone: str, n_classes: int, backbone_kwargs: dict | None = None):
        super().__init__()
        self.n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone = build_backbone(backbone, **self.backbone_kwargs)
        self.head = nn.Linear(self.backbone.out_features, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def config(self) -> dict:
        return {"backbone": self.backbone_name, "n_classes": self.n_classes, "backbone_kwargs": self.backbone_kwargs}

    def predict_logits(self, x, batch_size: int = 1024) -> np.ndarray:
        """Logits for a numpy array or tensor, in eval mode (the caller's mode is restored)."""
        return batched_outputs(self, x, self.n_classes, batch_size)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Predicted class ids ``(n,)`` int64."""
        return self.predict_logits(x, batch_size=batch_size).argmax(1).astype(np.int64)

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``model.json`` into ``directory`` (atomically)."""
        from safetensors.torch import save

        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_bytes(directory / "model.safetensors", save(state))
        atomic_write_json(directory / "model.json", {"format_version": FORMAT_VERSION, "class": "Classifier", **self.config})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Classifier":
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path = directory / "model.json"
        if not config_path.exists():
            raise FileNotFoundError(f"no model.json in {directory}; expected a folder written by Classifier.save.")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise CorruptFileError(f"{config_path} is not valid JSON: {error}") from error
        if config.get("class", "Classifier") != "Classifier":
            raise ValueError(f"{config_path} holds a {config.get('class')!r}, not a Classifier; load it with that class.")
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise CorruptFileError(
                f"{config_path} has format version {config.get('format_version')}, newer than {FORMAT_VERSION}; upgrade hashlearn."
            )
        model = cls(config["backbone"], config["n_classes"], config.get("backbone_kwargs"))
        try:
            state = load_file(str(directory / "model.safetensors"))
        except Exception as error:  # safetensors raises its own error types
            raise CorruptFileError(f"cannot read weights {directory / 'model.safetensors'}: {error}") from error
        model.load_state_dict(state)
        return model
