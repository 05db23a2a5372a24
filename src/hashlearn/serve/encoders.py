"""Model-backed serving: turn raw inputs, texts or images into the codes the index holds.

:class:`RunEncoder` wraps the model of a run (``hashlearn serve --model R``). What it
accepts follows what the model was trained on (the run's ``data.features`` and the
model's recorded input spec):

========================  =====================================================
the run's features        request fields
========================  =====================================================
``pixels``                ``inputs`` (arrays shaped as the model takes them);
                          ``images`` too when the data are images (e.g. digits
                          8x8, Fashion-MNIST 28x28): grayscale, the training
                          size, 8-bit values scaled like the training data
``minilm``                ``texts`` (encoded by the frozen MiniLM, as in
                          training) and ``inputs`` (384-d MiniLM features)
``efficientnet``          ``images`` (through the frozen EfficientNet-Lite0, as
                          in training) and ``inputs`` (1280-d features)
========================  =====================================================

Inputs are checked against the model's input spec (shape, dtype, value range) by
:func:`hashlearn.models.input_spec.check_inputs` where the model records one; a model
saved without a spec gets a shape and finiteness check.

A cross-modal run (a two-tower model trained on image-text pairs, e.g. ``openmoji``) is
served by :class:`CrossModalRunEncoder`: ``texts`` go through the text tower and
``images`` (RGB PNG or JPEG) through the image tower, each turned into that tower's
inputs as in training (:func:`hashlearn.runs.crossmodal.query_inputs`). The index
decides what comes back: an index built with ``--modality image`` answers a text with
images (T->I) and an image with images (I->I); one built with ``--modality text``
answers an image with texts (I->T). :func:`load_encoder` picks the class from the run.
Any other object with ``n_bits``, ``fields``, ``prepare(field, values)``,
``encode(field, prepared)`` and ``describe()`` plugs in too (see
:class:`hashlearn.serve.service.QueryEncoder`).
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from pathlib import Path

import numpy as np

from hashlearn.serve.service import invalid

#: largest decoded image side a request may send (pixels); larger images are refused before decoding
MAX_IMAGE_SIDE = 4096
#: longest text (characters) a request may send
MAX_TEXT_CHARS = 20_000


class RunEncoder:
    """The model of a run as a :class:`~hashlearn.serve.service.QueryEncoder`.

    Encoding runs on the service's worker threads; one lock keeps torch calls on the
    model one at a time (torch parallelises each call itself).
    """

    def __init__(self, run):
        from hashlearn.runs import Run, load_run

        self.run = run if isinstance(run, Run) else load_run(run)
        self.model = self.run.load_model()
        if not hasattr(self.model, "encode") or not hasattr(self.model, "n_bits"):
            raise TypeError(f"the model of run {self.run.path} ({type(self.model).__name__}) does not make hash codes.")
        config = self.run.config
        self.features = config.data.features
        self.dataset_name = config.data.dataset
        self.method = config.method.name
        self.n_bits = int(self.model.n_bits)
        self.spec = getattr(self.model, "input_spec", None)
        self.image_shape = self._image_shape()
        fields = ["inputs"]
        if self.features == "minilm":
            fields.append("texts")
        if self.features == "efficientnet" or self.image_shape is not None:
            fields.append("images")
        self.fields = tuple(fields)
        self._lock = threading.Lock()
        self._text_encoder = None
        self._image_encoder = None

    def _image_shape(self):
        """``(H, W)`` of the training images, or None when the data are not images."""
        from hashlearn.data import load_dataset

        if self.features == "minilm":
            return None
        try:
            dataset = load_dataset(self.dataset_name)
        except Exception:  # noqa: BLE001 -- a dataset not installed here: serve inputs only
            return None
        shape = dataset.meta.get("image_shape") if isinstance(dataset.meta, dict) else None
        if shape is None and dataset.modality == "image":
            shape = dataset.data.shape[-2:]
        self._integer_scale = (dataset.meta or {}).get("integer_scale") if isinstance(dataset.meta, dict) else None
        return None if shape is None else tuple(int(v) for v in shape)

    def describe(self) -> dict:
        spec = None if self.spec is None else self.spec.to_dict()
        return {"run": str(self.run.path), "method": self.method, "dataset": self.dataset_name, "features": self.features,
                "n_bits": self.n_bits, "input_spec": spec, "image_shape": self.image_shape, "accepts": list(self.fields)}

    # --- checks (on the event loop, before any work is queued) ---------------------------
    def prepare(self, field: str, values: list):
        if field == "inputs":
            return self._check_inputs(values)
        if field == "texts":
            return _check_texts(values)
        if field == "images":
            return [self._decode_image(row, value) for row, value in enumerate(values)]
        raise invalid((field,), f"the served model does not take {field}.")

    def _check_inputs(self, values) -> np.ndarray:
        try:
            X = np.asarray(values)
        except ValueError:
            raise invalid(("inputs",), "must be equally shaped arrays of numbers (one per query).") from None
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise invalid(("inputs",), f"must hold numbers only, got {X.dtype} values.")
        if X.ndim < 2:
            raise invalid(("inputs",), "must be a list of arrays, one per query (a single query is [[...]]).")
        try:
            from hashlearn.models.input_spec import check_inputs
        except ImportError:  # a hashlearn without input specs
            check_inputs = None
        if check_inputs is not None:
            try:
                return check_inputs(X, self.spec, name="inputs")
            except (ValueError, TypeError) as error:
                raise invalid(("inputs",), str(error)) from None
        expected = getattr(self.model, "backbone_kwargs", {}).get("in_features")
        if expected is not None and int(np.prod(X.shape[1:])) != expected:
            raise invalid(("inputs",), f"items have shape {X.shape[1:]}; the model takes {expected} values per item.")
        X = X.astype(np.float32)
        if not np.isfinite(X).all():
            raise invalid(("inputs",), "contain NaN or infinite values.")
        return X

    def _decode_image(self, row: int, value: str) -> np.ndarray:
        pixels = np.asarray(_open_image(row, value).convert("L"), dtype=np.uint8)
        if self.image_shape is not None and pixels.shape != self.image_shape:
            h, w = self.image_shape
            raise invalid(("images", row), f"is {pixels.shape[1]}x{pixels.shape[0]} pixels; the model was trained on "
                                           f"{w}x{h} grayscale images (resize it first).")
        return pixels

    # --- encoding (on a worker thread) ----------------------------------------------------
    def encode(self, field: str, prepared) -> np.ndarray:
        if field == "inputs":
            X = prepared
        elif field == "texts":
            X = self._features(prepared, "minilm")
        elif self.features == "efficientnet":  # uint8 grayscale images, as the training images went in
            X = self._features(np.stack(prepared), "efficientnet-lite0")
        else:  # grayscale training-size images -> 8-bit / 255, the [0, 1] range the training pixels are in
            stacked = np.stack(prepared).astype(np.float32) / np.float32(255.0)
            X = self._check_inputs(stacked.reshape(len(stacked), -1).tolist() if self.spec is None
                                   else stacked.reshape(len(stacked), *self.spec.shape))
        with self._lock:
            return self.model.encode(X)

    def _features(self, items, encoder: str) -> np.ndarray:
        from hashlearn.data.features import extract_features

        return extract_features(items, encoder, use_cache=False)


def _check_texts(values: list) -> list:
    for row, text in enumerate(values):
        if not text.strip():
            raise invalid(("texts", row), "is empty.")
        if len(text) > MAX_TEXT_CHARS:
            raise invalid(("texts", row), f"has {len(text)} characters; at most {MAX_TEXT_CHARS}.")
    return list(values)


def _open_image(row: int, value: str):
    """A PIL image from a base64 PNG / JPEG (size checked from the header, before the pixels are decoded)."""
    from PIL import Image, UnidentifiedImageError

    if value.startswith("data:"):  # a data URL: data:image/png;base64,....
        value = value.partition(",")[2]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(("images", row), "is not valid base64.") from None
    try:
        image = Image.open(io.BytesIO(raw))
        if image.format not in ("PNG", "JPEG"):
            raise invalid(("images", row), f"is a {image.format} image; send PNG or JPEG.")
        width, height = image.size
        if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
            raise invalid(("images", row), f"is {width}x{height}; at most {MAX_IMAGE_SIDE} pixels a side.")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise invalid(("images", row), f"cannot be read as PNG or JPEG ({error}).") from None
    return image


class CrossModalRunEncoder:
    """The two-tower model of a cross-modal run as a :class:`~hashlearn.serve.service.QueryEncoder`.

    ``texts`` are encoded by the text tower, ``images`` by the image tower, both from the raw query
    the way the run's training inputs were made (bag-of-words over the data set's vocabulary or
    MiniLM embeddings; RGB pixels at the training size or EfficientNet-Lite0 features).

    Parameters
    ----------
    run : Run or path
        A run whose model is a :class:`~hashlearn.models.two_tower.TwoTowerHashModel`.
    index_modality : {"image", "text"} or None
        The side of the pairs the served index holds (``index build --modality``); only reported
        (``/info`` says which directions the server answers).
    """

    def __init__(self, run, index_modality: str | None = None):
        from hashlearn.runs import Run, load_run
        from hashlearn.runs.crossmodal import _check_features
        from hashlearn.runs.data import load_run_dataset

        self.run = run if isinstance(run, Run) else load_run(run)
        self.model = self.run.load_model()
        if not hasattr(self.model, "tower"):
            raise TypeError(f"run {self.run.path} holds a {type(self.model).__name__}, not a two-tower (cross-modal) model.")
        if index_modality not in (None, "image", "text"):
            raise ValueError(f"index_modality must be 'image', 'text' or None, got {index_modality!r}.")
        config = self.run.config
        self.features, self.dataset_name, self.method = config.data.features, config.data.dataset, config.method.name
        self.n_bits = int(self.model.n_bits)
        self.index_modality = index_modality
        self.image_kind, self.text_kind = _check_features(self.features)
        self.dataset = load_run_dataset(config.data)  # the vocabulary of bag-of-words texts, the training image size
        fields = []
        if self.text_kind != "raw" or (self.dataset.meta or {}).get("vocabulary") is not None:
            fields.append("texts")
        self.image_shape = None  # (C, H, W) the pixel tower takes; None: any size (EfficientNet resizes)
        if self.dataset.image_kind == "pixels" or self.image_kind != "raw":
            fields.append("images")
            if self.image_kind == "raw":
                self.image_shape = tuple(int(v) for v in self.dataset.images.shape[1:])
        self.fields = tuple(fields)
        self._lock = threading.Lock()

    def describe(self) -> dict:
        directions = {}
        if self.index_modality is not None:
            letter = "I" if self.index_modality == "image" else "T"
            directions = {field: f"{'T' if field == 'texts' else 'I'}->{letter}" for field in self.fields}
        return {"run": str(self.run.path), "method": self.method, "dataset": self.dataset_name, "features": self.features,
                "n_bits": self.n_bits, "cross_modal": True, "index_modality": self.index_modality,
                "directions": directions, "image_shape": self.image_shape, "accepts": list(self.fields)}

    def prepare(self, field: str, values: list):
        if field == "texts":
            return _check_texts(values)
        if field == "images":
            return [self._image_array(row, value) for row, value in enumerate(values)]
        raise invalid((field,), f"the served cross-modal model takes {' or '.join(self.fields)}, not {field}.")

    def _image_array(self, row: int, value: str) -> np.ndarray:
        from PIL import Image

        image = _open_image(row, value)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            background = Image.new("RGB", image.size, (255, 255, 255))  # transparent parts on white, as the renders
            background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = background
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)  # (3, H, W)
        if self.image_shape is not None and pixels.shape != self.image_shape:
            _, h, w = self.image_shape
            raise invalid(("images", row), f"is {pixels.shape[2]}x{pixels.shape[1]} pixels; the image tower was trained on "
                                           f"{w}x{h} RGB images (resize it first).")
        if self.image_shape is None and pixels.shape[0] != 3:
            raise invalid(("images", row), "must be an RGB image.")
        return pixels

    def encode(self, field: str, prepared) -> np.ndarray:
        from hashlearn.runs.crossmodal import query_inputs

        modality = "text" if field == "texts" else "image"
        if modality == "image":
            shapes = {item.shape for item in prepared}
            if len(shapes) > 1:  # EfficientNet takes any size, but one batch is one array
                return np.concatenate([self.encode(field, [item]) for item in prepared])
            prepared = np.stack(prepared)
        inputs = query_inputs(self.run, prepared, modality, dataset=self.dataset)
        with self._lock:
            return self.model.encode(inputs, modality)


def load_encoder(run_path: str | Path, index_modality: str | None = None):
    """The encoder of the run at ``run_path``: :class:`CrossModalRunEncoder` for a cross-modal run
    (``index_modality``: the side the served index holds), :class:`RunEncoder` otherwise."""
    from hashlearn.data import get_dataset_info
    from hashlearn.runs import Run, load_run

    run = run_path if isinstance(run_path, Run) else load_run(run_path)
    if get_dataset_info(run.config.data.dataset).modality == "paired":
        return CrossModalRunEncoder(run, index_modality)
    return RunEncoder(run)
