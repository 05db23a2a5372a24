"""The trainer's configuration, and the machinery every config uses: JSON/TOML files, dotted overrides.

:class:`TrainConfig` holds the defaults of the one trainer. A run's full
configuration (data, model, method, trainer) is :class:`hashlearn.runs.RunConfig`,
built with the helpers here: a file (``.json`` or ``.toml``) and ``section.key=value``
overrides applied on top of dataclass defaults, where a key that does not
exist is an error that lists the valid ones (a typo never silently does nothing).

>>> config = TrainConfig()
>>> apply_mapping(config, {"lr": 0.01})
>>> config.lr
0.01
>>> apply_mapping(config, {"learning_rate": 0.1}, ("trainer",))
Traceback (most recent call last):
...
ValueError: unknown config key 'trainer.learning_rate'; valid keys of 'trainer' are: batch_size, device, epochs, gamma, grad_clip, log_every, lr, momentum, optimizer, patience, scheduler, seed, step_size, val_batch_size, val_k, weight_decay
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step")


@dataclass
class TrainConfig:
    """Settings of the one :class:`~hashlearn.train.Trainer`.

    ``patience`` is the number of epochs without a better validation metric
    after which training stops (``None``: never stop early). ``scheduler`` is
    ``None``/``"none"``, ``"cosine"`` (to zero over ``epochs``) or ``"step"``
    (multiply the rate by ``gamma`` every ``step_size`` epochs). ``val_k`` is
    the cut-off of the default validation metric, mAP@``val_k``.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str | None = None
    step_size: int = 10
    gamma: float = 0.1
    seed: int = 0
    patience: int | None = None
    device: str = "cpu"
    val_k: int = 1000
    val_batch_size: int = 1024
    grad_clip: float | None = None
    log_every: int = 1

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Check every field; ``ValueError``/``TypeError`` naming the field otherwise."""
        from hashlearn._validation import check_positive_int

        check_positive_int(self.epochs, "trainer.epochs")
        check_positive_int(self.batch_size, "trainer.batch_size")
        check_positive_int(self.step_size, "trainer.step_size")
        check_positive_int(self.val_k, "trainer.val_k")
        check_positive_int(self.val_batch_size, "trainer.val_batch_size")
        check_positive_int(self.log_every, "trainer.log_every")
        check_positive_int(self.seed, "trainer.seed", minimum=0)
        check_positive_int(self.patience, "trainer.patience", allow_none=True)
        for name in ("lr", "weight_decay", "momentum", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"trainer.{name} must be a number >= 0, got {value!r}.")
        if self.lr == 0:
            raise ValueError("trainer.lr must be > 0, got 0.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"trainer.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if (self.scheduler or "none") not in SCHEDULERS:
            raise ValueError(f"trainer.scheduler must be None or one of {SCHEDULERS}, got {self.scheduler!r}.")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"trainer.grad_clip must be None or a number > 0, got {self.grad_clip!r}.")
        if not isinstance(self.device, str):
            raise TypeError(f"trainer.device must be a string such as 'cpu' or 'cuda', got {self.device!r}.")
        return self


def config_keys(section) -> list[str]:
    return sorted(f.name for f in fields(section))


def load_config_file(path: str | Path) -> dict:
    """Read a ``.json`` or ``.toml`` config file into a nested dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from error
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config file {path} is not valid JSON: {error}") from error
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a JSON object, got {type(values).__name__}.")
        return values
    raise ValueError(f"config file must end in .json or .toml, got {path.name!r}.")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.lr=0.001"`` -> ``(["trainer", "lr"], 0.001)``; values are JSON, else strings."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"an override must look like section.key=value, got {text!r}.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"an override must look like section.key=value, got {text!r}.")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = {"none": None, "null": None, "true": True, "false": False}.get(raw.strip().lower(), raw)
    return key.split("."), value


def apply_mapping(target, values: dict, walked: tuple[str, ...] = ()) -> None:
    """Set nested ``values`` on the dataclass ``target``; unknown keys raise ``ValueError``."""
    if not isinstance(values, dict):
        name = ".".join(walked) or "the config"
        raise ValueError(f"config section '{name}' must be a mapping, got {values!r}.")
    for key, value in values.items():
        _set_path(target, [key], value, walked)


def _set_path(node, path: list[str], value, walked: tuple[str, ...] = ()) -> None:
    """Set ``node.<path> = value``; a nested dataclass takes a mapping key by key."""
    name, rest = path[0], path[1:]
    dotted = ".".join([*walked, name])
    if isinstance(node, dict):  # free-form dictionaries (e.g. method.loss) accept any key
        if rest:
            _set_path(node.setdefault(name, {}), rest, value, (*walked, name))
        else:
            node[name] = value
        return
    if not dataclasses.is_dataclass(node):
        raise ValueError(f"unknown config key '{dotted}': '{'.'.join(walked)}' is a value, not a section.")
    valid = config_keys(node)
    if name not in valid:
        where = f"'{'.'.join(walked)}'" if walked else "the config"
        raise ValueError(f"unknown config key '{dotted}'; valid keys of {where} are: {', '.join(valid)}")
    current = getattr(node, name)
    if rest:
        _set_path(current, rest, value, (*walked, name))
    elif dataclasses.is_dataclass(current):
        apply_mapping(current, value, (*walked, name))
    elif isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    else:
        setattr(node, name, value)
