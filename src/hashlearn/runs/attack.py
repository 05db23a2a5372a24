"""The attack workflow: adversarial queries against a run's model, measured on the run's own split.

Works on every run with a deep hash model -- trained by ``hashlearn train``,
saved by ``hashlearn demo`` or backdoored by ``hashlearn backdoor`` (hash
victim). Writes ``attack/<attack>.json`` (and ``attack/<attack>_adv.npy``,
the adversarial inputs, with ``save_adv``). Attacks that learn before they
attack (``prosgan``) are trained on the run's training split, selected on its
validation split, and kept in ``attack/<attack>_generator/`` (safetensors +
JSON), which later calls with the same options reuse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn.runs.data import load_run_dataset, run_inputs
from hashlearn.runs.run import Run, load_run, save_npy


def attack_run(
    run: Run | str | Path,
    attack: str = "hag",
    *,
    eps: float | None = None,
    norm: str | None = None,
    steps: int = 100,
    n_queries: int | None = None,
    n_database: int | None = None,
    k: int = 1000,
    seed: int = 0,
    save_adv: bool = False,
    modality: str | None = None,
    intra_weight: float = 0.5,
    cmla_form: str = "instance",
    epochs: int | None = None,
    same_weight: float = 1.0,
) -> dict:
    """Attack the first ``n_queries`` queries of the run's split; the clean and attacked metrics (also written to the run).

    ``eps`` / ``norm`` default to 8/255 and ``"linf"``. Cross-modal runs (a paired data set) go to
    :func:`hashlearn.runs.crossmodal.attack_crossmodal_run`: ``attack`` is ``cmla`` or ``hag``, ``modality``
    the attacked side (default ``"image"``), ``cmla_form`` CMLA's objective (``"instance"`` or the paper's
    ``"labels"``, or the two-stage ``"target"`` with ``same_weight``), and the budget defaults depend on that side's inputs.
    ``epochs`` trains attacks that learn (``prosgan``; default: the attack's own), and is refused by the others."""
    import torch

    from hashlearn.attacks import ATTACKS
    from hashlearn.attacks.evaluation import evaluate_attack, model_codes
    from hashlearn.models import HashModel
    from hashlearn.models.input_spec import check_inputs, check_linf_budget

    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}.")
    run = run if isinstance(run, Run) else load_run(run)
    config = run.config
    dataset = load_run_dataset(config.data)
    if getattr(dataset, "modality", None) == "paired":
        from hashlearn.runs.crossmodal import attack_crossmodal_run

        return attack_crossmodal_run(run, attack, modality=modality or "image", eps=eps, norm=norm, steps=steps,
                                     intra_weight=intra_weight, n_queries=n_queries, seed=seed, save_adv=save_adv, dataset=dataset,
                                     cmla_form=cmla_form, same_weight=same_weight)
    if modality is not None:
        raise ValueError(f"modality={modality!r} applies to cross-modal runs only; dataset {dataset.name!r} has one modality.")
    if getattr(ATTACKS[attack], "name", "") == "cmla":
        raise ValueError("cmla is a cross-modal attack: it needs a run on a paired (image-text) data set such as openmoji.")
    eps = 8 / 255 if eps is None else eps
    norm = "linf" if norm is None else norm
    model = run.load_model()
    if not isinstance(model, HashModel):
        raise ValueError(f"run {run.path} holds a {type(model).__name__}; adversarial query attacks need a deep hash model "
                         "(a run of `hashlearn train` with a deep method, or a backdoor run with --victim hash).")
    spec = model.input_spec
    if norm == "linf":
        check_linf_budget(eps, spec, name="eps")
    split = run.load_split()
    if dataset.labels is None:
        raise ValueError(f"dataset {dataset.name!r} is unlabelled; attack evaluation needs labels.")
    labels = dataset.labels
    query_index = split.query[:n_queries]
    db_index = split.database
    if n_database is not None and n_database < len(db_index):
        db_index = np.sort(np.random.default_rng(seed).choice(db_index, size=n_database, replace=False))
    queries = torch.from_numpy(check_inputs(run_inputs(dataset, query_index, config.data.features), spec, name="the queries"))
    query_labels = labels[query_index]
    db_inputs = check_inputs(run_inputs(dataset, db_index, config.data.features), spec, name="the database")
    db_codes = model_codes(model, torch.from_numpy(db_inputs))
    db_labels = labels[db_index]

    # adversarial inputs stay valid inputs: inside the model's value range (unbounded features are not clipped)
    clip = spec.value_range if spec is not None else None
    learned = {}
    if getattr(ATTACKS[attack], "needs_training", False):  # trained once on the run's own training split, then kept
        learned = {"train_inputs": torch.from_numpy(check_inputs(run_inputs(dataset, split.train, config.data.features), spec, name="the training split")),
                   "train_labels": labels[split.train], "save_dir": run.attack_dir / f"{attack}_generator", "n_classes": dataset.n_classes}
        if len(split.validation):
            learned.update(val_inputs=torch.from_numpy(check_inputs(run_inputs(dataset, split.validation, config.data.features), spec,
                                                                    name="the validation split")), val_labels=labels[split.validation])
        if epochs is not None:
            learned["epochs"] = epochs
    elif epochs is not None:
        raise ValueError(f"epochs applies to attacks that are trained first (prosgan); {attack!r} is not, use steps.")
    attacker = ATTACKS[attack].from_options(model, database_codes=db_codes, database_labels=db_labels,
                                             eps=eps, norm=norm, steps=steps, seed=seed, clip=clip, **learned)
    target_labels = None
    if attacker.targeted:
        if labels.ndim != 1:
            raise ValueError("targeted attacks on a run need single-label data (the target is a class id).")
        offsets = np.random.default_rng(seed).integers(1, dataset.n_classes, size=len(query_labels))
        target_labels = (query_labels + offsets) % dataset.n_classes  # a random other class
    result = attacker.attack(queries, target_labels=target_labels) if attacker.targeted else attacker.attack(queries)
    report = evaluate_attack(attacker, queries, query_labels, db_codes, db_labels, target_labels=target_labels, k=k, result=result)
    report = {"run_dir": str(run.path), "dataset": dataset.name, "n_database": int(len(db_index)), "attack_repr": repr(attacker), **report}
    if learned:
        training = getattr(attacker, "training_", None) or {}
        report.update(generator_dir=str(learned["save_dir"]), generator_reused=bool(getattr(attacker, "reused_", False)),
                      train_seconds=training.get("seconds"), train_selected_epoch=training.get("selected_epoch"))
    if save_adv:
        adv_path = run.attack_dir / f"{attack}_adv.npy"
        save_npy(adv_path, result.x_adv.detach().cpu().numpy().astype(np.float32))
        save_npy(run.attack_dir / f"{attack}_ids.npy", np.asarray(query_index, dtype=np.int64))
        report["adv_inputs"] = str(adv_path)
    atomic_write_json(run.attack_path(attack), report)
    from hashlearn.runs.report import save_attack_examples, write_run_report

    save_attack_examples(run, attack, queries.numpy(), result.x_adv.detach().cpu().numpy())
    write_run_report(run)
    return report


__all__ = ["attack_run"]
