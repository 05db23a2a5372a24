"""The run directory: one layout, owned by :class:`Run`, read through typed loaders.

Every command that writes or reads a run goes through this class, so the
layout is written down once::

    config.json          the resolved RunConfig (every section validated; unknown keys are errors)
    split/               the protocol split (split.json + split.npz, checksummed)
    model/               the selected model (model.json + weights; HashModel, Classifier or a shallow estimator)
    checkpoint/          the resumable training checkpoint (deep methods)
    history.json         one row per epoch (train loss, validation metric, lr, seconds)
    train_result.json    best epoch, metric and timings of the training
    trainer_config.json  the trainer settings the last training used
    metrics.json         retrieval metrics written by ``evaluate``
    codes/               <part>_codes.npy + <part>_ids.npy (dataset row indices) written by evaluate/encode
    report.md, report.html
    attack/              <name>.json (+ <name>_adv.npy with --save-adv) written by ``attack``
    backdoor/            backdoor.json, poisoned_X.npy, poisoned_y.npy, poison_indices.npy, trigger/
    detect/              <defense>.json written by ``detect``
    privacy/             privacy.json (+ examples.npy) written by ``audit`` (reconstruction from features, outputs, codes)
    audit/               audit.json and report.html written by ``audit`` (attacks, transfer, privacy in one page)
    lifelong.json        a lifelong stage: its parent run, stage, model versions; codes/database_* are then the frozen codes

>>> import tempfile
>>> run = Run(tempfile.mkdtemp())
>>> run.is_empty(), run.config_path.name, run.codes_path("query")[0].name
(True, 'config.json', 'query_codes.npy')
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from hashlearn._io import MAX_JSON_BYTES, atomic_write_bytes, atomic_write_json, parse_json_bytes, read_bounded
from hashlearn._npy import read_npy_file
from hashlearn.errors import CorruptFileError
from hashlearn.runs.config import RunConfig

#: the parts of a split whose codes a run can keep ("all": every row of the dataset)
CODE_PARTS = ("query", "database", "train", "validation", "all")
#: the file that describes a saved model: deep models (HashModel, Classifier), shallow estimators
MODEL_FILES = ("model.json", "estimator.json")
#: the input spec of a shallow estimator (deep models keep theirs in model.json)
INPUT_SPEC = "input_spec.json"


class NotARunError(FileNotFoundError):
    """A folder given as a run holds no run (no ``config.json``)."""


class Run:
    """A run directory (``Run(path)`` touches nothing; :func:`load_run` checks it is one)."""

    CONFIG = "config.json"
    SPLIT = "split"
    MODEL = "model"
    CHECKPOINT = "checkpoint"
    HISTORY = "history.json"
    TRAIN_RESULT = "train_result.json"
    TRAINER_CONFIG = "trainer_config.json"
    METRICS = "metrics.json"
    CODES = "codes"
    REPORT_MD = "report.md"
    REPORT_HTML = "report.html"
    ATTACK = "attack"
    BACKDOOR = "backdoor"
    DETECT = "detect"
    PRIVACY = "privacy"
    AUDIT = "audit"
    LIFELONG = "lifelong.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config: RunConfig | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # --- paths -----------------------------------------------------------------------------
    config_path = property(lambda self: self.path / self.CONFIG)
    split_dir = property(lambda self: self.path / self.SPLIT)
    model_dir = property(lambda self: self.path / self.MODEL)
    checkpoint_dir = property(lambda self: self.path / self.CHECKPOINT)
    history_path = property(lambda self: self.path / self.HISTORY)
    train_result_path = property(lambda self: self.path / self.TRAIN_RESULT)
    metrics_path = property(lambda self: self.path / self.METRICS)
    codes_dir = property(lambda self: self.path / self.CODES)
    report_md_path = property(lambda self: self.path / self.REPORT_MD)
    report_html_path = property(lambda self: self.path / self.REPORT_HTML)
    attack_dir = property(lambda self: self.path / self.ATTACK)
    backdoor_dir = property(lambda self: self.path / self.BACKDOOR)
    detect_dir = property(lambda self: self.path / self.DETECT)
    privacy_dir = property(lambda self: self.path / self.PRIVACY)
    audit_dir = property(lambda self: self.path / self.AUDIT)
    lifelong_path = property(lambda self: self.path / self.LIFELONG)

    def codes_path(self, part: str, modality: str | None = None) -> tuple[Path, Path]:
        """``(codes .npy, ids .npy)`` of one part (of a cross-modal run: of one side, ``modality`` ``"image"`` or ``"text"``)."""
        if part not in CODE_PARTS:
            raise ValueError(f"part must be one of {', '.join(CODE_PARTS)}, got {part!r}.")
        if modality is not None and modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image', 'text' or None, got {modality!r}.")
        stem = part if modality is None else f"{part}_{modality}"
        return self.codes_dir / f"{stem}_codes.npy", self.codes_dir / f"{stem}_ids.npy"

    def attack_path(self, name: str) -> Path:
        return self.attack_dir / f"{name}.json"

    def detect_path(self, defense: str) -> Path:
        return self.detect_dir / f"{defense}.json"

    # --- state -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.is_file()

    def is_empty(self) -> bool:
        """True when the folder does not exist or holds nothing."""
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    def has_checkpoint(self) -> bool:
        from hashlearn.train.checkpoint import checkpoint_exists

        return checkpoint_exists(self.checkpoint_dir)

    def has_model(self) -> bool:
        return any((self.model_dir / name).is_file() for name in MODEL_FILES)

    @property
    def is_lifelong_stage(self) -> bool:
        """A stage trained by ``hashlearn lifelong``: its database codes are stored, never re-encoded."""
        return self.lifelong_path.is_file()

    def load_lifelong(self) -> dict | None:
        return _read_json(self.lifelong_path, what="lifelong stage record") if self.is_lifelong_stage else None

    @property
    def is_backdoor(self) -> bool:
        return self.config.backdoor is not None

    # --- config ----------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The run's validated config (read once)."""
        if self._config is None:
            self._config = self.load_config()
        return self._config

    def load_config(self) -> RunConfig:
        if not self.path.is_dir():
            raise NotARunError(f"run directory {self.path} does not exist (or is not a folder); train one with `hashlearn train --run-dir {self.path}`.")
        if not self.config_path.is_file():
            raise NotARunError(f"{self.path} is not a run directory (no {self.CONFIG}); train one with `hashlearn train --run-dir {self.path}`.")
        values = _read_json(self.config_path)
        try:
            return RunConfig.from_dict(values)
        except (TypeError, ValueError) as error:
            raise CorruptFileError(f"{self.config_path} holds an invalid run config: {error}") from error

    def save_config(self, config: RunConfig) -> Path:
        config.validate()
        self._config = config
        return atomic_write_json(self.config_path, config.to_dict())

    # --- split -----------------------------------------------------------------------------
    def load_split(self):
        from hashlearn.data.protocols import Split

        if not (self.split_dir / "split.json").is_file():
            raise FileNotFoundError(f"no split in run {self.path}: expected {self.split_dir / 'split.json'} (written by `hashlearn train`).")
        return Split.load(self.split_dir)

    def save_split(self, split) -> Path:
        return split.save(self.split_dir)

    # --- model -----------------------------------------------------------------------------
    def load_model(self):
        """The saved model: a HashModel, a Classifier (backdoor victims) or a shallow estimator."""
        if not self.has_model():
            hint = " (training did not finish: `hashlearn train --run-dir R --resume` continues it)" if self.has_checkpoint() else ""
            raise FileNotFoundError(f"no saved model in run {self.path}: expected {self.model_dir / 'model.json'} or estimator.json{hint}.")
        return load_model(self.model_dir)

    def save_model(self, model) -> Path:
        """Save ``model`` into ``model/``; a shallow estimator's input spec goes to ``model/input_spec.json``."""
        path = model.save(self.model_dir)
        spec = getattr(model, "input_spec", None)
        if spec is not None and not (self.model_dir / "model.json").is_file():
            atomic_write_json(self.model_dir / INPUT_SPEC, spec.to_dict())
        return path

    # --- training records ------------------------------------------------------------------
    def load_history(self) -> list[dict]:
        return _read_json(self.history_path, what="training history") if self.history_path.exists() else []

    def load_train_result(self) -> dict | None:
        return _read_json(self.train_result_path) if self.train_result_path.exists() else None

    # --- metrics and codes -----------------------------------------------------------------
    def load_metrics(self) -> dict:
        if not self.metrics_path.exists():
            raise FileNotFoundError(f"no metrics in run {self.path}; run `hashlearn evaluate --model {self.path}` first.")
        return _read_json(self.metrics_path)

    def save_metrics(self, metrics: dict) -> Path:
        return atomic_write_json(self.metrics_path, metrics)

    def save_codes(self, part: str, codes: np.ndarray, ids: np.ndarray, modality: str | None = None) -> tuple[Path, Path]:
        """Keep the packed codes of one part (of one side of a cross-modal run's pairs) and their dataset row indices."""
        from hashlearn.codes import validate_codes

        what = part if modality is None else f"{part} {modality}"
        codes = validate_codes(codes, name=f"{what} codes")
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (len(codes),):
            raise ValueError(f"ids of the {what} codes must have shape ({len(codes)},), got {ids.shape}.")
        codes_path, ids_path = self.codes_path(part, modality)
        save_npy(codes_path, codes)
        save_npy(ids_path, ids)
        return codes_path, ids_path

    def load_codes(self, part: str, modality: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, ids)`` of one part (of one side of a cross-modal run's pairs), as ``evaluate``, ``encode`` or a lifelong stage kept them."""
        codes_path, ids_path = self.codes_path(part, modality)
        if not codes_path.exists():
            what = part if modality is None else f"{part} {modality}"
            raise FileNotFoundError(f"no {what} codes in run {self.path}; run `hashlearn evaluate --model {self.path}` first.")
        codes, ids = load_npy(codes_path), load_npy(ids_path)
        if len(codes) != len(ids):
            raise CorruptFileError(f"{codes_path} holds {len(codes)} codes but {ids_path} {len(ids)} ids.")
        return codes, ids


def load_model(directory: str | Path):
    """A model folder written by ``save``: dispatches on the ``class`` its ``model.json`` names."""
    from hashlearn.models import Classifier, HashModel
    from hashlearn.models.two_tower import TwoTowerHashModel

    directory = Path(directory)
    if not (directory / "model.json").is_file() and (directory / "estimator.json").is_file():
        from hashlearn.methods import load_estimator
        from hashlearn.models.input_spec import InputSpec

        estimator = load_estimator(directory)
        estimator.input_spec = None
        if (directory / INPUT_SPEC).is_file():
            try:
                estimator.input_spec = InputSpec.from_dict(_read_json(directory / INPUT_SPEC))
            except (TypeError, ValueError) as error:
                raise CorruptFileError(f"{directory / INPUT_SPEC} holds an invalid input spec: {error}") from error
        return estimator
    if not (directory / "model.json").is_file():
        raise FileNotFoundError(f"no saved model in {directory}: expected model.json (deep model) or estimator.json (shallow estimator).")
    info = _read_json(directory / "model.json")
    name = info.get("class") if isinstance(info, dict) else None
    classes = {"HashModel": HashModel, "Classifier": Classifier, "TwoTowerHashModel": TwoTowerHashModel}
    if name in classes:
        return classes[name].load(directory)
    raise CorruptFileError(f"{directory / 'model.json'} names class {name!r}; expected one of {', '.join(classes)}.")


def load_run(path: str | Path) -> Run:
    """The run at ``path``, its config read and validated; :class:`NotARunError` if it holds none."""
    run = Run(path)
    run.config  # noqa: B018 -- reads and validates config.json now, not at first use
    return run


def _read_json(path: Path, what: str = "JSON"):
    # size-capped, regular files only, nesting bounded (hashlearn._io): CorruptFileError for content
    try:
        return parse_json_bytes(read_bounded(path, MAX_JSON_BYTES, f"{what} file"), str(path))
    except IsADirectoryError:
        raise CorruptFileError(f"{path} is a folder; expected a {what} file.") from None


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` through an atomic write (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def load_npy(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file).")
    return read_npy_file(path)  # the header is checked against the file size before allocation


__all__ = ["CODE_PARTS", "NotARunError", "Run", "load_model", "load_npy", "load_run", "save_npy"]
