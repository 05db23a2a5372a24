"""The configuration of a run: one dataclass of defaults per section, every section validated.

A run is described by a :class:`RunConfig` with the sections ``data``,
``model``, ``method`` and ``trainer`` (and ``backdoor`` for a backdoor run).
Defaults come in layers: the dataclass defaults, then the registered loss's
training defaults (``trainer.lr``, ``trainer.epochs``, ``method.loss``; see
:data:`hashlearn.losses.LOSSES`), then a ``base`` mapping, a ``.json`` /
``.toml`` file and ``section.key=value`` overrides. A key that does not exist
is an error that lists the valid ones; a value out of range is an error that
names the key.

>>> config = resolve_config(overrides=["trainer.lr=0.01", "model.hidden=[256, 128]"])
>>> config.trainer.lr, config.model.hidden
(0.01, [256, 128])
>>> resolve_config(overrides=["model.hidden=[-1]"])
Traceback (most recent call last):
...
ValueError: model.hidden must be a list of integers >= 1 (layer widths), got [-1].
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hashlearn.train.config import TrainConfig, _set_path, apply_mapping, load_config_file, parse_override

#: ``data.features`` -> frozen encoder name (``"pixels"``: the raw data)
FEATURE_ENCODERS = {"efficientnet": "efficientnet-lite0", "minilm": "minilm"}
FEATURES = ("pixels", *FEATURE_ENCODERS, "efficientnet+minilm")  # the last: both towers of a paired (image-text) run
BACKBONES = (None, "mlp", "small_cnn")
#: the longest codes a run trains: what the indexes take (hashlearn.index.base.MAX_BITS), so every
#: trained code length can be encoded, indexed and evaluated; longer codes are refused before training
MAX_BITS = 1024
#: kept literal so that reading a config does not import torch (a test checks them against the registries)
BACKDOOR_ATTACKS = ("badnets", "blended", "lira", "wanet", "wb")
BACKDOOR_MAPPINGS = ("all-to-one", "all-to-all")
BACKDOOR_VICTIMS = ("classifier", "hash")
#: method.name of a backdoor run whose victim is a classifier (cross-entropy, no codes)
CLASSIFIER = "classifier"


def _check_optional_int(value, name: str, minimum: int = 1) -> None:
    from hashlearn._validation import check_positive_int

    check_positive_int(value, name, allow_none=True, minimum=minimum)


def _check_number(value, name: str, *, low: float | None = None, high: float | None = None, low_open=False, high_open=False,
                  allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}, got {value!r}.")


def _check_string(value, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string, got {type(value).__name__} {value!r}.")


@dataclass
class DataConfig:
    """Which data, which input representation and which split.

    ``features``: ``"pixels"`` (raw images / vectors), ``"efficientnet"``
    (frozen EfficientNet-Lite0 features, 1280-d) or ``"minilm"`` (frozen
    all-MiniLM-L6-v2 sentence embeddings, 384-d). ``n_train`` ... sub-sample
    the protocol's parts (seeded); ``data_dir`` is passed to loaders that read a folder.
    """

    dataset: str = "digits"
    features: str = "pixels"
    protocol: str = "default"
    seed: int = 0
    n_train: int | None = None
    n_query: int | None = None
    n_database: int | None = None
    n_val: int | None = None
    data_dir: str | None = None

    def validate(self) -> "DataConfig":
        _check_string(self.dataset, "data.dataset")
        _check_string(self.protocol, "data.protocol")
        if self.features not in FEATURES:
            raise ValueError(f"data.features must be one of {', '.join(FEATURES)}, got {self.features!r}.")
        _check_optional_int(self.seed, "data.seed", minimum=0)
        for name in ("n_train", "n_query", "n_database", "n_val"):
            _check_optional_int(getattr(self, name), f"data.{name}", minimum=2 if name == "n_train" else 1)
        if self.data_dir is not None:
            _check_string(self.data_dir, "data.data_dir")
        return self


@dataclass
class ModelConfig:
    """Backbone choice; ``None`` picks the default for the input shape (small CNN for images, MLP for vectors)."""

    backbone: str | None = None
    hidden: list[int] | None = None
    dropout: float = 0.0
    width: int | None = None

    def validate(self) -> "ModelConfig":
        if self.backbone not in BACKBONES:
            raise ValueError(f"model.backbone must be null, 'mlp' or 'small_cnn', got {self.backbone!r}.")
        if self.hidden is not None:
            if not isinstance(self.hidden, (list, tuple)) or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in self.hidden
            ):
                raise ValueError(f"model.hidden must be a list of integers >= 1 (layer widths), got {self.hidden!r}.")
            self.hidden = [int(v) for v in self.hidden]
        _check_number(self.dropout, "model.dropout", low=0.0, high=1.0, high_open=True)
        _check_optional_int(self.width, "model.width")
        return self


@dataclass
class MethodConfig:
    """The method: a deep ``loss[+quantizer]`` (``"dsdh"``, ``"dsdh+hswd"``) or a shallow
    estimator (``"itq"``, ``"lsh"``, ``"sign"``, ``"pcah"``, ``"sh"``), its code length and loss arguments."""

    name: str = "csq"  # = hashlearn.losses.DEFAULT_METHOD (literal: reading a config imports no torch; a test checks it)
    n_bits: int = 32
    quantization_weight: float | None = None
    loss: dict = field(default_factory=dict)
    #: quantizer arguments by quantizer name, e.g. {"swd": {"n_projections": 256}}; used by "loss+<name>" methods
    quantizer: dict = field(default_factory=dict)

    @property
    def is_shallow(self) -> bool:
        from hashlearn.methods import SHALLOW_METHODS

        return self.name in SHALLOW_METHODS

    def validate(self, *, classifier: bool = False) -> "MethodConfig":
        """``classifier``: the run trains a classifier (a backdoor victim), named ``"classifier"``."""
        from hashlearn._validation import check_n_bits

        _check_string(self.name, "method.name")
        self.name = self.name.strip().lower()
        if classifier or self.name == CLASSIFIER:
            if not classifier or self.name != CLASSIFIER:
                raise ValueError(f"method.name {self.name!r}: only a backdoor run with victim 'classifier' uses method.name 'classifier'.")
        elif not self.is_shallow:
            from hashlearn.losses import parse_method_name

            try:
                parse_method_name(self.name)
            except ValueError as error:
                from hashlearn.methods import SHALLOW_METHODS

                raise ValueError(f"method.name: {error} Shallow methods: {', '.join(SHALLOW_METHODS)}.") from None
        elif self.loss or self.quantization_weight is not None:
            raise ValueError(f"method.loss and method.quantization_weight apply to deep methods; {self.name!r} is shallow.")
        check_n_bits(self.n_bits, "method.n_bits", maximum=MAX_BITS)
        _check_number(self.quantization_weight, "method.quantization_weight", low=0.0, allow_none=True)
        if not isinstance(self.loss, dict):
            raise TypeError(f"method.loss must be a mapping of loss arguments, got {self.loss!r}.")
        if not isinstance(self.quantizer, dict) or not all(isinstance(v, dict) for v in self.quantizer.values()):
            raise TypeError(f"method.quantizer must map quantizer names to argument mappings, e.g. {{'swd': {{'n_projections': 256}}}}, got {self.quantizer!r}.")
        return self


@dataclass
class BackdoorConfig:
    """A backdoor run: the attack, the poisoning rate and target, the victim (see ``hashlearn backdoor``)."""

    attack: str = "badnets"
    victim: str = "classifier"
    rate: float = 0.1
    target: str = "all-to-one"
    target_class: int = 0
    eps: float = 0.05
    stage1_epochs: int = 4
    #: WaNet: warp strength s, control-grid size k, noise-mode samples per poisoned sample
    strength: float = 0.5
    grid_size: int = 4
    cross_ratio: float = 2.0

    def validate(self) -> "BackdoorConfig":
        for name, choices in (("attack", BACKDOOR_ATTACKS), ("victim", BACKDOOR_VICTIMS), ("target", BACKDOOR_MAPPINGS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"backdoor.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}.")
        _check_number(self.rate, "backdoor.rate", low=0.0, high=1.0, low_open=True)
        _check_number(self.eps, "backdoor.eps", low=0.0, high=1.0, low_open=True)
        _check_optional_int(self.target_class, "backdoor.target_class", minimum=0)
        _check_optional_int(self.stage1_epochs, "backdoor.stage1_epochs")
        _check_number(self.strength, "backdoor.strength", low=0.0)
        _check_optional_int(self.grid_size, "backdoor.grid_size", minimum=2)
        _check_number(self.cross_ratio, "backdoor.cross_ratio", low=0.0)
        return self


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    trainer: TrainConfig = field(default_factory=TrainConfig)
    #: only in backdoor runs
    backdoor: BackdoorConfig | None = None

    def validate(self) -> "RunConfig":
        for section in (self.data, self.model, self.trainer, self.backdoor):
            if section is not None:
                section.validate()
        self.method.validate(classifier=self.backdoor is not None and self.backdoor.victim == CLASSIFIER)
        return self

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.backdoor is None:
            del values["backdoor"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """A validated config from a mapping (e.g. a run's ``config.json``); unknown keys are errors."""
        config = cls()
        _apply(config, values)
        return config.validate()


def _apply(config: RunConfig, values: dict) -> None:
    if isinstance(values, dict) and "backdoor" in values and config.backdoor is None:
        config.backdoor = BackdoorConfig()
    apply_mapping(config, values)


def method_defaults(method_name: str, features: str = "pixels") -> dict:
    """The registered training defaults of a deep method for inputs of kind ``features``, as a config
    layer (``{}`` for shallow ones): lr, epochs, loss arguments and, for ``loss+quantizer``, the weight."""
    from hashlearn.losses import LOSSES, parse_method_name, training_defaults

    try:
        loss_name, quantizer_name = parse_method_name(method_name)
    except (TypeError, ValueError):
        return {}  # shallow or unknown: validation reports an unknown name
    defaults = training_defaults(method_name, features if isinstance(features, str) else "pixels")
    layer = {"trainer": {"lr": defaults["lr"], "epochs": defaults["epochs"]}, "method": {"loss": dict(LOSSES[loss_name].loss_kwargs)}}
    if quantizer_name not in (None, "none"):
        layer["method"]["quantization_weight"] = defaults["quantization_weight"]
    return layer


def resolve_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base: dict | None = None,
                   preset: str | None = None) -> RunConfig:
    """Defaults, the method's registered defaults (for the run's input kind), the ``preset``
    (``hashlearn.runs.presets``), then ``base``, the file at ``path`` and ``overrides``; validated."""
    from hashlearn.runs.presets import preset_layer

    layers = [values for values in (preset_layer(preset), base, load_config_file(path) if path else None) if values]
    parsed = [parse_override(text) for text in overrides]

    def build(first: dict | None) -> RunConfig:
        config = RunConfig()
        for values in ([first] if first else []) + layers:
            _apply(config, values)
        for keys, value in parsed:
            if keys[0] == "backdoor" and config.backdoor is None:
                config.backdoor = BackdoorConfig()
            _set_path(config, keys, value)
        return config

    config = build(None)
    if isinstance(config.method.name, str):
        config = build(method_defaults(config.method.name, config.data.features))
    return config.validate()


__all__ = ["BackdoorConfig", "DataConfig", "FEATURE_ENCODERS", "MAX_BITS", "MethodConfig", "ModelConfig", "RunConfig", "method_defaults", "resolve_config"]
