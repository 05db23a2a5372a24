"""Resumable training checkpoints without pickle.

A checkpoint is two files written atomically:

* ``<name>.safetensors``: every tensor -- model and objective weights (current
  and best), optimizer state tensors, the torch RNG state;
* ``<name>.json``: everything else -- epoch, best epoch and metric, history,
  the trainer config, optimizer hyper-parameters, scheduler state, and the
  SHA-256 of the tensor file (a truncated or swapped file is detected).
"""

from __future__ import annotations

from pathlib import Path

import torch

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

FORMAT_VERSION = 1


def _prefixed(prefix: str, state: dict) -> dict:
    # cloned: safetensors refuses tensors that share memory (tied weights, best == current)
    return {f"{prefix}{key}": value.detach().cpu().clone().contiguous() for key, value in state.items()}


def _unprefixed(prefix: str, tensors: dict) -> dict:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` into tensors and JSON-able values."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, param_state in state["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param_id}.{name}"] = value.detach().cpu().contiguous()
            elif value is not None:
                scalars[f"{param_id}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict, meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_tensors`: a state dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for key, value in _unprefixed("optim.", tensors).items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    for key, value in meta["scalars"].items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: str | Path, *, model, objective, optimizer, scheduler, best_model_state, best_objective_state, meta: dict, name: str = "last") -> Path:
    """Write a resumable checkpoint ``<directory>/<name>.{safetensors,json}``."""
    from safetensors.torch import save

    tensors = {
        **_prefixed("model.", model.state_dict()),
        **_prefixed("objective.", objective.state_dict()),
        **_prefixed("best_model.", best_model_state),
        **_prefixed("best_objective.", best_objective_state),
        "rng.torch": torch.get_rng_state(),
    }
    optim_tensors, optim_meta = optimizer_to_tensors(optimizer)
    tensors.update(optim_tensors)
    payload = save(tensors)
    directory = Path(directory)
    atomic_write_bytes(directory / f"{name}.safetensors", payload)
    record = {
        "format_version": FORMAT_VERSION,
        **meta,
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "sha256": sha256_bytes(payload),
    }
    atomic_write_json(directory / f"{name}.json", record)
    return directory / f"{name}.json"


def load_checkpoint(directory: str | Path, name: str = "last") -> tuple[dict, dict]:
    """Read a checkpoint: ``(tensors, meta)``; ``CorruptFileError`` if the files disagree.

    Checked in order before any tensor is read: the JSON (size cap, the fields a resume
    uses and their types), the safetensors header (sizes against the file size), the
    checksum. Every problem with the content is a :class:`CorruptFileError`.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (meta_path, tensor_path):
        if not path.exists():
            raise FileNotFoundError(f"checkpoint file {path} does not exist.")
    meta = read_versioned_json(meta_path, FORMAT_VERSION)
    _check_meta(meta, meta_path)
    header = read_safetensors_header(tensor_path, "checkpoint tensors")
    if header.get("rng.torch", (None, None))[0] != "U8":
        raise CorruptFileError(f"{tensor_path} is corrupt: it lacks the uint8 tensor 'rng.torch' (the RNG state).")
    if sha256_file(tensor_path) != meta["sha256"]:  # streamed: no copy of the file
        raise CorruptFileError(f"{tensor_path} does not match the checksum in {meta_path}; the checkpoint is damaged.")
    try:
        return load_file(str(tensor_path)), meta  # the file's size equals its tensors' total: this allocates that
    except Exception as error:  # safetensors raises its own error types
        raise CorruptFileError(f"cannot read checkpoint tensors {tensor_path}: {error}") from error


def _check_meta(meta: dict, path: Path) -> None:
    """The fields :func:`restore_states` and a resume read, with their types."""
    def bad(what: str):
        return CorruptFileError(f"{path} is corrupt: {what}.")

    if not isinstance(meta.get("sha256"), str):
        raise bad("'sha256' (the tensor file's checksum) is missing or not a string")
    optimizer = meta.get("optimizer")
    if not isinstance(optimizer, dict):
        raise bad("'optimizer' (the optimizer's hyper-parameters) is missing or not an object")
    groups, scalars = optimizer.get("param_groups"), optimizer.get("scalars")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise bad("'optimizer.param_groups' must be a list of objects with a 'params' list")
    if not isinstance(scalars, dict) or not all(_param_key_ok(key) for key in scalars):
        raise bad("'optimizer.scalars' must map '<param id>.<name>' to values")
    if meta.get("scheduler") is not None and not isinstance(meta["scheduler"], dict):
        raise bad("'scheduler' must be an object or null")
    state = meta.get("state", {})
    if not isinstance(state, dict):
        raise bad("'state' must be an object")
    for key in ("epoch", "best_epoch", "bad_epochs"):
        if key in state and not (is_int(state[key]) and state[key] >= 0):
            raise bad(f"'state.{key}' must be a non-negative integer, got {state[key]!r:.40}")
    for key in ("best_metric", "elapsed", "seconds_to_best"):
        if key in state and (isinstance(state[key], bool) or not isinstance(state[key], (int, float))):
            raise bad(f"'state.{key}' must be a number, got {state[key]!r:.40}")
    if "history" in state and not isinstance(state["history"], list):
        raise bad("'state.history' must be a list")


def _param_key_ok(key: str) -> bool:
    param_id, dot, name = key.partition(".")
    return bool(dot) and param_id.isdigit() and param_id.isascii() and len(param_id) < 10 and bool(name)


def checkpoint_exists(directory: str | Path, name: str = "last") -> bool:
    directory = Path(directory)
    return (directory / f"{name}.json").exists() and (directory / f"{name}.safetensors").exists()


def restore_states(tensors: dict, meta: dict, *, model, objective, optimizer, scheduler) -> tuple[dict, dict]:
    """Load weights, optimizer, scheduler and RNG state; return the best model/objective states.

    A checkpoint that does not fit the model, objective or optimizer it is restored into
    (another architecture, a hand-edited file) raises :class:`CorruptFileError`.
    """
    try:
        model.load_state_dict(_unprefixed("model.", tensors))
        objective.load_state_dict(_unprefixed("objective.", tensors))
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
        if scheduler is not None and meta.get("scheduler") is not None:
            scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        best_model, best_objective = _unprefixed("best_model.", tensors), _unprefixed("best_objective.", tensors)
        for kind, module, state in (("best model", model, best_model), ("best objective", objective, best_objective)):
            expected = {key: value.shape for key, value in module.state_dict().items()}
            if {key: value.shape for key, value in state.items()} != expected:
                raise ValueError(f"the {kind} state does not match the {kind.split()[1]}'s parameters")
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise CorruptFileError(f"the checkpoint does not fit this model, objective and optimizer: {type(error).__name__}: {error}"[:2000]) from error
    return best_model, best_objective
