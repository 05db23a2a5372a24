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

from hashlearn._io import (
    atomic_write_bytes,
    atomic_write_json,
    is_int,
    read_safetensors_header,
    read_versioned_json,
    sha256_bytes,
    sha256_file,
)
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
        """Rebuild a model written by :meth:`save`; typed errors for missing, damaged or foreign files.

        Untrusted bytes are checked in order before anything is allocated: ``model.json``
        (size cap, types), the safetensors header (sizes against the file size, the
        tensors tiling the file exactly), the network's parameter shapes worked out
        without memory (on torch's ``meta`` device) against the header, the checksum;
        only then are the weights read and the network built. So a model never takes more
        memory than its weights file justifies. Every problem with the content is a
        :class:`~hashlearn.errors.CorruptFileError`.
        """
        from safetensors.torch import load_file

        name = cls.__name__
        directory = Path(directory)
        config_path, weights_path = directory / "model.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                if path is weights_path:  # a damaged config is reported before a missing weights file
                    read_versioned_json(config_path, FORMAT_VERSION)
                raise FileNotFoundError(f"no {path.name} in {directory}; expected a folder written by {name}.save.")
        config = read_versioned_json(config_path, FORMAT_VERSION)
        arguments = cls._config_arguments(config, config_path)
        tensors = read_safetensors_header(weights_path)
        expected = cls._expected_tensors(arguments, len(tensors), config_path)
        if expected != tensors:
            raise CorruptFileError(
                f"weights in {weights_path} do not fit the model described in {config_path}: {_difference(expected, tensors)}"
            )
        if "sha256" in config and sha256_file(weights_path) != config["sha256"]:  # streamed: no copy of the file
            raise CorruptFileError(f"{weights_path} does not match the checksum in {config_path}: the file was changed or truncated.")
        try:
            state = load_file(str(weights_path))  # the file's size equals its tensors' total: this allocates that
        except Exception as error:  # safetensors raises its own error types
            raise CorruptFileError(f"cannot read weights {weights_path}: {error}") from error
        try:
            model = _with_weights(cls, arguments, state)
        except RuntimeError as error:  # unreachable after the checks above; kept as a typed error
            raise CorruptFileError(f"weights in {weights_path} do not fit the model described in {config_path}: {error}") from error
        if config.get("input_spec") is not None:
            from hashlearn.models.input_spec import InputSpec

            try:
                model.input_spec = InputSpec.from_dict(config["input_spec"])
            except (TypeError, ValueError) as error:
                raise CorruptFileError(f"{config_path} holds an invalid input_spec: {error}") from error
        model.eval()
        return model

    @classmethod
    def _config_arguments(cls, config: dict, config_path: Path) -> tuple:
        """``(backbone, size, backbone_kwargs)`` from ``model.json``, type-checked."""
        name = cls.__name__
        if config.get("class") != name:
            raise CorruptFileError(f"{config_path} does not describe a {name} (class={config.get('class')!r:.80}).")
        missing = [key for key in ("backbone", cls.size_key) if key not in config]
        if missing:
            raise CorruptFileError(f"{config_path} lacks the key(s) {missing}.")
        backbone, size, kwargs = config["backbone"], config[cls.size_key], config.get("backbone_kwargs")
        if not isinstance(backbone, str) or not is_int(size) or not isinstance(kwargs, (dict, type(None))):
            raise CorruptFileError(
                f"{config_path} holds an invalid model configuration: backbone must be a string, {cls.size_key} an integer "
                f"and backbone_kwargs an object, got {type(backbone).__name__}, {type(size).__name__}, {type(kwargs).__name__}."
            )
        if "sha256" in config and not isinstance(config["sha256"], str):
            raise CorruptFileError(f"{config_path} holds an invalid model configuration: sha256 must be a string.")
        return backbone, size, kwargs

    @classmethod
    def _expected_tensors(cls, arguments: tuple, n_tensors: int, config_path: Path) -> dict:
        """``{name: (dtype, shape)}`` the configured network holds, worked out on the ``meta``
        device (no memory); the configuration's size is capped by the weights' tensor count."""
        kwargs = arguments[2] or {}
        n_values = sum(len(v) if isinstance(v, (list, dict, str)) else 1 for v in kwargs.values())
        if n_values > 4 * n_tensors + 64:  # e.g. hidden=[1] * 10**6: a million layers, no weights for them
            raise CorruptFileError(f"{config_path} holds an invalid model configuration: backbone_kwargs has {n_values} values "
                                   f"for a weights file of {n_tensors} tensors.")
        try:
            with torch.device("meta"):
                skeleton = cls(*arguments)
            return {key: (_SAFETENSORS_DTYPES.get(value.dtype, str(value.dtype)), tuple(value.shape))
                    for key, value in skeleton.state_dict().items()}
        except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError, AttributeError, KeyError, IndexError) as error:
            raise CorruptFileError(f"{config_path} holds an invalid model configuration: {type(error).__name__}: {error}"[:2000]) from error


def _with_weights(cls, arguments: tuple, state: dict) -> nn.Module:
    """``cls(*arguments)`` holding the tensors of ``state`` themselves: built on the ``meta``
    device and assigned the loaded weights, so a load costs the weights once, not twice.
    A model that keeps tensors outside its state dict (left on ``meta``) is built for real
    and the weights copied in."""
    with torch.device("meta"):
        model = cls(*arguments)
    model.load_state_dict(state, assign=True)
    if any(isinstance(value, torch.Tensor) and value.is_meta
           for module in model.modules()
           for value in [*vars(module).values(), *module._parameters.values(), *module._buffers.values()]):
        model = cls(*arguments)
        model.load_state_dict(state)
    return model


#: torch dtype -> safetensors dtype name
_SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
                       torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def _difference(expected: dict, found: dict) -> str:
    """The first few differences between two ``{name: (dtype, shape)}`` tables, for the message."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    changed = [f"{key}: {found[key]} instead of {expected[key]}" for key in sorted(set(expected) & set(found)) if expected[key] != found[key]]
    parts = ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {unexpected[:5]}"] if unexpected else []) + changed[:5]
    return "; ".join(parts)
