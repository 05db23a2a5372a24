"""The backdoor and detect workflows: a backdoored victim saved as a run, its poison found again.

A backdoor run is a run (``config.json`` with a ``backdoor`` section,
``split/``, ``model/``) plus ``backdoor/``: ``backdoor.json`` (attack
parameters, metrics, trigger visibility, timings), ``poisoned_X.npy``,
``poisoned_y.npy``, ``poison_indices.npy``, ``tsne.npy`` / ``tsne_rows.npy`` (a 2-D t-SNE of
the backdoored model's latent features on a sample of the poisoned training set, for the
report), ``noise_indices.npy`` for WaNet and, for LIRA and WB, ``trigger/``.
``detect`` writes ``detect/<defense>.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn.runs.config import RunConfig
from hashlearn.runs.run import Run, _read_json, load_npy, load_run, save_npy
from hashlearn.runs.train import prepare_run_dir

RECORD = "backdoor.json"
#: the t-SNE of latent features shown in the report: 2-D points and the poisoned-set rows they belong to
TSNE, TSNE_ROWS = "tsne.npy", "tsne_rows.npy"


@dataclass
class BackdoorRun:
    """What a backdoor run holds, loaded: the run, its record, model, rebuilt attack and poisoned training set."""

    run: Run
    record: dict
    model: object
    attack: object
    X: np.ndarray
    y: np.ndarray
    poison_indices: np.ndarray


def attack_kwargs(config: RunConfig, n_classes: int) -> dict:
    backdoor = config.backdoor
    kwargs = {"target": backdoor.target, "target_class": backdoor.target_class, "n_classes": n_classes,
              "rate": backdoor.rate, "seed": config.trainer.seed}
    if backdoor.attack in ("lira", "wb"):
        kwargs.update(eps=backdoor.eps, stage1_epochs=backdoor.stage1_epochs, batch_size=config.trainer.batch_size)
    if backdoor.attack == "wanet":
        kwargs.update(strength=backdoor.strength, grid_size=backdoor.grid_size, cross_ratio=backdoor.cross_ratio)
    return kwargs


def backdoor_run(config: RunConfig, run_dir: str | Path, *, overwrite: bool = False) -> dict:
    """Backdoor a fresh victim as ``config.backdoor`` says; write the run; return metrics and visibility."""
    from hashlearn.attacks.backdoor import make_attack
    from hashlearn.attacks.backdoor.experiment import load_experiment_data, run_attack

    if config.backdoor is None:
        raise ValueError("a backdoor run needs a config with a 'backdoor' section.")
    config.validate()
    run = prepare_run_dir(run_dir, overwrite=overwrite)
    data = load_experiment_data(config.data.dataset, seed=config.data.seed, protocol=config.data.protocol)
    attack = make_attack(config.backdoor.attack, **attack_kwargs(config, data.n_classes))
    out = run_attack(attack, config.backdoor.victim, data, config.trainer, n_bits=config.method.n_bits, seed=config.trainer.seed)
    result = out["result"]
    run.save_config(config)
    run.save_split(data.split)
    run.save_model(result.model)
    if hasattr(attack, "save_trigger"):
        attack.save_trigger(run.backdoor_dir / "trigger")
    save_npy(run.backdoor_dir / "poisoned_X.npy", result.poisoned.X)
    save_npy(run.backdoor_dir / "poisoned_y.npy", result.poisoned.y)
    save_npy(run.backdoor_dir / "poison_indices.npy", result.poisoned.poison_indices)
    noise_indices = getattr(result.poisoned, "noise_indices", None)
    if noise_indices is not None:  # WaNet's noise mode: warped rows that kept their labels
        save_npy(run.backdoor_dir / "noise_indices.npy", noise_indices)
    save_latent_embedding(run, result.model, result.poisoned, seed=config.trainer.seed)
    record = {
        "attack": attack.params(),
        "metrics": out["metrics"],
        "visibility": out["visibility"],
        "train": result.train_result.to_dict(),
        "stage1_seconds": result.stage1_seconds,
        "seconds": out["seconds"],
    }
    atomic_write_json(run.backdoor_dir / RECORD, record)
    atomic_write_json(run.history_path, record["train"]["history"])
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return {"metrics": out["metrics"], "visibility": out["visibility"]}


def save_latent_embedding(run: Run, model, poisoned, seed: int = 0) -> None:
    """t-SNE of the model's latent features on part of the poisoned training set: ``backdoor/tsne.npy`` + ``tsne_rows.npy``."""
    from hashlearn.attacks.backdoor.experiment import latent_tsne

    rows, embedding = latent_tsne(model, poisoned.X, poisoned.poison_indices, seed=seed,
                                  noise_indices=getattr(poisoned, "noise_indices", None))
    save_npy(run.backdoor_dir / TSNE_ROWS, rows)
    save_npy(run.backdoor_dir / TSNE, embedding)


def load_backdoor(run: Run | str | Path) -> BackdoorRun:
    """A backdoor run's contents; ``ValueError`` when the run is not a backdoor run."""
    from hashlearn.attacks.backdoor import make_attack

    run = run if isinstance(run, Run) else load_run(run)
    if not run.is_backdoor:
        raise ValueError(f"{run.path} is not a backdoor run (its config has no 'backdoor' section); make one with `hashlearn backdoor`.")
    record_path = run.backdoor_dir / RECORD
    if not record_path.is_file():
        raise FileNotFoundError(f"no {RECORD} in {run.backdoor_dir}; the backdoor run did not finish.")
    record = _read_json(record_path)
    params = dict(record["attack"])
    attack = make_attack(params.pop("attack"), **params)
    if hasattr(attack, "load_trigger"):
        attack.load_trigger(run.backdoor_dir / "trigger")
    return BackdoorRun(
        run=run, record=record, model=run.load_model(), attack=attack,
        X=load_npy(run.backdoor_dir / "poisoned_X.npy"), y=load_npy(run.backdoor_dir / "poisoned_y.npy"),
        poison_indices=load_npy(run.backdoor_dir / "poison_indices.npy"),
    )


def detect_run(run: Run | str | Path, defense: str, *, expected_rate: float | None = None, retrain: bool = False, **defense_kwargs) -> dict:
    """Flag the poison of a backdoor run with ``defense``; TPR/FPR; optionally retrain on the rest. Writes ``detect/<defense>.json``."""
    from hashlearn.attacks.backdoor.experiment import detect, evaluate, load_experiment_data, train_clean
    from hashlearn.defenses import detection_rates

    saved = load_backdoor(run)
    config = saved.run.config
    rate = expected_rate if expected_rate is not None else config.backdoor.rate
    flagged, _ = detect(saved.model, saved.X, saved.y, defense, rate, **defense_kwargs)
    tpr, fpr = detection_rates(flagged, saved.poison_indices, len(saved.y))
    report = {"defense": defense, "settings": {"expected_rate": rate, **defense_kwargs}, "n_flagged": int(len(flagged)), "tpr": tpr, "fpr": fpr}
    if retrain:
        data = load_experiment_data(config.data.dataset, seed=config.data.seed, protocol=config.data.protocol)
        keep = np.setdiff1d(np.arange(len(saved.y)), flagged)
        model, _ = train_clean(config.backdoor.victim, data, config.trainer, n_bits=config.method.n_bits,
                               train=(saved.X[keep], saved.y[keep]), seed=config.trainer.seed)
        report["after_retraining"] = evaluate(model, config.backdoor.victim, data, saved.attack)
    atomic_write_json(saved.run.detect_path(defense), report)
    from hashlearn.runs.report import write_run_report

    write_run_report(saved.run)
    return report


__all__ = ["BackdoorRun", "TSNE", "TSNE_ROWS", "attack_kwargs", "backdoor_run", "detect_run", "load_backdoor", "save_latent_embedding"]
