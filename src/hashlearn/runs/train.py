"""The train workflow: a configured method trained into a run directory, resumable, never over another run by accident."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hashlearn.runs.config import RunConfig
from hashlearn.runs.data import input_spec_for, load_run_dataset, make_run_split, run_inputs
from hashlearn.runs.run import Run


class RunExistsError(FileExistsError):
    """The run directory is not empty and neither resuming nor overwriting was asked for."""


def run_backbone(config: RunConfig, input_shape: tuple[int, ...]) -> tuple[str, dict]:
    """Backbone name and arguments: the default for the input shape, with ``config.model`` applied."""
    from hashlearn.runs.deep import default_backbone

    wanted = config.model.backbone
    if wanted == "mlp":  # an MLP on flattened images is allowed
        input_shape = (int(np.prod(input_shape)),)
    name, kwargs = default_backbone(input_shape, hidden=config.model.hidden, dropout=config.model.dropout, width=config.model.width)
    if wanted is not None and wanted != name:
        raise ValueError(f"model.backbone={wanted!r} does not fit inputs of shape {tuple(input_shape)}; use {name!r}.")
    return name, kwargs


def check_device(device: str) -> str:
    """``device`` if torch can use it here; ``ValueError`` naming it otherwise (``cuda:9`` on a CPU machine)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"trainer.device={device!r} is not a torch device ({error}); use 'cpu' or 'cuda[:N]'.") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"trainer.device={device!r}: no CUDA device is available on this machine; use 'cpu'.")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"trainer.device={device!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}).")
    elif parsed.type not in ("cpu", "mps"):
        raise ValueError(f"trainer.device={device!r}: hashlearn trains on 'cpu' or 'cuda[:N]'.")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"trainer.device={device!r}: MPS is not available on this machine; use 'cpu'.")
    return device


def prepare_run_dir(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> Run:
    """The :class:`Run` to train into, after the safety checks.

    A new or empty folder is used as is. A non-empty one is refused unless
    ``resume`` (it must be a run with a checkpoint) or ``overwrite`` (it must
    be a run; its layout entries are removed first -- a folder of other files
    is never deleted).
    """
    run = Run(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in --run-dir, overwrite replaces it.")
    if run.path.exists() and not run.path.is_dir():
        raise NotADirectoryError(f"--run-dir {run.path} is a file; expected a folder for the run.")
    if resume:
        run.config  # noqa: B018 -- NotARunError when there is no run to resume
        if not run.has_checkpoint():
            raise FileNotFoundError(f"--resume: run {run.path} has no checkpoint ({run.checkpoint_dir}); nothing to continue. "
                                    "Train it afresh with --overwrite.")
        return run
    if run.is_empty():
        return run
    if not overwrite:
        raise RunExistsError(f"--run-dir {run.path} is not empty; pass --resume to continue that run or --overwrite to replace it.")
    if not run.exists():
        raise RunExistsError(f"--overwrite: {run.path} holds files but no run ({Run.CONFIG}); refusing to delete them. Choose another --run-dir.")
    clear_run(run)
    return run


def clear_run(run: Run) -> None:
    """Remove every entry of the run layout (other files in the folder are kept)."""
    names = [value for key, value in vars(Run).items() if key.isupper() and isinstance(value, str)]
    for name in names:
        path = run.path / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    run._config = None


def train_run(config: RunConfig | None, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
              epochs: int | None = None, dataset=None):
    """Train ``config`` into ``run_dir``; returns ``(model, TrainResult or None)``.

    With ``resume`` the run's own config is used (``config`` must be ``None``;
    ``epochs`` may extend training) and training continues from its checkpoint.
    ``dataset`` skips reloading the data when the caller already holds them.
    Writes config, split, model, checkpoint and history (see :class:`Run`).
    """
    run = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        if config is not None:
            raise ValueError("resume continues the run's own config; do not pass a config (only epochs may be raised).")
        config = run.config
        if epochs is not None:
            config.trainer.epochs = epochs
            config.validate()
    elif config is None:
        raise ValueError("train_run needs a config (or resume=True to continue the run's own).")
    else:
        config.validate()
        if epochs is not None:
            config.trainer.epochs = epochs
            config.validate()
    if config.backdoor is not None:
        raise ValueError(f"{run.path} is a backdoor run; continue it with `hashlearn backdoor`, not `train`.")
    if not config.method.is_shallow:
        check_device(config.trainer.device)  # before anything is written
    dataset = dataset if dataset is not None else load_run_dataset(config.data)
    split = run.load_split() if resume else make_run_split(config, dataset)
    if getattr(dataset, "modality", None) == "paired":  # image-text pairs: a two-tower model
        from hashlearn.runs.crossmodal import train_crossmodal

        if not resume:
            run.save_split(split)
        run.save_config(config)
        return train_crossmodal(run, config, dataset, split, resume)
    X_train = run_inputs(dataset, split.train, config.data.features)
    spec = input_spec_for(config, dataset, X_train)
    if not resume:  # only once the data are known to fit the method
        run.save_split(split)
    run.save_config(config)
    if config.method.is_shallow:
        return _train_shallow(run, config, X_train, spec), None
    return _train_deep(run, config, dataset, split, X_train, resume, spec)


def _train_shallow(run: Run, config: RunConfig, X_train: np.ndarray, spec):
    from hashlearn.methods import build_shallow

    estimator = build_shallow(config.method.name, n_bits=config.method.n_bits, random_state=config.trainer.seed)
    estimator.fit(X_train.reshape(len(X_train), -1))
    estimator.input_spec = spec
    run.save_model(estimator)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return estimator


def _train_deep(run: Run, config: RunConfig, dataset, split, X_train: np.ndarray, resume: bool, spec):
    from hashlearn.losses import loss_spec
    from hashlearn.runs.deep import build_deep_method
    from hashlearn.train.trainer import Trainer

    X_val = run_inputs(dataset, split.validation, config.data.features)
    if loss_spec(config.method.name).supervised:
        if dataset.labels is None:
            raise ValueError(f"dataset {dataset.name!r} is unlabelled: use method 'unsupervised'.")
        y_train, y_val = dataset.labels[split.train], dataset.labels[split.validation]
    else:  # unsupervised: the inputs themselves are the targets
        y_train, y_val = X_train.reshape(len(X_train), -1), X_val.reshape(len(X_val), -1)
    backbone, backbone_kwargs = run_backbone(config, X_train.shape[1:])
    model, objective = build_deep_method(
        config.method.name, config.method.n_bits, dataset.n_classes, X_train.shape[1:],
        backbone=backbone, backbone_kwargs=backbone_kwargs, quantization_weight=config.method.quantization_weight,
        seed=config.trainer.seed, quantizer_kwargs=quantizer_arguments(config), **config.method.loss,
    )
    model.input_spec = spec
    result = Trainer(config.trainer).fit(model, objective, train=(X_train, y_train), val=(X_val, y_val), run_dir=run.path, resume=resume)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return model, result


def quantizer_arguments(config: RunConfig) -> dict | None:
    """``config.method.quantizer[<q>]`` for a ``loss+<q>`` method (``None`` without a quantizer)."""
    from hashlearn.losses import parse_method_name

    quantizer = parse_method_name(config.method.name)[1]
    return dict(config.method.quantizer.get(quantizer, {})) if quantizer else None


__all__ = ["RunExistsError", "quantizer_arguments", "check_device", "clear_run", "prepare_run_dir", "run_backbone", "train_run"]
