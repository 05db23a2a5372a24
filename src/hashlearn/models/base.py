"""The base of every deep model: a registered backbone followed by a ``head``, saved as
safetensors weights + a JSON config that vouches for them.

:class:`~hashlearn.models.HashModel` and :class:`~hashlearn.models.Classifier` are both
``cls(backbone, <size>, backbone_kwargs)`` and differ only in their head and size argument.
No pickle; a missing, foreign, damaged or newer file raises a typed error.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hashlearn._io import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_bytes
from hashlearn.errors import CorruptFileError
from hashlearn.models.backbones import build_backbone

FORMAT_VERSION = 1


class BackboneModel(nn.Module):
    """``backbone`` then ``head`` (set by the subclass); ``features`` are the backbone's
    latent features; ``save`` / ``load`` round-trip through ``config``."""

    #: name of the second constructor argument in ``config`` (``"n_bits"``, ``"n_classes"``)
    size_key: str = ""

    def __init__(self, backbone: str, backbone_kwargs: dict | None = None):
        super().__init__()
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone = build_backbone(backbone, **self.backbone_kwargs)
        #: what the model was trained on (:class:`~hashlearn.models.input_spec.InputSpec`), saved with it
        self.input_spec = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def config(self) -> dict:
        config = {"backbone": self.backbone_name, self.size_key: getattr(self, self.size_key), "backbone_kwargs": self.backbone_kwargs}
        if self.input_spec is not None:
            config["input_spec"] = self.input_spec.to_dict()
        return config

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``model.json`` into ``directory`` (atomically)."""
        from safetensors.torch import save

        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        payload = save(state)
        # weights first, then the JSON that vouches for them (checksum): a crash in between leaves
        # an old JSON whose checksum no longer matches, which load reports instead of mixing versions
        atomic_write_bytes(directory / "model.safetensors", payload)
        meta = {"format_version": FORMAT_VERSION, "class": type(self).__name__, **self.config, "sha256": sha256_bytes(payload)}
        atomic_write_json(directory / "model.json", meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path):
        """Rebuild a model written by :meth:`save`; typed errors for missing, damaged or foreign files."""
        from safetensors.torch import load

        name = cls.__name__
        directory = Path(directory)
        config_path, weights_path = directory / "model.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                if path is weights_path:  # a damaged config is reported before a missing weights file
                    read_versioned_json(config_path, FORMAT_VERSION)
                raise FileNotFoundError(f"no {path.name} in {directory}; expected a folder written by {name}.save.")
        config = read_versioned_json(config_path, FORMAT_VERSION)
        if config.get("class") != name:
            raise CorruptFileError(f"{config_path} does not describe a {name} (class={config.get('class')!r}).")
        missing = [key for key in ("backbone", cls.size_key) if key not in config]
        if missing:
            raise CorruptFileError(f"{config_path} lacks the key(s) {missing}.")
        payload = weights_path.read_bytes()
        if "sha256" in config and sha256_bytes(payload) != config["sha256"]:
            raise CorruptFileError(f"{weights_path} does not match the checksum in {config_path}: the file was changed or truncated.")
        try:
            model = cls(config["backbone"], config[cls.size_key], config.get("backbone_kwargs"))
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
        if config.get("input_spec") is not None:
            from hashlearn.models.input_spec import InputSpec

            try:
                model.input_spec = InputSpec.from_dict(config["input_spec"])
            except (TypeError, ValueError) as error:
                raise CorruptFileError(f"{config_path} holds an invalid input_spec: {error}") from error
        model.eval()
        return model
