"""Two-tower hash model: an image tower and a text tower hashing into one Hamming space.

Each tower is a :class:`~hashlearn.models.HashModel` (a registered backbone and
a ``tanh`` hash head) with the same ``n_bits``: a small CNN on pixels or an
MLP on frozen EfficientNet-Lite0 features for images, an MLP on
bag-of-words / tag vectors or on frozen MiniLM embeddings for text. A code
from either tower can be searched against codes from the other.

``forward((images, texts))`` returns ``(image_outputs, text_outputs)``, the
paired-batch form the cross-modal losses and the trainer take. Saved like
every model: ``model.safetensors`` + ``model.json`` (with its SHA-256), no pickle.

>>> import torch
>>> model = TwoTowerHashModel(16, ("mlp", {"in_features": 6, "hidden": [8]}), ("mlp", {"in_features": 5, "hidden": [8]}))
>>> image_out, text_out = model((torch.zeros(2, 6), torch.zeros(2, 5)))
>>> image_out.shape, text_out.shape, model.encode(torch.zeros(3, 5), "text").shape
(torch.Size([2, 16]), torch.Size([2, 16]), (3, 2))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hashlearn._io import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_bytes
from hashlearn._validation import check_n_bits
from hashlearn.errors import CorruptFileError
from hashlearn.models.hash_model import HashModel

FORMAT_VERSION = 1
MODALITIES = ("image", "text")


def _tower_spec(spec, name: str) -> tuple[str, dict]:
    if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict)):
        raise TypeError(f"{name} must be a pair (backbone name, backbone kwargs dict), got {spec!r}.")
    return spec[0], dict(spec[1])


class TwoTowerHashModel(nn.Module):
    """Image and text towers with ``n_bits`` outputs each.

    Parameters
    ----------
    n_bits : int
        Code length of both towers, a multiple of 8.
    image : (str, dict)
        Backbone name and arguments of the image tower (``("small_cnn", {...})``, ``("mlp", {...})``).
    text : (str, dict)
        Backbone name and arguments of the text tower.
    """

    size_key = "n_bits"

    def __init__(self, n_bits: int, image, text):
        super().__init__()
        self.n_bits = check_n_bits(n_bits)
        image_backbone, image_kwargs = _tower_spec(image, "image")
        text_backbone, text_kwargs = _tower_spec(text, "text")
        self.image_tower = HashModel(image_backbone, self.n_bits, image_kwargs)
        self.text_tower = HashModel(text_backbone, self.n_bits, text_kwargs)

    def forward(self, inputs):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError(f"a two-tower model takes a pair (images, texts), got {type(inputs).__name__}; "
                            "use model.tower('image') or model.tower('text') for one modality.")
        images, texts = inputs
        return self.image_tower(images), self.text_tower(texts)

    def tower(self, modality: str) -> HashModel:
        """The :class:`HashModel` of ``modality`` (``"image"`` or ``"text"``)."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
        return self.image_tower if modality == "image" else self.text_tower

    def transform(self, x, modality: str, batch_size: int = 1024) -> np.ndarray:
        """Continuous codes of one modality's inputs (eval mode, the caller's mode restored)."""
        return self.tower(modality).transform(x, batch_size=batch_size)

    def encode(self, x, modality: str, batch_size: int = 1024) -> np.ndarray:
        """Packed ``uint8`` codes ``(n, n_bits // 8)`` of one modality's inputs."""
        return self.tower(modality).encode(x, batch_size=batch_size)

    @property
    def config(self) -> dict:
        return {
            "n_bits": self.n_bits,
            "image": {"backbone": self.image_tower.backbone_name, "backbone_kwargs": self.image_tower.backbone_kwargs},
            "text": {"backbone": self.text_tower.backbone_name, "backbone_kwargs": self.text_tower.backbone_kwargs},
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` then ``model.json`` (config + weights checksum), atomically."""
        from safetensors.torch import save

        directory = Path(directory)
        payload = save({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()})
        atomic_write_bytes(directory / "model.safetensors", payload)
        atomic_write_json(directory / "model.json", {"format_version": FORMAT_VERSION, "class": type(self).__name__,
                                                     **self.config, "sha256": sha256_bytes(payload)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "TwoTowerHashModel":
        """Rebuild a model written by :meth:`save`; typed errors for missing, damaged or foreign files."""
        from safetensors.torch import load

        directory = Path(directory)
        config_path, weights_path = directory / "model.json", directory / "model.safetensors"
        if not config_path.exists():
            raise FileNotFoundError(f"no model.json in {directory}; expected a folder written by TwoTowerHashModel.save.")
        config = read_versioned_json(config_path, FORMAT_VERSION)
        if config.get("class") != cls.__name__:
            raise CorruptFileError(f"{config_path} does not describe a {cls.__name__} (class={config.get('class')!r}).")
        if not weights_path.exists():
            raise FileNotFoundError(f"no model.safetensors in {directory}; expected a folder written by TwoTowerHashModel.save.")
        payload = weights_path.read_bytes()
        if sha256_bytes(payload) != config.get("sha256"):
            raise CorruptFileError(f"{weights_path} does not match the checksum in {config_path}: the file was changed or truncated.")
        try:
            towers = {m: (config[m]["backbone"], config[m].get("backbone_kwargs", {})) for m in MODALITIES}
            model = cls(config["n_bits"], towers["image"], towers["text"])
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptFileError(f"{config_path} holds an invalid two-tower configuration: {error}") from error
        try:
            model.load_state_dict(load(payload))
        except Exception as error:  # safetensors' own errors, or missing / unexpected keys
            raise CorruptFileError(f"weights in {weights_path} do not fit the model described in {config_path}: {error}") from error
        model.eval()
        return model


def default_tower(input_shape: tuple[int, ...], hidden=(512,)) -> tuple[str, dict]:
    """``("small_cnn", ...)`` for ``(C, H, W)`` pixels, ``("mlp", ...)`` for ``(d,)`` feature vectors.

    >>> default_tower((384,))
    ('mlp', {'in_features': 384, 'hidden': [512], 'dropout': 0.0})
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) == 1:
        return "mlp", {"in_features": input_shape[0], "hidden": list(hidden), "dropout": 0.0}
    if len(input_shape) == 3:
        channels, height, width = input_shape
        if height != width or height % 4:
            raise ValueError(f"the small CNN needs square images with a side divisible by 4, got input_shape={input_shape}.")
        return "small_cnn", {"in_channels": channels, "image_size": height, "width": 32, "out_features": 256}
    raise ValueError(f"input_shape must be (d,) or (C, H, W), got {input_shape}.")


def build_two_tower(n_bits: int, image_shape, text_shape, *, seed: int = 0, hidden=(512,)) -> TwoTowerHashModel:
    """A two-tower model with the default towers for the input shapes; weights depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TwoTowerHashModel(n_bits, default_tower(image_shape, hidden), default_tower(text_shape, hidden))


__all__ = ["MODALITIES", "TwoTowerHashModel", "build_two_tower", "default_tower"]
