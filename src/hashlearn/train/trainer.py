"""The one training loop behind every deep hashing method, attack defence and benchmark.

>>> import numpy as np, torch
>>> from hashlearn.models import HashModel
>>> X = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
>>> y = np.arange(64) % 2
>>> class Pull(torch.nn.Module):  # toy objective: same label -> same code
...     def forward(self, outputs, labels):
...         same = (labels[:, None] == labels[None, :]).float()
...         return ((outputs @ outputs.T / outputs.shape[1] - (2 * same - 1)) ** 2).mean()
>>> torch.manual_seed(0) and None
>>> model = HashModel("mlp", 8, {"in_features": 8, "hidden": [16]})
>>> result = Trainer(TrainConfig(epochs=2, batch_size=32)).fit(model, Pull(), train=(X, y), val=(X[:16], y[:16]))
>>> result.best_epoch in (1, 2), len(result.history)
(True, 2)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hashlearn._io import atomic_write_json
from hashlearn._progress import progress
from hashlearn._validation import check_labels
from hashlearn.train.checkpoint import checkpoint_exists, load_checkpoint, restore_states, save_checkpoint
from hashlearn.train.config import TrainConfig
from hashlearn.train.validation import default_val_metric


@dataclass
class TrainResult:
    """What a :meth:`Trainer.fit` call measured.

    ``history`` holds one dict per epoch (``epoch``, ``train_loss``,
    ``val_metric``, ``lr``, ``seconds``, ``cpu_seconds``); ``seconds_per_epoch``
    is the median wall time of an epoch's training (validation excluded),
    ``cpu_seconds_per_epoch`` the same in process CPU time (robust when other
    jobs share the cores); ``seconds_to_best`` the wall time from the start of
    training to the end of the best epoch.
    """

    best_epoch: int
    best_metric: float
    history: list[dict] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    seconds_to_best: float = 0.0
    stopped_early: bool = False
    cpu_seconds_per_epoch: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _input_tensor(X, name: str) -> torch.Tensor:
    X = X.detach().cpu() if torch.is_tensor(X) else torch.from_numpy(np.ascontiguousarray(X))
    if not (X.is_floating_point() or X.dtype in (torch.uint8, torch.int64, torch.int32)):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}.")
    X = X.float()
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"{name} must have shape (n_samples, ...) with n_samples >= 1, got {tuple(X.shape)}.")
    return X


def as_tensors(data, name: str) -> tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(X, y)`` as float32 inputs and targets.

    ``X`` is one array, or -- for a cross-modal (two-tower) model -- a pair
    ``(X_image, X_text)`` with one row per image-text pair. ``y`` is int64
    class ids ``(n,)``, float32 multi-hot ``(n, C)``, or -- for unsupervised
    objectives -- float32 feature vectors ``(n, d)`` (any 2-D float array that is not 0/1).
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (X, y), got {type(data).__name__}.")
    X, y = data
    if isinstance(X, (tuple, list)):  # paired inputs of a two-tower model
        if len(X) != 2:
            raise ValueError(f"{name}[0] must be one input array or a pair (X_image, X_text), got {len(X)} arrays.")
        X = (_input_tensor(X[0], f"{name}[0][0] (X_image)"), _input_tensor(X[1], f"{name}[0][1] (X_text)"))
        if len(X[0]) != len(X[1]):
            raise ValueError(f"{name}[0] pairs {len(X[0])} images with {len(X[1])} texts; one row per pair is needed.")
        n_items = len(X[0])
    else:
        X = _input_tensor(X, f"{name}[0] (X)")
        n_items = len(X)
    y_array = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if y_array.ndim == 2 and np.issubdtype(y_array.dtype, np.floating) and not np.isin(y_array, (0, 1)).all():
        if len(y_array) != n_items:
            raise ValueError(f"{name}[1] (y) has {len(y_array)} rows but X has {n_items}; they must match.")
        if not np.isfinite(y_array).all():
            raise ValueError(f"{name}[1] (y) feature targets contain NaN or infinite values.")
        return X, torch.from_numpy(np.ascontiguousarray(y_array, dtype=np.float32))
    labels = check_labels(y_array, f"{name}[1] (y)", n_samples=n_items)
    return X, torch.from_numpy(labels.astype(np.float32) if labels.ndim == 2 else labels)


def n_rows(X) -> int:
    """Number of items of one input tensor or of a pair of them."""
    return len(X[0]) if isinstance(X, tuple) else len(X)


def take_rows(X, index, device):
    """Rows ``index`` of one input tensor, or of both halves of a pair, on ``device``."""
    if isinstance(X, tuple):
        return tuple(part[index].to(device) for part in X)
    return X[index].to(device)


def is_feature_target(y: torch.Tensor) -> bool:
    """True for float feature targets (unsupervised objectives), False for class labels."""
    return y.ndim == 2 and bool(((y != 0) & (y != 1)).any())


def build_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, optimizer):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return None


def _state_copy(module: nn.Module) -> dict:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


class Trainer:
    """Fits a model to an objective with early stopping and checkpoint selection on validation.

    Parameters
    ----------
    config : TrainConfig
        Optimizer, schedule, seed, patience, device ... (see :class:`TrainConfig`).
    """

    def __init__(self, config: TrainConfig | None = None):
        self.config = TrainConfig() if config is None else config

    def fit(
        self,
        model: nn.Module,
        objective: nn.Module,
        train,
        val=None,
        *,
        batch_transform: Callable | None = None,
        val_metric: Callable | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train ``model`` on ``train = (X, y)``; keep the weights of the best validation epoch.

        ``objective(model(x), y)`` is the loss; its own parameters are trained
        too. ``batch_transform(model, x, y) -> x`` rewrites each training batch
        before the forward pass (adversarial training). ``val_metric(model,
        X_val, y_val) -> float`` (higher is better) defaults to mAP@``val_k`` of
        validation codes against training codes. With ``run_dir`` the resolved
        config, history and a resumable checkpoint are written there after every
        epoch; ``resume=True`` continues from that checkpoint (or starts afresh if there is none).
        """
        config = self.config.validate()
        if not isinstance(model, nn.Module) or not isinstance(objective, nn.Module):
            raise TypeError(f"model and objective must be torch.nn.Module, got {type(model).__name__} and {type(objective).__name__}.")
        X, y = as_tensors(train, "train")
        val_data = as_tensors(val, "val") if val is not None else None
        if resume and run_dir is None:
            raise ValueError("resume=True needs run_dir, the folder holding the checkpoint to resume from.")
        device = torch.device(config.device)
        model.to(device)
        objective.to(device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)

        parameters = [p for p in list(model.parameters()) + list(objective.parameters()) if p.requires_grad]
        optimizer = build_optimizer(config, parameters)
        scheduler = build_scheduler(config, optimizer)
        if val_data is not None and val_metric is None:
            val_metric = default_val_metric((X, y), val_data, config.val_k, config.val_batch_size, config.device)

        checkpoint_dir = Path(run_dir) / "checkpoint" if run_dir is not None else None
        state = {"epoch": 0, "best_epoch": 0, "best_metric": -math.inf, "bad_epochs": 0, "history": [], "elapsed": 0.0, "seconds_to_best": 0.0}
        best_model, best_objective = _state_copy(model), _state_copy(objective)
        if resume and checkpoint_exists(checkpoint_dir):
            tensors, meta = load_checkpoint(checkpoint_dir)
            best_model, best_objective = restore_states(tensors, meta, model=model, objective=objective, optimizer=optimizer, scheduler=scheduler)
            state.update(meta["state"])
        if run_dir is not None:
            atomic_write_json(Path(run_dir) / "trainer_config.json", asdict(config))

        bar = progress(range(state["epoch"], config.epochs), desc="train", unit="epoch", initial=state["epoch"], total=config.epochs)
        stopped_early = False
        for epoch in bar:
            if state["bad_epochs"] and config.patience is not None and state["bad_epochs"] >= config.patience:
                stopped_early = True
                break
            started = time.perf_counter()
            if hasattr(objective, "on_epoch_start"):  # per-epoch schedules of the loss
                objective.on_epoch_start(epoch)
            cpu_started = time.process_time()
            train_loss, train_seconds = self._train_epoch(model, objective, optimizer, X, y, epoch, batch_transform, device)
            cpu_seconds = time.process_time() - cpu_started
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()

            # model selection on the validation split only
            metric = float(val_metric(model, *val_data)) if val_data is not None else -train_loss
            state["elapsed"] += time.perf_counter() - started
            if metric > state["best_metric"] or state["best_epoch"] == 0:
                state.update(best_epoch=epoch + 1, best_metric=metric, bad_epochs=0, seconds_to_best=state["elapsed"])
                best_model, best_objective = _state_copy(model), _state_copy(objective)
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            state["history"].append(
                {"epoch": epoch + 1, "train_loss": train_loss, "val_metric": metric if val_data is not None else None, "lr": lr, "seconds": train_seconds, "cpu_seconds": cpu_seconds}
            )
            bar.set_postfix(loss=f"{train_loss:.4f}", val_map=f"{metric:.4f}" if val_data is not None else "-")
            if checkpoint_dir is not None:
                self._write_run(run_dir, checkpoint_dir, model, objective, optimizer, scheduler, best_model, best_objective, state)

        model.load_state_dict(best_model)
        objective.load_state_dict(best_objective)
        seconds = [row["seconds"] for row in state["history"]]
        result = TrainResult(
            best_epoch=state["best_epoch"],
            best_metric=float(state["best_metric"]),
            history=list(state["history"]),
            seconds_per_epoch=float(np.median(seconds)) if seconds else 0.0,
            seconds_to_best=float(state["seconds_to_best"]),
            stopped_early=stopped_early,
            cpu_seconds_per_epoch=float(np.median([row.get("cpu_seconds", 0.0) for row in state["history"]])) if seconds else 0.0,
        )
        if run_dir is not None:
            atomic_write_json(Path(run_dir) / "train_result.json", result.to_dict())
            if hasattr(model, "save") and hasattr(model, "n_bits"):
                model.save(Path(run_dir) / "model")
        return result

    def _train_epoch(self, model, objective, optimizer, X, y, epoch, batch_transform, device) -> tuple[float, float]:
        """One pass over shuffled mini-batches; returns (mean loss, seconds)."""
        config = self.config
        started = time.perf_counter()
        # the shuffle depends only on (seed, epoch): a resumed run sees the same batches
        n_items = n_rows(X)
        order = torch.randperm(n_items, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        model.train()
        objective.train()
        total, count = 0.0, 0
        for start in range(0, n_items, config.batch_size):
            index = order[start : start + config.batch_size]
            if len(index) < 2 and n_items > 1:  # pairwise losses need two items; drop a lone tail
                continue
            inputs, labels = take_rows(X, index, device), y[index].to(device)
            if batch_transform is not None:
                inputs = batch_transform(model, inputs, labels)
                model.train()  # the transform may have switched to eval mode
            loss = objective(model(inputs), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss.item()} at epoch {epoch + 1}; lower trainer.lr.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.grad_clip)
            optimizer.step()
            if hasattr(objective, "step"):  # per-step schedules of the loss (e.g. HashNet)
                objective.step()
            total += loss.item() * len(index)
            count += len(index)
        return total / max(count, 1), time.perf_counter() - started

    def _write_run(self, run_dir, checkpoint_dir, model, objective, optimizer, scheduler, best_model, best_objective, state) -> None:
        meta = {"state": state, "config": asdict(self.config)}
        save_checkpoint(
            checkpoint_dir,
            model=model,
            objective=objective,
            optimizer=optimizer,
            scheduler=scheduler,
            best_model_state=best_model,
            best_objective_state=best_objective,
            meta=meta,
        )
        atomic_write_json(Path(run_dir) / "history.json", state["history"])
