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

from hashlearn._io import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_bytes, sha256_file
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
    """Read a checkpoint: ``(tensors, meta)``; ``CorruptFileError`` if the files disagree."""
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (meta_path, tensor_path):
        if not path.exists():
            raise FileNotFoundError(f"checkpoint file {path} does not exist.")
    meta = read_versioned_json(meta_path, FORMAT_VERSION)
    if sha256_file(tensor_path) != meta.get("sha256"):
        raise CorruptFileError(f"{tensor_path} does not match the checksum in {meta_path}; the checkpoint is damaged.")
    return load_file(str(tensor_path)), meta


def checkpoint_exists(directory: str | Path, name: str = "last") -> bool:
    directory = Path(directory)
    return (directory / f"{name}.json").exists() and (directory / f"{name}.safetensors").exists()


def restore_states(tensors: dict, meta: dict, *, model, objective, optimizer, scheduler) -> tuple[dict, dict]:
    """Load weights, optimizer, scheduler and RNG state; return the best model/objective states."""
    model.load_state_dict(_unprefixed("model.", tensors))
    objective.load_state_dict(_unprefixed("objective.", tensors))
    optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return _unprefixed("best_model.", tensors), _unprefixed("best_objective.", tensors)
