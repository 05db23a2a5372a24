"""Lifelong hashing benchmark, cross-modal part: openmoji image-text pairs arriving by emoji group, two-tower models.

Run as ``benchmarks/lifelong.py --dataset openmoji`` (or this file directly). Protocol
``groups`` of :mod:`hashlearn.data.incremental`: Smileys & Emotion, People & Body,
Animals & Nature, Food & Drink; then Travel & Places, Activities, Objects; then
Symbols, Flags (each group with its subgroups; labels are group + subgroup,
relevance = sharing a label). 25 query pairs and 10 validation pairs per group,
every other new pair trains (stage 1: 674 training pairs, 714 database pairs).

Frozen features, as in ``benchmarks/crossmodal.py``'s table 1: EfficientNet-Lite0
of the 64 px renders for the image tower, all-MiniLM-L6-v2 of the texts for the
text tower (both cached), standardised with the mean and deviation of the stage-1
training pairs (fixed for all stages, as a deployed system fixes its preprocessing);
MLP towers (hidden 512), 32 and 64 bits (``--bits``). Stage 1: DCMH through ``train_run`` (40 epochs,
lr 1e-3, batch 64, early stop after 8 epochs without a better validation mAP).

For stages 2 and 3, in the same process and from the same stage-1 run:

* ``lifelong``: :func:`hashlearn.runs.lifelong.lifelong_run` on the two-tower run with
  the setting chosen on validation (loss ``lifelong-crossmodal``); the stored image and
  text codes of the old pairs are never re-encoded;
* ``lifelong (no memory)``: the same on the new stage's pairs only;
* ``retrain``: a fresh DCMH model on the training pairs of all stages so far, as
  stage 1 was trained, then every database pair re-encoded (both sides);
* ``finetune-frozen``: the previous stage's fine-tuned model trained further with DCMH
  on the new pairs only (at the parent's lr, for the chosen setting's epochs), old codes kept as stored,
  the new pairs encoded by the fine-tuned model;
* ``finetune-reencode``: the same fine-tuned model, every database pair re-encoded;
* ``finetune+memory-frozen``: fine-tuning with DCMH on the new pairs plus the same memory
  as ``lifelong`` (unweighted), old codes kept as stored.

I->T (image queries, the stored text codes) and T->I mAP@all of the old-group, the
new-group and all query pairs against the stage's whole database. Training CPU is the
process CPU time of the training call; every timed training -- lifelong stage,
retraining, fine-tuning -- writes its checkpoint after each epoch into a run
directory, as ``hashlearn train`` does.

Rows go to ``benchmarks/results/lifelong-openmoji.json`` (a rerun skips the (seed, bits) already
there; ``--fresh`` starts over); ``benchmarks/lifelong.py`` renders them as the
openmoji section of ``lifelong.md`` (with its own Fashion-MNIST tables, which this
part leaves as they are).

    PYTHONPATH=src nice -n 5 python benchmarks/lifelong.py --dataset openmoji [--seeds 0 1 2] [--bits 32 64]
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
PART = RESULTS / "lifelong-openmoji.json"
DATASET, PROTOCOL, METHOD = "openmoji", "groups", "dcmh"
#: the code lengths measured (``--bits``); the stage setting is chosen once, at SELECTION_BITS, and used at every width
BITS, SELECTION_BITS = (32, 64), 32
STAGE1 = {"epochs": 40, "lr": 1e-3, "batch_size": 64, "patience": 8}
#: the validation sweep of the stage settings (each a chain stage 2 -> stage 3 of seed SELECTION_SEED): learning rate
#: (x the parent's), memory pairs per old group, epochs, the loss terms -- "centers" (the single-modal STAGE_LOSS),
#: "centers+pairwise" (also old_weight 1, new_weight 1: the inter-modal terms against the stored codes and in the batch),
#: "pairwise" (those alone, DLCH's form) -- and further overrides ("extra", applied last: e.g. new_weight 2 replaces the 1
#: of "centers+pairwise"). The first thirteen are the sweep of the first round (eligibility then: memory <= 100, epochs <= 10);
#: the rest were tried since, to learn the new groups within the CPU target in few epochs (all measured, all shown).
SWEEP = [{"lr_factor": 5.0, "memory": 50, "epochs": 5, "loss": "centers"},
         {"lr_factor": 1.0, "memory": 50, "epochs": 5, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 0, "epochs": 5, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 25, "epochs": 5, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 100, "epochs": 5, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 50, "epochs": 10, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 50, "epochs": 5, "loss": "centers+pairwise"},
         {"lr_factor": 1.0, "memory": 50, "epochs": 10, "loss": "pairwise"},
         {"lr_factor": 1.0, "memory": 100, "epochs": 5, "loss": "centers"},
         {"lr_factor": 5.0, "memory": 100, "epochs": 5, "loss": "centers+pairwise"},
         {"lr_factor": 1.0, "memory": 100, "epochs": 5, "loss": "centers+pairwise"},
         {"lr_factor": 1.0, "memory": 100, "epochs": 10, "loss": "centers+pairwise"},
         {"lr_factor": 1.0, "memory": 200, "epochs": 5, "loss": "centers+pairwise"}]


def _pairwise(lr_factor: float, memory: int, epochs: int, *extra: str) -> dict:
    return {"lr_factor": lr_factor, "memory": memory, "epochs": epochs, "loss": "centers+pairwise", "extra": list(extra)}


_NEW2 = "method.loss.new_weight=2.0"
SWEEP += [_pairwise(1.0, 100, 6), _pairwise(1.0, 100, 7),  # more epochs, as far as the CPU target allows
          _pairwise(1.0, 100, 5, "trainer.batch_size=32"), _pairwise(1.0, 100, 4, "trainer.batch_size=32"),  # more steps per epoch
          _pairwise(2.0, 100, 5), _pairwise(1.5, 100, 5, _NEW2), _pairwise(2.0, 100, 5, _NEW2), _pairwise(2.0, 100, 6, _NEW2),
          _pairwise(3.0, 100, 5, "trainer.scheduler=cosine"), _pairwise(2.0, 100, 5, _NEW2, "trainer.scheduler=cosine"),
          _pairwise(1.0, 100, 5, "method.loss.center_weight=2.0"), _pairwise(1.0, 100, 5, _NEW2, "method.loss.center_weight=0.5"),
          _pairwise(1.0, 100, 5, "method.loss.old_weight=2.0"), _pairwise(1.0, 100, 5, _NEW2, "method.loss.old_weight=0.5"),
          # the within-batch (new and memory pairs) inter-modal term weighted up
          _pairwise(1.0, 100, 5, _NEW2), _pairwise(1.0, 100, 5, "method.loss.new_weight=2.5"),
          _pairwise(1.0, 100, 5, "method.loss.new_weight=3.0"), _pairwise(1.0, 100, 5, "method.loss.new_weight=4.0"),
          _pairwise(1.0, 100, 4, _NEW2), _pairwise(1.0, 100, 6, _NEW2),
          _pairwise(1.0, 100, 6, _NEW2, "method.loss.anchors_per_step=512"), _pairwise(1.0, 100, 5, "method.loss.anchors_per_step=256"),
          # memory against epochs, and the memory pairs' weight (balanced by default: about 1.6 at stage 2, 3.0 at stage 3)
          _pairwise(1.0, 150, 4), _pairwise(1.0, 200, 3), _pairwise(1.0, 75, 6, _NEW2), _pairwise(1.0, 50, 7, _NEW2),
          _pairwise(1.0, 100, 5, "method.loss.replay_weight=0.5"), _pairwise(1.0, 100, 5, _NEW2, "method.loss.replay_weight=3.0"),
          _pairwise(1.0, 100, 5, _NEW2, "method.loss.old_centers=majority"), _pairwise(1.0, 100, 5, "method.loss.eta=0.0")]
#: a setting is eligible only if its stage's training CPU is at most this fraction of retraining's, at both stages of the
#: selection seed (the issue's target: at least 80% less training time than retraining); every setting is measured and shown
CPU_TARGET = 0.20
#: the keys that name a setting (``extra``: further ``section.key=value`` overrides, e.g. a batch size)
SETTING_KEYS = ("lr_factor", "memory", "epochs", "loss", "extra")
SELECTION_SEED = 10
LOSS_TERMS = {"centers": ["method.loss.old_weight=0.0", "method.loss.new_weight=0.0"],
              "centers+pairwise": ["method.loss.old_weight=1.0", "method.loss.new_weight=1.0"],
              "pairwise": ["method.loss.center_weight=0.0", "method.loss.old_weight=1.0", "method.loss.new_weight=1.0"]}

#: how to read the openmoji tables
NOTES = [
    "Every stage runs from the previous stage of the same method (each lifelong variant and each fine-tuned chain keeps its own stored "
    "codes); retraining starts afresh at each stage.",
    "Fine-tuning uses the parent's learning rate (1e-3) and the chosen setting's epochs; at the lifelong stage's lr it forgot more "
    "(a first run of this benchmark, not kept).",
    "Stage 1 is a dcmh run through `hashlearn train`'s workflow (`train_run`) on a data set of frozen features (the towers' inputs are "
    "the standardised EfficientNet-Lite0 and MiniLM features); its split is checked to be the openmoji set's own.",
    "Selection: only settings at most 0.20x retraining's CPU at both stages of the selection seed are eligible; the chosen one (lr 2x "
    "the parent's, memory 100 per old group, 6 epochs, centers + pairwise with the within-batch term at new_weight 2) scored 0.785 "
    "at ratios 0.13 / 0.16. The last round's choice (lr 1x, 10 epochs, new_weight 1: 0.778) costs 0.25 / 0.29 and is out. new_weight 2 "
    "beat 1 wherever both were tried (lr 1x 5 epochs 0.774 vs 0.767, 6 epochs 0.775 vs 0.767, lr 2x 5 epochs 0.773 vs 0.763); 2.5 "
    "tied (0.775), 3 and 4 scored lower (0.769, 0.759). Each of these scored below its base: a cosine schedule, center_weight 2 or 0.5, "
    "old_weight 2 or 0.5, replay_weight 0.5 or 3, old_centers 'majority', eta 0, anchors_per_step 256, more memory at fewer epochs "
    "(150 x 4: 0.751, 200 x 3: 0.734); batch 32 gained 0.1 point at 5 epochs for about 40% more CPU (0.20 at stage 3: out). "
    "anchors_per_step 512 at lr 1x, 6 epochs scored 0.779 (0.775 without). Validation is 70 / 90 pairs at stages 2 / 3 (10 per "
    "group), so differences of a point are within its noise; the chosen row's lead comes from stage 2 (0.794).",
    "Where lifelong loses, 32 bits: to retraining on every cell of 'all' -- I->T 3.3 points at stage 2 (0.627 vs 0.660), 5.5 at stage "
    "3 (0.643 vs 0.698); T->I 3.6 (0.830 vs 0.866) and 4.2 (0.823 vs 0.865): the target 'within 3 points of retraining' is missed in "
    "all four. At stage 2 the loss is on the new groups (I->T new 0.474 vs 0.549, T->I 0.704 vs 0.773; old 0.739 vs 0.731); at stage 3 "
    "on the old ones (I->T old 0.576 vs 0.649).",
    "Where lifelong loses, 64 bits: stage 2 is within 3 points (I->T 0.664 vs 0.669, T->I 0.859 vs 0.877); stage 3 misses on I->T "
    "by 4.0 points (0.651 vs 0.691) and meets it on T->I (0.854 vs 0.877, 2.3 points).",
    "Against naive fine-tuning on the old groups it is far ahead at both widths (32 bits, I->T old 0.739 / 0.576 vs finetune-frozen "
    "0.659 / 0.236), and above fine-tuning with the same memory on every 'all' cell (32 bits I->T 0.627 / 0.643 vs 0.610 / 0.581).",
    "CPU: a stage costs 0.213x retraining's at stage 2 and 0.159x at stage 3 (32 bits; 64 bits 0.228x and 0.174x): the 0.20 target "
    "is met at stage 3 at both widths and missed at stage 2 at both. Per seed the stage-2 ratio is 0.118-0.264 (32 bits) and "
    "0.189-0.283 (64 bits): a stage's own CPU is 1.4-2.5 s, retraining's 6.3-16.7 s, and retraining early-stops at a different epoch "
    "per seed (on the selection seed it ran 11.7 s, where the chosen setting measured 0.13). These rows were measured at the landed "
    "code (the old classes' majority centers no longer a BLAS call; multi-hot relevance as packed words in every validation metric); "
    "mAP is the same as in the two earlier measurements of this setting, whose CPU ratios were 0.248 / 0.139 and 0.233 / 0.156 "
    "(32 bits), 0.240 / 0.184 and 0.253 / 0.217 (64 bits): single CPU measurements on shared cores move by a few hundredths.",
    "mAP@all is over the stage's whole database (714 / 1,203 / 1,645 pairs with seed 0); 100 / 175 / 225 query pairs, so the "
    "stage-3 'new' column averages 50 query pairs per seed.",
]

_FEATURES: dict = {}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def raw_features():
    """(the 32 px openmoji set, EfficientNet-Lite0 features of the 64 px renders, MiniLM embeddings of the texts), cached."""
    if not _FEATURES:
        from hashlearn.data import extract_features, load_dataset

        base = load_dataset(DATASET)
        _FEATURES.update(base=base, image=extract_features(load_dataset(DATASET, image_size=64).images, "efficientnet-lite0"),
                         text=extract_features(base.texts, "minilm"))
    return _FEATURES["base"], _FEATURES["image"], _FEATURES["text"]


def feature_dataset(seed: int):
    """The openmoji pairs with frozen features on both sides, standardised by the stage-1 training pairs of ``seed``; its
    stage splits are checked to be those of the openmoji set itself."""
    from hashlearn.data.incremental import make_stage_splits
    from hashlearn.data.paired import PairedDataset

    base, image, text = raw_features()
    splits = make_stage_splits(base, PROTOCOL, seed=seed)
    train = splits[0].train

    def standardise(x):
        return ((x - x[train].mean(0)) / (x[train].std(0) + 1e-6)).astype(np.float32)

    dataset = PairedDataset(DATASET, standardise(image), base.labels, texts=base.texts, text_vectors=standardise(text), meta=base.meta)
    for mine, theirs in zip(make_stage_splits(dataset, PROTOCOL, seed=seed), splits):
        assert all(np.array_equal(getattr(mine, p), getattr(theirs, p)) for p in ("query", "database", "train", "validation"))
    return dataset, splits


def stage1_config(seed: int, n_bits: int):
    from hashlearn.runs import resolve_config

    return resolve_config(overrides=[f"data.dataset={DATASET}", f"data.protocol={PROTOCOL}", f"data.seed={seed}", f"method.name={METHOD}",
                                     f"method.n_bits={n_bits}", f"trainer.epochs={STAGE1['epochs']}", f"trainer.lr={STAGE1['lr']}",
                                     f"trainer.batch_size={STAGE1['batch_size']}", f"trainer.patience={STAGE1['patience']}",
                                     f"trainer.seed={seed}", "trainer.val_k=100000", "model.hidden=[512]"])


def stage_overrides(setting: dict) -> list[str]:
    return [f"trainer.lr={STAGE1['lr'] * setting['lr_factor']}", *LOSS_TERMS[setting["loss"]], *setting.get("extra", ())]


def setting_of(row: dict) -> dict:
    """The setting a sweep row measured (``extra`` as a list, ``[]`` when it has none)."""
    return {key: list(row.get(key) or []) if key == "extra" else row[key] for key in SETTING_KEYS}


def meets_cpu_target(row: dict) -> bool:
    return row["cpu_ratio_stage2"] <= CPU_TARGET and row["cpu_ratio_stage3"] <= CPU_TARGET


def inputs(dataset, index):
    return dataset.image_inputs(index), dataset.text_inputs(index)


def encode(model, dataset, index) -> dict:
    image, text = inputs(dataset, index)
    return {"image": model.encode(image, "image"), "text": model.encode(text, "text")}


def metrics_at_all(query_codes: dict, query_labels, db_codes: dict, db_labels, new_classes) -> dict:
    """``{"I->T all", "I->T old", "I->T new", "T->I ..."}``: mAP over the whole database."""
    from hashlearn.runs.lifelong import crossmodal_stage_metrics

    k = len(db_labels)
    found = crossmodal_stage_metrics(query_codes, query_labels, db_codes, db_labels, new_classes, k=k)
    return {f"{d} {part}": found[f"{d} mAP@{k}{suffix}"] for d in ("I->T", "T->I") for part, suffix in (("all", ""), ("old", "_old"), ("new", "_new"))}


def dcmh_fit(model, dataset, train_index, val_index, run_dir: Path, *, n_bits, epochs, lr, seed, patience=None):
    """DCMH training with a checkpoint every epoch in ``run_dir``, as a lifelong stage (and ``hashlearn train``) writes."""
    from hashlearn.losses import build_objective
    from hashlearn.train import TrainConfig, Trainer

    config = TrainConfig(epochs=epochs, lr=lr, batch_size=STAGE1["batch_size"], seed=seed, val_k=100000, patience=patience)
    objective = build_objective(METHOD, n_bits, dataset.n_classes)
    labels = dataset.labels
    Path(run_dir).mkdir(parents=True)
    return Trainer(config).fit(model, objective, train=(inputs(dataset, train_index), labels[train_index]),
                               val=(inputs(dataset, val_index), labels[val_index]), run_dir=run_dir)


def retrain_cpu(dataset, splits, number: int, seed: int, n_bits: int, run_dir: Path) -> tuple:
    """A fresh DCMH model trained as stage 1 on every stage's training pairs so far: (model, wall s, CPU s)."""
    from hashlearn.models.two_tower import build_two_tower

    train_index = np.sort(np.concatenate([s.train for s in splits[:number]]))
    val_index = np.sort(np.concatenate([s.validation for s in splits[:number]]))
    model = build_two_tower(n_bits, dataset.images.shape[1:], dataset.text_vectors.shape[1:], seed=seed, hidden=(512,))
    _, wall, cpu = timed(lambda: dcmh_fit(model, dataset, train_index, val_index, run_dir, n_bits=n_bits, epochs=STAGE1["epochs"], lr=STAGE1["lr"],
                                          seed=seed, patience=STAGE1["patience"]))
    return model, wall, cpu


def select_stage_settings(work: Path, sweep=None, n_bits: int = SELECTION_BITS) -> list[dict]:
    """Each setting of ``sweep`` (default SWEEP) as a chain stage 2 -> stage 3 from one stage-1 run of SELECTION_SEED (not
    an evaluated seed) at ``n_bits``, scored by the mean of the two stages' validation metrics (every stage's validation pairs
    so far, I->T and T->I, against the stored old codes + the new training pairs' codes); the CPU ratio of each stage against
    retraining on the same seed decides eligibility (``meets_cpu_target``)."""
    from hashlearn.runs import train_run
    from hashlearn.runs.lifelong import lifelong_run

    dataset, splits = feature_dataset(SELECTION_SEED)
    train_run(stage1_config(SELECTION_SEED, n_bits), work / "select1", dataset=dataset)
    retrain = {number: retrain_cpu(dataset, splits, number, SELECTION_SEED, n_bits, work / f"retrain-{number}")[2] for number in (2, 3)}
    rows = []
    for setting in SWEEP if sweep is None else sweep:
        row = {"n_bits": n_bits, "seed": SELECTION_SEED, **setting_of({"extra": [], **setting}), "retrain_cpu_s": retrain}
        parent = work / "select1"
        for number in (2, 3):
            out = work / f"select{number}"
            record = lifelong_run(parent, out, epochs=setting["epochs"], dataset=dataset, replay_per_class=setting["memory"],
                                  overrides=stage_overrides(setting), overwrite=True)
            row[f"val_mAP_stage{number}"] = json.loads((out / "train_result.json").read_text())["best_metric"]
            row[f"cpu_s_stage{number}"] = record["train_cpu_seconds"]
            row[f"cpu_ratio_stage{number}"] = record["train_cpu_seconds"] / retrain[number]
            parent = out
        row["val_mAP"] = (row["val_mAP_stage2"] + row["val_mAP_stage3"]) / 2
        row["eligible"] = meets_cpu_target(row)
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return rows


def chosen_setting(rows: list[dict]) -> dict:
    """The eligible setting (CPU ratio <= CPU_TARGET at both stages) with the best validation score."""
    eligible = [r for r in rows if meets_cpu_target(r)]
    if not eligible:
        raise ValueError(f"no setting of the sweep meets the CPU target ({CPU_TARGET}x retraining at both stages); add cheaper ones.")
    return setting_of(max(eligible, key=lambda r: r["val_mAP"]))


def stage_rows(seed: int, n_bits: int, work: Path, chosen: dict) -> list[dict]:
    """Every method at stages 1-3 for one seed and code length."""
    from hashlearn.data.incremental import get_incremental_protocol
    from hashlearn.runs import train_run
    from hashlearn.runs.lifelong import _replay_items, lifelong_run
    from hashlearn.runs.run import Run, load_run

    dataset, splits = feature_dataset(seed)
    protocol = get_incremental_protocol(DATASET, PROTOCOL).for_dataset(dataset)
    labels = dataset.labels
    base = {"seed": seed, "n_bits": n_bits}
    (model, _), wall, cpu = timed(lambda: train_run(stage1_config(seed, n_bits), work / "stage1", dataset=dataset))
    first = splits[0]
    stored1 = encode(model, dataset, first.database)
    rows = [{**base, "stage": 1, "method": f"stage 1 ({METHOD})", "train_cpu_s": cpu, "train_wall_s": wall,
             **metrics_at_all(encode(model, dataset, first.query), labels[first.query], stored1, labels[first.database],
                              protocol.stages[0].classes)}]
    variants = [("lifelong", chosen["memory"]), ("lifelong (no memory)", 0)]
    parents, tuned_models = {}, {}
    frozen = {"stage1": (stored1, first.database)}
    for number in (2, 3):
        split, new_classes = splits[number - 1], protocol.stages[number - 1].classes
        q_labels = labels[split.query]
        for name, memory in variants:
            out = work / f"{name.replace(' ', '_')}-{number}"
            record = lifelong_run(parents.get(name, work / "stage1"), out, epochs=chosen["epochs"], dataset=dataset,
                                  replay_per_class=memory, overrides=stage_overrides(chosen))
            run = load_run(out)
            db = {m: run.load_codes("database", m) for m in ("image", "text")}
            rows.append({**base, "stage": number, "method": name, "train_cpu_s": record["train_cpu_seconds"],
                         "train_wall_s": record["train_seconds"], "n_memory": record["n_replay"],
                         **metrics_at_all(encode(run.load_model(), dataset, split.query), q_labels, {m: c for m, (c, _) in db.items()},
                                          labels[db["image"][1]], new_classes)})
            parents[name] = out
        fresh, wall, cpu = retrain_cpu(dataset, splits, number, seed, n_bits, work / f"retrain-{number}")
        rows.append({**base, "stage": number, "method": "retrain", "train_cpu_s": cpu, "train_wall_s": wall,
                     **metrics_at_all(encode(fresh, dataset, split.query), q_labels, encode(fresh, dataset, split.database),
                                      labels[split.database], new_classes)})
        val_index = np.sort(np.concatenate([s.validation for s in splits[:number]]))
        for name, memory in (("finetune", 0), ("finetune+memory", chosen["memory"])):
            tuned = tuned_models.get(name) or Run(work / "stage1").load_model()
            train_index = np.concatenate([split.train, _replay_items(splits[: number - 1], labels, memory, seed + number)])
            _, wall, cpu = timed(lambda: dcmh_fit(tuned, dataset, train_index, val_index, work / f"{name}-{number}", n_bits=n_bits, epochs=chosen["epochs"],
                                                  lr=STAGE1["lr"], seed=seed))
            tuned_models[name] = tuned
            old_codes, old_ids = frozen.get(name, frozen["stage1"])
            new_ids = np.setdiff1d(split.database, old_ids)
            new_codes = encode(tuned, dataset, new_ids)
            kept = {m: np.concatenate([old_codes[m], new_codes[m]]) for m in ("image", "text")}
            kept_ids = np.concatenate([old_ids, new_ids])
            frozen[name] = (kept, kept_ids)
            queries = encode(tuned, dataset, split.query)
            timing = {"train_cpu_s": cpu, "train_wall_s": wall}
            rows.append({**base, "stage": number, "method": f"{name}-frozen", **timing,
                         **metrics_at_all(queries, q_labels, kept, labels[kept_ids], new_classes)})
            if memory == 0:
                rows.append({**base, "stage": number, "method": f"{name}-reencode", **timing,
                             **metrics_at_all(queries, q_labels, encode(tuned, dataset, split.database), labels[split.database], new_classes)})
    return rows


# --- the section of lifelong.md ------------------------------------------------------------------
def stage_table(rows: list[dict]) -> list[str]:
    """One code length's table: medians over its seeds, per stage and method."""
    from lifelong import fmt, median  # the Fashion-MNIST part's table helpers

    lines = ["| stage | method | I->T all | I->T old | I->T new | T->I all | T->I old | T->I new | train CPU s | CPU vs retrain |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for stage in (1, 2, 3):
        cells = [r for r in rows if r["stage"] == stage]
        retrain = median([r["train_cpu_s"] for r in cells if r["method"] == "retrain"])
        for method in dict.fromkeys(r["method"] for r in cells):
            mine = [r for r in cells if r["method"] == method]
            cpu = median([r["train_cpu_s"] for r in mine])
            ratio = f"{cpu / retrain:.3f}" if retrain and method != "retrain" else "-"
            values = [fmt(median([r[f"{d} {part}"] for r in mine]), 3) for d in ("I->T", "T->I") for part in ("all", "old", "new")]
            lines.append(f"| {stage} | {method} | " + " | ".join(values) + f" | {fmt(cpu, 1)} | {ratio} |")
    return lines


def section_lines(results: dict | None = None) -> list[str]:
    """The openmoji section of ``lifelong.md`` (empty when the part file does not exist): a table per code length, the
    validation sweep, the notes."""
    if results is None:
        if not PART.exists():
            return []
        results = json.loads(PART.read_text())
    rows = results.get("stages", [])
    widths = sorted({r["n_bits"] for r in rows})
    lines = [f"## Cross-modal: openmoji image-text pairs by emoji group (two towers, {' and '.join(map(str, widths)) or '-'} bits)", "",
             f"Written by `benchmarks/lifelong.py --dataset openmoji` (`benchmarks/lifelong_openmoji.py`) into "
             f"`benchmarks/results/{PART.name}`. Machine: {results.get('machine', '?')}.", "", results.get("protocol", ""), "",
             "Medians over the seeds named above each table; mAP@all against the stage's whole database "
             "(I->T: image queries ranking the stored text codes; T->I: text queries ranking the stored image codes); old / new: the "
             "query pairs of the earlier / the new stage's groups. Train CPU: the training call's process CPU; every method's training "
             "writes a checkpoint per epoch into a run directory (as `hashlearn train` does). CPU vs retrain: the median over seeds of the "
             "method's CPU / the median of retraining's. Every width uses the stage setting chosen at "
             f"{SELECTION_BITS} bits (below).", ""]
    for n_bits in widths:
        mine = [r for r in rows if r["n_bits"] == n_bits]
        seeds = sorted({r["seed"] for r in mine})
        lines += [f"### {n_bits} bits (seeds {seeds}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''})", "", *stage_table(mine), ""]
    selection = results.get("selection", [])
    if selection:
        chosen = chosen_setting(selection)
        lines += [f"### Stage settings chosen on validation (seed {SELECTION_SEED}, {SELECTION_BITS} bits, stages 2 and 3 chained; "
                  "not an evaluated seed)", "",
                  "Validation mAP: every stage's validation pairs so far, I->T and T->I averaged, against the stored old codes + the new "
                  "training pairs' codes; the score is the mean of the two stages'. Memory: earlier training pairs per old group, "
                  "weighted (new pairs per new class) / (memory pairs per old class) unless `replay_weight` is set. Loss: `centers` is the "
                  "single-modal stages' (`STAGE_LOSS`); `+pairwise` adds the inter-modal terms against the stored codes and within the "
                  "batch (old_weight 1, new_weight 1); `pairwise` drops the centers. Other: further overrides of the stage's config. "
                  f"Eligible: the stage's training CPU at most {CPU_TARGET:.2f}x retraining's at both stages (the time target), one "
                  "measurement each on shared cores (noisy); the best eligible score is chosen and is a two-tower stage's default "
                  "(`CROSSMODAL_STAGE_*`).", "",
                  "| lr (x parent's 1e-3) | memory | epochs | loss | other | val mAP stage 2 | val mAP stage 3 | score | "
                  "CPU ratio stage 2 / 3 | eligible | chosen |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in selection:
            mark = "yes" if setting_of(r) == chosen else ""
            other = ", ".join(f"`{o.split('.', 1)[1]}`" for o in r.get("extra") or []) or "-"
            lines.append(f"| {r['lr_factor']} | {r['memory']} | {r['epochs']} | {r['loss']} | {other} | {r['val_mAP_stage2']:.4f} | "
                         f"{r['val_mAP_stage3']:.4f} | {r['val_mAP']:.4f} | {r['cpu_ratio_stage2']:.2f} / {r['cpu_ratio_stage3']:.2f} | "
                         f"{'yes' if meets_cpu_target(r) else 'no'} | {mark} |")
        lines.append("")
    lines += ["### Notes (openmoji)", "", *[f"- {note}" for note in NOTES], ""]
    return lines


def run(seeds, bits=BITS, fresh: bool = False) -> None:
    """Measure (skipping the (seed, bits) the part file already holds), then re-render ``lifelong.md`` after each."""
    from hashlearn._io import atomic_write_json
    from hashlearn._progress import set_quiet
    from hashlearn.data.incremental import get_incremental_protocol

    torch.set_num_threads(1)
    set_quiet(True)
    results = json.loads(PART.read_text()) if PART.exists() and not fresh else {"stages": [], "selection": []}
    results.update(machine=f"{platform.node()}: {os.cpu_count()} cores shared with other jobs (load average {os.getloadavg()[0]:.0f} at "
                           f"start), {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
                   protocol=f"Protocol `{PROTOCOL}`: " + get_incremental_protocol(DATASET, PROTOCOL).description
                            + f". EfficientNet-Lite0 (64 px renders) and MiniLM features standardised by the stage-1 training pairs; "
                            f"MLP towers hidden 512; stage 1 and retraining: {METHOD} {STAGE1['epochs']} epochs (early stop "
                            f"{STAGE1['patience']}), lr {STAGE1['lr']}, batch {STAGE1['batch_size']}.")
    if not results["selection"]:
        work = Path(tempfile.mkdtemp(prefix="hashlearn-lifelong-om-"))
        try:
            results["selection"] = select_stage_settings(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        atomic_write_json(PART, results)
    chosen = chosen_setting(results["selection"])
    print("chosen", chosen, flush=True)
    for n_bits in bits:
        for seed in seeds:
            if any(r["seed"] == seed and r["n_bits"] == n_bits for r in results["stages"]):
                continue
            work = Path(tempfile.mkdtemp(prefix="hashlearn-lifelong-om-"))
            try:
                rows = stage_rows(seed, n_bits, work, chosen)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            for row in rows:
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            results["stages"] += rows
            atomic_write_json(PART, results)
            render()


def render() -> None:
    """Re-render ``lifelong.md``: its Fashion-MNIST tables from ``lifelong.json``, then this section."""
    import lifelong

    lifelong.write_tables(json.loads((RESULTS / "lifelong.json").read_text()))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=list(BITS))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    run(args.seeds, bits=args.bits, fresh=args.fresh)
