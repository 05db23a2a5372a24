"""Lifelong hashing benchmark: Fashion-MNIST in three class-incremental stages (0-4, 5-7, 8-9).

Protocol ``class-incremental-small`` of :mod:`hashlearn.data.incremental`: 100
queries per class from the test split, 2,000 database items per class, 500
training and 100 validation items per class of each stage's new classes
(stage 1: 5,000 database items; stage 3: 10,000 database items, 1,000 queries).
Inputs are the 784 pixels, the model an MLP hash head (one hidden layer of 512);
stage 1 is trained with CSQ (the default method) for 8 epochs.

For stages 2 and 3, in the same process and from the same stage-1 run:

* ``lifelong``: :func:`hashlearn.runs.lifelong.lifelong_run` with the settings chosen
  on validation -- the parent's model trained on the new stage's data plus an
  exemplar memory of earlier training items (weighted so each old class counts as
  much as a new one), toward hash centers: the old classes' are the majority of
  their frozen stored codes, the new ones far from them; only the new items are encoded;
* ``lifelong (centers, no memory)``: the same on the new stage's data only;
* ``lifelong (lr 1x)``: the same at the parent's learning rate (last round's; its memory was 100 per class);
* ``lifelong (pairwise)``: the round before's method -- the pairwise loss against the old
  codes and within the batch, no memory, at the learning rate and old-code weight
  last round's validation sweep chose (kept in ``lifelong.json`` as ``selection_pairwise``);
* ``retrain``: a fresh model trained with CSQ on the training items of *all*
  stages so far, for as many epochs as stage 1, then everything re-encoded;
* ``finetune-frozen``: the parent's model fine-tuned with CSQ on the new data
  only, old codes kept as stored, new items encoded by the fine-tuned model;
* ``finetune-reencode``: the same fine-tuned model, every database item re-encoded;
* ``finetune+replayM-frozen``: fine-tuning with CSQ on the new data plus the same
  memory as ``lifelong`` (unweighted), old codes kept as stored.

mAP@1000 of the old-class queries, the new-class queries and all queries,
against the stage's whole database. Training time is the process CPU time of
the training call (robust to the other jobs on the shared cores) and its wall time;
every timed training -- lifelong stage, retraining, fine-tuning -- writes its
checkpoint after each epoch into a run directory, as ``hashlearn train`` does.

Upgrade table: an "old" model (MLP, hidden 64, 1,000 training items of all 10
classes) and its database codes; a "new" model (hidden 512, 5,000 training
items) trained (a) with CSQ alone and (b) with the lifelong loss's cross term
against the old model's database codes (the backward-compatibility term);
old-query/old-db, new-query/old-db and new-query/new-db mAP@1000.

    PYTHONPATH=src nice -n 10 python benchmarks/lifelong.py [--seeds 0 1 2] [--bits 32 64] [--quick]

Rows are appended to ``benchmarks/results/lifelong.json`` as they finish (a
rerun skips rows already there; ``--fresh`` starts over) and the tables are
rewritten into ``lifelong.md`` after each row.

``--dataset openmoji`` runs the cross-modal part instead (two-tower models on
openmoji's image-text pairs by emoji group: ``benchmarks/lifelong_openmoji.py``);
its rows live in ``lifelong-openmoji.json`` and ``lifelong.md`` renders them as
their own section after the Fashion-MNIST tables, whichever part ran last.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.data import load_dataset
from hashlearn.data.incremental import get_incremental_protocol, make_stage_splits
from hashlearn.runs import resolve_config, train_run
from hashlearn.runs.deep import build_deep_method
from hashlearn.runs.evaluate import encode_array
from hashlearn.runs.lifelong import VAL_MAX_QUERIES, _replay_items, lifelong_run, stage_metrics
from hashlearn.runs.run import Run
from hashlearn.train import TrainConfig, Trainer

RESULTS = Path(__file__).parent / "results"
DATASET, PROTOCOL, METHOD = "fashion-mnist", "class-incremental-small", "csq"
STAGE1_EPOCHS = 8
LIFELONG_EPOCHS = 2
#: the validation sweep of the stage settings, each run as a chain stage 2 -> stage 3: learning rate (x the parent's 1e-3),
#: memory per old class, the memory items' targets, epochs. Only settings within BUDGET may be chosen; the others are
#: measured for the record.
SWEEP = [{"lr_factor": f, "memory": 100} for f in (1.0, 3.0, 5.0, 7.0, 10.0)] + [
    {"lr_factor": f, "memory": 100, "memory_targets": "codes"} for f in (1.0, 5.0)] + [
    {"lr_factor": f, "memory": 200} for f in (3.0, 5.0, 7.0)] + [{"lr_factor": 5.0, "memory": 200, "memory_targets": "codes"},
    {"lr_factor": 5.0, "memory": 400}, {"lr_factor": 1.0, "memory": 100, "epochs": 3}]
#: the training cost a chosen setting may have (the time target: <= 0.20x retraining's CPU). With the stage's validation
#: metric on at most VAL_MAX_QUERIES items, a memory of 200 costs about what last round's 100 did with every validation item.
BUDGET = {"memory": 200, "epochs": 2}
#: the seed of the stage-settings selection (validation only; the evaluated seeds are others)
SELECTION_SEED = 10
K = 1000


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def flat(dataset, index):
    return np.asarray(dataset.data[index], dtype=np.float32).reshape(len(index), -1)


def csq_fit(model, objective, dataset, train_index, val_index, epochs, seed, run_dir=None):
    """CSQ training; with ``run_dir`` a checkpoint every epoch, as a lifelong stage (and ``hashlearn train``) writes."""
    config = TrainConfig(epochs=epochs, lr=1e-3, batch_size=128, seed=seed)
    labels = dataset.labels
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True)
    return Trainer(config).fit(model, objective, train=(flat(dataset, train_index), labels[train_index]),
                               val=(flat(dataset, val_index), labels[val_index]), run_dir=run_dir)


def stage1_config(seed: int, n_bits: int):
    return resolve_config(overrides=[f"data.dataset={DATASET}", f"data.protocol={PROTOCOL}", f"data.seed={seed}", f"method.name={METHOD}",
                                       f"method.n_bits={n_bits}", f"trainer.epochs={STAGE1_EPOCHS}", f"trainer.seed={seed}", "trainer.lr=0.001",
                                       "model.backbone=mlp", "model.hidden=[512]"])


def within_budget(setting: dict) -> bool:
    return setting["memory"] <= BUDGET["memory"] and setting.get("epochs", LIFELONG_EPOCHS) <= BUDGET["epochs"]


def select_stage_settings(dataset, n_bits: int, work: Path) -> list[dict]:
    """Each setting of SWEEP as a chain stage 2 -> stage 3 from one stage-1 run of seed SELECTION_SEED (not an evaluated
    seed), scored by the mean of the two stages' validation metrics (every validation item so far against the stored old
    codes + the new training codes); retraining's CPU on the same seed gives each setting's CPU ratio."""
    import json

    train_run(stage1_config(SELECTION_SEED, n_bits), work / "select1", dataset=dataset)
    protocol = get_incremental_protocol(DATASET, PROTOCOL)
    splits = make_stage_splits(dataset, protocol, seed=SELECTION_SEED)
    retrain_cpu = {}
    for number in (2, 3):
        train_index = np.sort(np.concatenate([s.train for s in splits[:number]]))
        val_index = np.sort(np.concatenate([s.validation for s in splits[:number]]))
        fresh, objective = build_deep_method(METHOD, n_bits, 10, (784,), seed=SELECTION_SEED)
        retrain_cpu[number] = timed(lambda: csq_fit(fresh, objective, dataset, train_index, val_index, STAGE1_EPOCHS, SELECTION_SEED))[2]
    rows = []
    for setting in SWEEP:
        row = {"n_bits": n_bits, "seed": SELECTION_SEED, **setting, "within_budget": within_budget(setting), "val_max_queries": VAL_MAX_QUERIES}
        parent = work / "select1"
        for number in (2, 3):
            out = work / f"select{number}"
            record = lifelong_run(parent, out, epochs=setting.get("epochs", LIFELONG_EPOCHS), dataset=dataset, k=K,
                                  replay_per_class=setting["memory"], overrides=stage_overrides(setting), overwrite=True)
            row[f"val_mAP_stage{number}"] = json.loads((out / "train_result.json").read_text())["best_metric"]
            row[f"cpu_ratio_stage{number}"] = record["train_cpu_seconds"] / retrain_cpu[number]
            parent = out
        row["val_mAP"] = (row["val_mAP_stage2"] + row["val_mAP_stage3"]) / 2
        rows.append(row)
        print(rows[-1], flush=True)
    for number in (2, 3):
        shutil.rmtree(work / f"select{number}", ignore_errors=True)
    return rows


def chosen_setting(rows: list[dict]) -> dict:
    """The eligible (within-budget) setting with the best validation score."""
    best = max((r for r in rows if r["within_budget"]), key=lambda r: r["val_mAP"])
    return {key: best[key] for key in ("lr_factor", "memory", "memory_targets", "epochs") if key in best}


def select_old_centers(dataset, n_bits: int, work: Path, chosen: dict) -> list[dict]:
    """The old classes' centers at stage 3 ("majority" of their stored codes or the "recorded" targets of the stage that
    trained them), scored on the stage-3 validation metric of seed SELECTION_SEED after a stage 2 with the chosen settings."""
    import json

    train_run(stage1_config(SELECTION_SEED, n_bits), work / "select1", dataset=dataset)
    epochs = chosen.get("epochs", LIFELONG_EPOCHS)
    lifelong_run(work / "select1", work / "select2", epochs=epochs, dataset=dataset, k=K, replay_per_class=chosen["memory"],
                 overrides=stage_overrides(chosen))
    rows = []
    for old_centers in ("majority", "recorded"):
        setting = {**chosen, "old_centers": old_centers}
        record = lifelong_run(work / "select2", work / "select3", epochs=epochs, dataset=dataset, k=K, replay_per_class=chosen["memory"],
                              overrides=stage_overrides(setting), overwrite=True)
        best = json.loads((work / "select3" / "train_result.json").read_text())["best_metric"]
        rows.append({"n_bits": n_bits, "seed": SELECTION_SEED, "stage": 3, "old_centers": old_centers, "val_mAP": best,
                     "train_cpu_s": record["train_cpu_seconds"]})
        print(rows[-1], flush=True)
    return rows


def stage_overrides(setting: dict) -> list[str]:
    """``--set`` strings of a setting (the loss arguments other than these are the workflow's STAGE_LOSS)."""
    overrides = [f"trainer.lr={1e-3 * setting['lr_factor']}", f"method.loss.old_weight={setting.get('old_weight', 0.0)}"]
    overrides.append(f"method.loss.memory_targets={setting.get('memory_targets', 'centers')}")
    if setting.get("old_centers"):
        overrides.append(f"method.loss.old_centers={setting['old_centers']}")
    if setting.get("pairwise"):
        overrides += ["method.loss.center_weight=0.0", "method.loss.new_weight=1.0"]
    return overrides


def stage_rows(dataset, seed: int, n_bits: int, work: Path, chosen: dict, pairwise: dict) -> list[dict]:
    """Every method at stages 1-3 for one seed and code length."""
    protocol = get_incremental_protocol(DATASET, PROTOCOL)
    splits = make_stage_splits(dataset, protocol, seed=seed)
    labels = dataset.labels
    config = stage1_config(seed, n_bits)
    memory = chosen["memory"]
    variants = [("lifelong", chosen, memory), ("lifelong (centers, no memory)", chosen, 0),
                ("lifelong (lr 1x)", {**chosen, "lr_factor": 1.0}, memory),
                ("lifelong (pairwise)", {**pairwise, "pairwise": True}, 0)]
    (model, result), wall, cpu = timed(lambda: train_run(config, work / "stage1", dataset=dataset))
    query_codes = model.encode(flat(dataset, splits[0].query))
    db_codes = model.encode(flat(dataset, splits[0].database))
    base = {"seed": seed, "n_bits": n_bits}
    rows = [{**base, "stage": 1, "method": "stage 1 (csq)", "train_cpu_s": cpu, "train_wall_s": wall,
             **stage_metrics(query_codes, labels[splits[0].query], db_codes, labels[splits[0].database], protocol.stages[0].classes, K)}]
    parent, tuned_models = {}, {}
    frozen = {"stage1": (db_codes, splits[0].database)}  # each fine-tuned chain's stored codes
    for number in (2, 3):
        split, new_classes = splits[number - 1], protocol.stages[number - 1].classes
        q_labels, db_labels = labels[split.query], labels[split.database]
        # lifelong: the real workflow, each variant from its own previous stage
        for index, (name, setting, replay) in enumerate(variants):
            out = work / f"lifelong{index}-{number}"
            record = lifelong_run(parent.get(name, work / "stage1"), out, epochs=setting.get("epochs", LIFELONG_EPOCHS), dataset=dataset, k=K,
                                  replay_per_class=replay,
                                  freeze_backbone=setting.get("freeze_backbone", False), overrides=stage_overrides(setting))
            rows.append({**base, "stage": number, "method": name, "train_cpu_s": record["train_cpu_seconds"],
                         "train_wall_s": record["train_seconds"], **record["metrics"]})
            parent[name] = out
        # retrain from scratch on every stage's training items, re-encode everything
        train_index = np.sort(np.concatenate([s.train for s in splits[:number]]))
        val_index = np.sort(np.concatenate([s.validation for s in splits[:number]]))
        fresh, objective = build_deep_method(METHOD, n_bits, 10, (784,), seed=seed)
        _, wall, cpu = timed(lambda: csq_fit(fresh, objective, dataset, train_index, val_index, STAGE1_EPOCHS, seed, work / f"retrain-{number}"))
        rows.append({**base, "stage": number, "method": "retrain", "train_cpu_s": cpu, "train_wall_s": wall,
                     **stage_metrics(fresh.encode(flat(dataset, split.query)), q_labels, fresh.encode(flat(dataset, split.database)), db_labels, new_classes, K)})
        # naive fine-tuning of the previous fine-tuned model with CSQ on the new data (+ the same exemplar memory)
        for name, replay in (("finetune", 0), (f"finetune+replay{memory}", memory)):
            tuned = tuned_models.get(name) or Run(work / "stage1").load_model()
            objective = build_deep_method(METHOD, n_bits, 10, (784,), seed=seed)[1]
            train_index = np.concatenate([split.train, _replay_items(splits[: number - 1], labels, replay, seed + number)])
            _, wall, cpu = timed(lambda: csq_fit(tuned, objective, dataset, train_index, split.validation, LIFELONG_EPOCHS, seed,
                                                 work / f"{name}-{number}"))
            tuned_models[name] = tuned
            old_codes, old_ids = frozen.get(name, frozen["stage1"])
            new_ids = np.setdiff1d(split.database, old_ids)
            kept_codes, kept_ids = np.concatenate([old_codes, tuned.encode(flat(dataset, new_ids))]), np.concatenate([old_ids, new_ids])
            frozen[name] = (kept_codes, kept_ids)
            tuned_queries = tuned.encode(flat(dataset, split.query))
            timing = {"train_cpu_s": cpu, "train_wall_s": wall}
            rows.append({**base, "stage": number, "method": f"{name}-frozen", **timing,
                         **stage_metrics(tuned_queries, q_labels, kept_codes, labels[kept_ids], new_classes, K)})
            if replay == 0:
                rows.append({**base, "stage": number, "method": f"{name}-reencode", **timing,
                             **stage_metrics(tuned_queries, q_labels, tuned.encode(flat(dataset, split.database)), db_labels, new_classes, K)})
    return rows


def upgrade_rows(dataset, seed: int, n_bits: int) -> list[dict]:
    """Backward-compatible upgrade: a new model's queries against the old model's database codes."""
    from hashlearn.data.protocols import make_split
    from hashlearn.eval.metrics import mean_average_precision
    from hashlearn.losses.lifelong import BackwardCompatibleLoss

    split = make_split(dataset, "default", seed=seed)
    rng = np.random.default_rng(seed)
    labels = dataset.labels
    database = np.sort(rng.choice(split.database, 20000, replace=False))
    query = split.query
    old_train = np.sort(rng.choice(split.train, 1000, replace=False))
    old_model, objective = build_deep_method(METHOD, n_bits, 10, (784,), seed=seed, backbone="mlp",
                                             backbone_kwargs={"in_features": 784, "hidden": [64], "dropout": 0.0})
    csq_fit(old_model, objective, dataset, old_train, split.validation, STAGE1_EPOCHS, seed)
    old_db = old_model.encode(flat(dataset, database))
    old_q = old_model.encode(flat(dataset, query))
    rows, base = [], {"seed": seed, "n_bits": n_bits}
    q_labels, db_labels = labels[query], labels[database]
    rows.append({**base, "model": "old (hidden 64, 1,000 train)", "old_q_old_db": mean_average_precision(old_q, old_db, q_labels, db_labels, K)})
    # the compatibility term's targets: the old model's codes of the new model's training items (they are in the old database)
    for name in ("new (csq)", "new (csq + compatibility)"):
        new_model, objective = build_deep_method(METHOD, n_bits, 10, (784,), seed=seed + 100)
        train = split.train
        if "compatibility" in name:
            objective = BackwardCompatibleLoss(objective, old_model.encode(flat(dataset, train)), labels[train], seed=seed)
        _, wall, cpu = timed(lambda: csq_fit(new_model, objective, dataset, train, split.validation, STAGE1_EPOCHS, seed))
        new_q, new_db = new_model.encode(flat(dataset, query)), new_model.encode(flat(dataset, database))
        rows.append({**base, "model": name, "train_cpu_s": cpu,
                     "old_q_old_db": rows[0]["old_q_old_db"],
                     "new_q_old_db": mean_average_precision(new_q, old_db, q_labels, db_labels, K),
                     "new_q_new_db": mean_average_precision(new_q, new_db, q_labels, db_labels, K)})
    return rows


# --- tables -------------------------------------------------------------------------------------
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def sweep_rows(rows: list[dict], columns, eligible=lambda row: True) -> list[str]:
    """Table rows of a validation sweep: per code length, ``columns(row)`` after the bits, and the chosen row (best val_mAP
    of the ``eligible`` ones) marked."""
    lines = []
    for n_bits in sorted({r["n_bits"] for r in rows}):
        mine = [r for r in rows if r["n_bits"] == n_bits]
        best = max((r for r in mine if eligible(r)), key=lambda r: r["val_mAP"])
        lines += ["| " + " | ".join(str(c) for c in [n_bits, *columns(r), "yes" if r is best else ""]) + " |" for r in mine]
    return lines


def write_tables(results: dict) -> None:
    rows = results["stages"]
    lines = ["# Lifelong hashing: Fashion-MNIST 0-4 / 5-7 / 8-9", "", f"Machine: {results['machine']}. Written by `benchmarks/lifelong.py`.", "",
             results["protocol"], "", f"Medians over seeds {sorted({r['seed'] for r in rows})}; mAP@{K} against the stage's whole database. "
             "Train CPU: the training call's process CPU; every method's training writes a checkpoint per epoch into a run directory "
             "(as `hashlearn train` does). CPU vs retrain: the median over seeds of the method's CPU / the median of retraining's.", ""]
    for n_bits in sorted({r["n_bits"] for r in rows}):
        lines += [f"## {n_bits} bits", "", "| stage | method | mAP all | mAP old classes | mAP new classes | train CPU s | train wall s | CPU vs retrain |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for stage in (1, 2, 3):
            cells = [r for r in rows if r["n_bits"] == n_bits and r["stage"] == stage]
            for method in dict.fromkeys(r["method"] for r in cells):
                mine = [r for r in cells if r["method"] == method]
                retrain = median([r["train_cpu_s"] for r in cells if r["method"] == "retrain"])
                cpu = median([r["train_cpu_s"] for r in mine])
                ratio = f"{cpu / retrain:.3f}" if retrain and method != "retrain" else "-"
                lines.append(f"| {stage} | {method} | {fmt(median([r[f'mAP@{K}'] for r in mine]))} | {fmt(median([r[f'mAP@{K}_old'] for r in mine]))} | "
                             f"{fmt(median([r[f'mAP@{K}_new'] for r in mine]))} | {fmt(cpu, 1)} | {fmt(median([r['train_wall_s'] for r in mine]), 1)} | {ratio} |")
        lines.append("")
    selection = results.get("selection", [])
    if selection:
        lines += [f"## Stage settings chosen on validation (seed {SELECTION_SEED}, stages 2 and 3 chained; not an evaluated seed)", "",
                  "Each setting runs stage 2 from one stage-1 run, then stage 3 from its own stage 2. Validation mAP: every stage's validation "
                  "items so far, searched against the stored old codes + the new training codes; the score is the mean of the two stages'. "
                  "Memory = earlier training items per old class, weighted (new items per new class) / (memory per old class); its targets: "
                  "their class's center, or their own stored database codes. CPU ratio: the stage's training CPU / retraining's on the same seed "
                  f"(one measurement each, on shared cores: noisy). The stage's validation metric scores at most {VAL_MAX_QUERIES} validation items "
                  f"(evenly spaced); only settings with memory <= {BUDGET['memory']} and {BUDGET['epochs']} epochs may be chosen -- with that "
                  "cheaper metric a memory of 200 costs about the CPU that last round's 100 did with every validation item.", "",
                  "| bits | lr (x parent's 1e-3) | memory | memory targets | epochs | val mAP stage 2 | val mAP stage 3 | score | CPU ratio stage 2 / 3 | eligible | chosen |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += sweep_rows(selection, lambda r: [r["lr_factor"], r["memory"], r.get("memory_targets", "centers"), r.get("epochs", LIFELONG_EPOCHS),
                                                  f"{r['val_mAP_stage2']:.4f}", f"{r['val_mAP_stage3']:.4f}", f"{r['val_mAP']:.4f}",
                                                  f"{r['cpu_ratio_stage2']:.2f} / {r['cpu_ratio_stage3']:.2f}", "yes" if r["within_budget"] else "no"],
                            eligible=lambda r: r["within_budget"]) + [""]
    selection = results.get("selection_stage2", [])
    if selection:
        lines += [f"## Last round's sweep of the stage settings (seed {SELECTION_SEED}, stage-2 validation only)", "",
                  "Validation mAP: every stage's validation items so far, searched against the old codes + the training codes (then also the "
                  "memory items' fresh codes, which this round's metric leaves out: the database holds their stored codes). "
                  f"{LIFELONG_EPOCHS} epochs; memory = earlier training items per old class, weighted (new items per new class) / (memory per old class).", "",
                  "| bits | lr (x parent's 1e-3) | old_weight | memory | backbone | validation mAP | train CPU s | chosen |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += sweep_rows(selection, lambda r: [r["lr_factor"], r["old_weight"], r["memory"], "frozen" if r.get("freeze_backbone") else "trained",
                                                  f"{r['val_mAP']:.4f}", fmt(r.get("train_cpu_s"), 1)]) + [""]
    centers = results.get("selection_centers", [])
    if centers:
        lines += [f"## The old classes' centers, chosen on stage-3 validation (seed {SELECTION_SEED}, after a stage 2 with the chosen settings)", "",
                  "`majority`: the bitwise majority of each old class's stored codes; `recorded`: the center the stage that brought the class "
                  "trained it toward (a stage-1 CSQ parent's classes: the majority, which equals CSQ's center).", "",
                  "| bits | old centers | validation mAP | train CPU s | chosen |", "| --- | --- | --- | --- | --- |"]
        lines += sweep_rows(centers, lambda r: [r["old_centers"], f"{r['val_mAP']:.4f}", fmt(r.get("train_cpu_s"), 1)]) + [""]
    pairwise = results.get("selection_pairwise", [])
    if pairwise:
        lines += ["## Last round's sweep of the pairwise method (same seed and metric; no memory)", "",
                  "| bits | lr (x parent's 1e-3) | old_weight | validation mAP | chosen |", "| --- | --- | --- | --- | --- |"]
        lines += sweep_rows(pairwise, lambda r: [r["lr_factor"], r["old_weight"], f"{r['val_mAP']:.4f}"]) + [""]
    upgrade = results.get("upgrade", [])
    if upgrade:
        lines += ["## Backward-compatible upgrade (all 10 classes, 20,000 database items, 1,000 queries)", "",
                  "| bits | model | old-q / old-db | new-q / old-db | new-q / new-db |", "| --- | --- | --- | --- | --- |"]
        for n_bits in sorted({r["n_bits"] for r in upgrade}):
            for model in dict.fromkeys(r["model"] for r in upgrade):
                mine = [r for r in upgrade if r["model"] == model and r["n_bits"] == n_bits]
                lines.append(f"| {n_bits} | {model} | {fmt(median([r['old_q_old_db'] for r in mine]))} | {fmt(median([r.get('new_q_old_db') for r in mine]))} | "
                             f"{fmt(median([r.get('new_q_new_db') for r in mine]))} |")
        lines.append("")
    lines += ["## Notes", "", *[f"- {note}" for note in results.get("notes", [])], ""]
    from lifelong_openmoji import section_lines  # the cross-modal part's own section, from its own json

    lines += section_lines()
    atomic_write_text(RESULTS / "lifelong.md", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--quick", action="store_true", help="one seed, 32 bits, no upgrade table, nothing written")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--no-upgrade", action="store_true")
    parser.add_argument("--stages-again", action="store_true", help="measure the stage rows again, keeping the validation sweeps")
    parser.add_argument("--render", action="store_true", help="only rewrite lifelong.md from lifelong.json (and lifelong-openmoji.json)")
    parser.add_argument("--dataset", choices=("fashion-mnist", "openmoji"), default="fashion-mnist",
                        help="openmoji: the cross-modal part (two towers at --bits; benchmarks/lifelong_openmoji.py)")
    args = parser.parse_args()
    if args.dataset == "openmoji" and not args.render:
        import lifelong_openmoji

        lifelong_openmoji.run(args.seeds, bits=args.bits, fresh=args.fresh)
        return
    if args.render:
        import json

        write_tables(json.loads((RESULTS / "lifelong.json").read_text()))
        return
    torch.set_num_threads(1)
    set_quiet(True)
    dataset = load_dataset(DATASET)
    out = RESULTS / "lifelong.json"
    import json

    results = json.loads(out.read_text()) if out.exists() and not args.fresh and not args.quick else {"stages": [], "upgrade": []}
    results.update(machine=f"{platform.node()}: {os.cpu_count()} cores shared with other jobs (load average {os.getloadavg()[0]:.0f} at start), "
                           f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
                   protocol=get_incremental_protocol(DATASET, PROTOCOL).description + f"; pixels, MLP hidden 512, CSQ stage 1 {STAGE1_EPOCHS} epochs, "
                            f"lifelong and fine-tuning {LIFELONG_EPOCHS} epochs, retraining {STAGE1_EPOCHS} epochs, batch 128")
    seeds, bits = ([args.seeds[0]], [32]) if args.quick else (args.seeds, args.bits)
    if args.stages_again:
        results["stages"] = []
    results.setdefault("selection", [])
    if any("val_mAP_stage3" not in r for r in results["selection"]):  # last round's file: its sweep scored stage 2 only
        results["selection_stage2"] = [r for r in results["selection"] if "val_mAP_stage3" not in r and "memory" in r]
        results["selection"] = [r for r in results["selection"] if "val_mAP_stage3" in r or "memory" not in r]
        results["stages"], results["selection_centers"] = [], []  # measured again with the newly chosen settings
    if any(r.get("val_max_queries") != VAL_MAX_QUERIES for r in results["selection"] if "val_mAP_stage3" in r):  # another metric: sweep again
        results["selection"] = [r for r in results["selection"] if "val_mAP_stage3" not in r]
        results["stages"], results["selection_centers"] = [], []
    if any("memory" not in r for r in results["selection"]):  # last round's file: its sweep was of the pairwise method
        results["selection_pairwise"] = [r for r in results["selection"] if "memory" not in r]
        results["selection"] = [r for r in results["selection"] if "memory" in r]
        results["stages"] = []  # every stage row is measured again, the pairwise method with them
    for n_bits in bits:
        if not any(r["n_bits"] == n_bits for r in results["selection"]):
            work = Path(tempfile.mkdtemp(prefix="hashlearn-lifelong-"))
            try:
                rows = select_stage_settings(dataset, n_bits, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(rows, flush=True)
            results["selection"] += rows
            if not args.quick:
                atomic_write_json(out, results)
        chosen = chosen_setting([r for r in results["selection"] if r["n_bits"] == n_bits])
        results.setdefault("selection_centers", [])
        if not any(r["n_bits"] == n_bits for r in results["selection_centers"]):
            work = Path(tempfile.mkdtemp(prefix="hashlearn-lifelong-"))
            try:
                results["selection_centers"] += select_old_centers(dataset, n_bits, work, chosen)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if not args.quick:
                atomic_write_json(out, results)
        chosen["old_centers"] = max((r for r in results["selection_centers"] if r["n_bits"] == n_bits), key=lambda r: r["val_mAP"])["old_centers"]
        pairwise = max((r for r in results.get("selection_pairwise", []) if r["n_bits"] == n_bits), key=lambda r: r["val_mAP"],
                       default={"lr_factor": 0.03, "old_weight": 1.0})
        for seed in seeds:
            if any(r["seed"] == seed and r["n_bits"] == n_bits for r in results["stages"]):
                continue
            work = Path(tempfile.mkdtemp(prefix="hashlearn-lifelong-"))
            try:
                rows = stage_rows(dataset, seed, n_bits, work, chosen, pairwise)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            for row in rows:
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            if args.quick:
                continue
            results["stages"] += rows
            atomic_write_json(out, results)
            write_tables(results)
    if args.quick or args.no_upgrade:
        return
    for n_bits in bits:
        for seed in seeds:
            if any(r["seed"] == seed and r["n_bits"] == n_bits for r in results["upgrade"]):
                continue
            rows = upgrade_rows(dataset, seed, n_bits)
            for row in rows:
                print(row, flush=True)
            results["upgrade"] += rows
            atomic_write_json(out, results)
            write_tables(results)


if __name__ == "__main__":
    main()
