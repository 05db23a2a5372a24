"""The lifelong workflow: a trained run updated on the next stage's data only; old database codes frozen.

``hashlearn train --set data.protocol=class-incremental ...`` trains stage 1
of an incremental protocol (:mod:`hashlearn.data.incremental`).
:func:`lifelong_run` then makes stage ``k + 1`` from a stage-``k`` run:

1. the parent's database codes are the **frozen old codes** (a stage-1 run's
   are encoded once by its own model, if ``evaluate`` has not kept them yet);
2. the parent's model is trained further on the new stage's training items plus
   a small exemplar memory of earlier training items (``DEFAULT_REPLAY`` per old
   class), with the ``lifelong`` loss (:mod:`hashlearn.losses.lifelong`): new
   classes are pulled to hash centers far from the old classes' centers, which
   are the bitwise majority of their stored codes; memory items to their class's
   stored center, weighted so that each old class counts as much as a new one.
   Selection on every stage's validation items so far, searched against the old
   codes plus the new training codes;
3. only the new stage's database items are encoded; the run's
   ``codes/database_*`` hold the old codes unchanged (bit for bit) followed by
   the new ones, and ``evaluate``, ``encode`` and ``index build`` use them as
   they are;
4. ``lifelong.json`` records the parent, the stage, and the model version
   (the sha256 of the weights) that produced each block of database codes.

An interrupted stage continues from its checkpoint with ``resume=True``
(``hashlearn lifelong ... --resume``); the checkpoint folder records how the stage
started (``STAGE_START``), and a resume from another parent or with other memory
settings is refused.

:func:`append_stage_to_index` adds a stage's new codes to a saved index
(Flat, MIH, sharded ...) without rebuilding it, and records the block in the
index file's header (``info["blocks"]``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json, sha256_bytes
from hashlearn.runs.config import RunConfig
from hashlearn.runs.data import load_run_dataset, run_inputs
from hashlearn.runs.run import Run, load_run

LIFELONG_METHOD = "lifelong"
#: the loss of a two-tower (cross-modal) stage: the lifelong loss across modalities
CROSSMODAL_LIFELONG_METHOD = "lifelong-crossmodal"
#: a stage trains at this multiple of the parent's learning rate (unless --set trainer.lr=...)
#: and with these loss arguments (unless --set method.loss.*=...): chosen on validation in benchmarks/results/lifelong.md
STAGE_LR_FACTOR = 5.0
STAGE_LOSS = {"center_weight": 1.0, "new_weight": 0.0, "old_weight": 0.0, "old_centers": "recorded"}
#: exemplar memory of a stage: earlier training items per old class (--replay)
DEFAULT_REPLAY = 200
#: a two-tower stage's defaults, chosen on validation in the openmoji section of benchmarks/results/lifelong.md among the
#: settings whose CPU is at most 0.20x retraining's: twice the parent's lr, the pairwise terms on top of the centers (the
#: within-batch inter-modal term at weight 2, the one against the stored codes at 1), 100 memory pairs per old class
#: (group), 6 epochs
CROSSMODAL_STAGE_LR_FACTOR = 2.0
CROSSMODAL_STAGE_LOSS = {**STAGE_LOSS, "new_weight": 2.0, "old_weight": 1.0}
CROSSMODAL_DEFAULT_REPLAY = 100
CROSSMODAL_STAGE_EPOCHS = 6
#: the validation metric of a stage searches at most this many stored old codes (an evenly spaced subset)
VAL_MAX_OLD = 5000
#: ... and at most this many validation items (None: all)
VAL_MAX_QUERIES = 400
FORMAT_VERSION = 1
#: how a stage started (parent, its model version, memory settings, the old codes' sha256), in its checkpoint folder
STAGE_START = "lifelong_stage.json"


def model_version(run: Run) -> str:
    """The version of a run's deep model: the first 16 hex digits of its weights' sha256 (from ``model.json``)."""
    from hashlearn._io import MAX_JSON_BYTES, parse_json_bytes, read_bounded

    path = run.model_dir / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"run {run.path} has no deep model ({path}); lifelong stages update deep hash models only.")
    info = parse_json_bytes(read_bounded(path, MAX_JSON_BYTES, "model file"), str(path))
    sha = info.get("sha256") if isinstance(info, dict) else None
    if not isinstance(sha, str) or len(sha) < 16:
        from hashlearn._io import sha256_file

        sha = sha256_file(run.model_dir / "model.safetensors")
    return sha[:16]


def stage_of(run: Run) -> dict:
    """``{"protocol", "stage", "stage_name", "n_stages", "classes", "seen_classes"}`` of a run trained on an incremental protocol."""
    from hashlearn.data.incremental import is_incremental

    config = run.config
    if not is_incremental(config.data.dataset, config.data.protocol):
        raise ValueError(f"run {run.path} was trained on protocol {config.data.protocol!r} of {config.data.dataset!r}, not an incremental one; "
                         "train stage 1 with `hashlearn train ... --set data.protocol=class-incremental`.")
    record = run.load_split().meta.get("incremental")
    if not isinstance(record, dict) or "stage" not in record:
        raise ValueError(f"the split of run {run.path} records no incremental stage; retrain stage 1 with an incremental protocol.")
    return record


def _database_blocks(run: Run, ids: np.ndarray) -> list[dict]:
    """The per-stage blocks of a run's database codes: the lifelong record's, or one block for a stage-1 run."""
    record = run.load_lifelong()
    if record is not None:
        return list(record["blocks"])
    stage = stage_of(run)
    return [_block(stage["stage"], stage["stage_name"], model_version(run), run, ids)]


def _block(stage: int, stage_name: str, version: str, run: Run, ids: np.ndarray) -> dict:
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    return {"stage": int(stage), "stage_name": stage_name, "model_version": version, "run": str(run.path.resolve()),
            "n": int(len(ids)), "ids_sha256": sha256_bytes(ids.tobytes())}


def frozen_database_codes(run: Run, dataset=None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, ids)`` of a run's database as they are stored (a stage-1 run: encoded once by its model and kept)."""
    if run.is_lifelong_stage:
        return run.load_codes("database")
    split = run.load_split()
    codes_path, _ = run.codes_path("database")
    if codes_path.exists():
        codes, ids = run.load_codes("database")
        if np.array_equal(np.sort(ids), split.database):
            return codes, ids
    from hashlearn.runs.evaluate import encode_parts

    return encode_parts(run, ("database",), dataset=dataset)["database"]


def frozen_crossmodal_database_codes(run: Run, dataset) -> tuple[dict, np.ndarray]:
    """``({"image": codes, "text": codes}, ids)`` of a two-tower run's database pairs as they are stored (a stage-1 run:
    encoded once by its model and kept, both sides); one row per pair, in the same order on both sides."""
    from hashlearn.runs.crossmodal import MODALITIES, encode_crossmodal

    split = run.load_split()
    stored = all(run.codes_path("database", m)[0].exists() for m in MODALITIES)
    if stored or run.is_lifelong_stage:
        sides = {m: run.load_codes("database", m) for m in MODALITIES}
        ids = sides["image"][1]
        if not np.array_equal(ids, sides["text"][1]):
            from hashlearn.errors import CorruptFileError

            raise CorruptFileError(f"run {run.path}: the stored image and text database codes are of different pairs (their ids differ).")
        if run.is_lifelong_stage or np.array_equal(np.sort(ids), split.database):
            return {m: codes for m, (codes, _) in sides.items()}, ids
    encoded = encode_crossmodal(run, run.load_model(), dataset, parts=("database",))
    return {m: encoded[("database", m)][0] for m in MODALITIES}, encoded[("database", "image")][1]


def _codes_sha256(codes) -> str:
    """The sha256 of stored codes: one array, or both sides of a cross-modal database (image bytes, then text bytes)."""
    if isinstance(codes, dict):
        return sha256_bytes(b"".join(np.ascontiguousarray(codes[m]).tobytes() for m in ("image", "text")))
    return sha256_bytes(np.ascontiguousarray(codes).tobytes())


def _stage_inputs(dataset, index: np.ndarray, features: str, paired: bool):
    """Model inputs of the items ``index``: one array, or a two-tower model's ``(image inputs, text inputs)``."""
    if paired:
        from hashlearn.runs.crossmodal import paired_inputs

        return paired_inputs(dataset, index, features)
    return run_inputs(dataset, index, features)


def _encode(model, inputs, paired: bool, name: str):
    """Packed codes of ``inputs``: one array, or ``{"image": ..., "text": ...}`` for a two-tower model."""
    if paired:
        return {modality: model.encode(x, modality) for modality, x in zip(("image", "text"), inputs)}
    from hashlearn.runs.evaluate import encode_array

    return encode_array(model, inputs, name=name)


def lifelong_run(parent: Run | str | Path, run_dir: str | Path, *, stage: int | str | None = None, epochs: int | None = None,
                 overrides: list[str] | tuple[str, ...] = (), overwrite: bool = False, dataset=None, k: int = 1000,
                 replay_per_class: int | None = None, freeze_backbone: bool = False, resume: bool = False) -> dict:
    """Train the stage after ``parent``'s into ``run_dir`` (see the module docstring); returns the stage record.

    ``stage`` (a number or a stage name) must be the parent's next stage; ``epochs``
    defaults to the parent's, the learning rate to ``STAGE_LR_FACTOR`` times the parent's; ``overrides`` are ``section.key=value`` strings applied on
    top of the parent's config (e.g. ``method.loss.old_weight=2.0``, ``trainer.lr=3e-4``). A two-tower parent's stage defaults to
    ``CROSSMODAL_STAGE_EPOCHS`` epochs (at most the parent's), ``CROSSMODAL_STAGE_LR_FACTOR``, ``CROSSMODAL_STAGE_LOSS`` and
    ``CROSSMODAL_DEFAULT_REPLAY``.
    The record holds the mAP@``k`` of old-class, new-class and all queries against the grown database.

    ``replay_per_class`` (default ``DEFAULT_REPLAY``, two-tower ``CROSSMODAL_DEFAULT_REPLAY``; 0: the new stage's data only) adds that
    many training inputs per old class, drawn (seeded) from the earlier stages' training
    items -- an exemplar memory; their stored codes stay as they are, like every old code.
    Unless ``method.loss.replay_weight`` is set, the memory items are weighted by (new
    training items per new class) / (memory items per old class), and the weight is
    recorded in the stage's config. ``freeze_backbone`` trains the hash head only.

    ``resume`` continues an interrupted stage in ``run_dir`` from its checkpoint: it must be
    a stage of this ``parent`` (same run, same model version, same stored old codes) that
    has not finished; it keeps its own config (``epochs`` may raise the count, ``overrides``
    are refused) and its memory settings (``replay_per_class`` and ``freeze_backbone``
    must be the ones it started with).
    """
    from hashlearn._validation import check_positive_int

    if replay_per_class is not None:
        replay_per_class = check_positive_int(replay_per_class, "replay_per_class", minimum=0)
    from hashlearn.data.incremental import get_incremental_protocol, make_stage_splits
    from hashlearn.runs.train import check_device, prepare_run_dir

    parent = parent if isinstance(parent, Run) else load_run(parent)
    previous = stage_of(parent)
    protocol = get_incremental_protocol(parent.config.data.dataset, parent.config.data.protocol)
    number = previous["stage"] + 1 if stage is None else protocol.stage_number(stage)
    if number != previous["stage"] + 1:
        raise ValueError(f"--stage {stage}: run {parent.path} is stage {previous['stage']} ({previous['stage_name']!r}) of {protocol.name!r}; "
                         f"the next stage is {previous['stage'] + 1}" + ("" if previous["stage"] < len(protocol.stages) else " (there is none: it was the last)") + ".")
    if number > len(protocol.stages):
        raise ValueError(f"run {parent.path} is the last stage ({previous['stage_name']!r}) of protocol {protocol.name!r}; there is no stage {number}.")
    model = parent.load_model()
    from hashlearn.models import HashModel
    from hashlearn.models.two_tower import TwoTowerHashModel

    if not isinstance(model, (HashModel, TwoTowerHashModel)):
        raise ValueError(f"run {parent.path} holds a {type(model).__name__}; lifelong stages update deep hash models, single-modal "
                         "or two-tower (not shallow estimators or classifiers).")
    paired = isinstance(model, TwoTowerHashModel)
    if replay_per_class is None:
        replay_per_class = CROSSMODAL_DEFAULT_REPLAY if paired else DEFAULT_REPLAY
    if Path(run_dir).resolve() == parent.path.resolve():
        raise ValueError("--run-dir must differ from the parent run: a stage is a new run, the parent stays as it was.")
    started_as = {"parent": str(parent.path.resolve()), "parent_model_version": model_version(parent), "stage": number,
                  "replay_per_class": replay_per_class, "freeze_backbone": bool(freeze_backbone)}
    if resume:
        run = prepare_run_dir(run_dir, resume=True, overwrite=overwrite)
        config = _resumed_stage_config(run, started_as, epochs, overrides)
        check_device(config.trainer.device)
    else:  # the config and device are checked before the run directory is made
        if paired:
            config = _stage_config(parent.config, min(CROSSMODAL_STAGE_EPOCHS, parent.config.trainer.epochs) if epochs is None else epochs,
                                   overrides, CROSSMODAL_LIFELONG_METHOD, CROSSMODAL_STAGE_LR_FACTOR, CROSSMODAL_STAGE_LOSS)
        else:
            config = _stage_config(parent.config, epochs, overrides)
        check_device(config.trainer.device)
        run = prepare_run_dir(run_dir, overwrite=overwrite)

    dataset = dataset if dataset is not None else load_run_dataset(config.data)
    protocol = protocol.for_dataset(dataset)
    old_codes, old_ids = frozen_crossmodal_database_codes(parent, dataset) if paired else frozen_database_codes(parent, dataset)
    started_as["old_codes_sha256"] = _codes_sha256(old_codes)
    if resume and _read_stage_start(run)["old_codes_sha256"] != started_as["old_codes_sha256"]:
        raise ValueError(f"--resume: the stored database codes of parent {parent.path} changed since stage run {run.path} started; "
                         "train the stage afresh with --overwrite.")
    splits = make_stage_splits(dataset, protocol, seed=config.data.seed)
    split = splits[number - 1]
    if not np.array_equal(np.sort(old_ids), splits[number - 2].database):
        raise ValueError(f"run {parent.path}'s database does not match stage {number - 1} of {protocol.name!r} (seed {config.data.seed}); "
                         "was it trained on another seed or protocol?")
    new_ids = np.setdiff1d(split.database, old_ids)
    started = time.perf_counter()
    labels = dataset.labels
    replay = _replay_items(splits[: number - 1], labels, replay_per_class, config.data.seed + number)
    if len(replay) and "replay_weight" not in config.method.loss:
        config.method.loss["replay_weight"] = balanced_replay_weight(labels[split.train], labels[replay])
    run.save_split(split)
    run.save_config(config)
    if not resume:  # what --resume must find again: kept in the checkpoint folder, removed with it
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.checkpoint_dir / STAGE_START, {"format_version": FORMAT_VERSION, **started_as})
    train_index = np.concatenate([split.train, replay])
    X_train = _stage_inputs(dataset, train_index, config.data.features, paired)
    y_train = labels[train_index]
    if config.method.loss.get("memory_targets", "centers") == "codes" and len(replay) and not paired:
        y_train = _memory_code_targets(y_train, dataset.n_classes, config.method.n_bits, old_codes, old_ids, train_index)
    # selection also sees the earlier stages' validation items (held out, never trained on): old-class queries
    val_index = np.concatenate([s.validation for s in splits[:number]])
    X_val = _stage_inputs(dataset, val_index, config.data.features, paired)
    parent_record = parent.load_lifelong()
    recorded = {int(c): center for c, center in (parent_record or {}).get("centers", {}).items()}
    n_new_train = len(split.train)
    new_train = (tuple(x[:n_new_train] for x in X_train) if paired else X_train[:n_new_train], labels[split.train])
    seconds, cpu_seconds, centers = _train_stage(run, config, model, dataset.n_classes, (X_train, y_train), (X_val, labels[val_index]),
                                                 old_codes, labels[old_ids], freeze_backbone=freeze_backbone, recorded_centers=recorded,
                                                 new_train=new_train, resume=resume)
    new_codes = _encode(model, _stage_inputs(dataset, new_ids, config.data.features, paired), paired,
                        name=f"the new database items of stage {number}")
    ids = np.concatenate([old_ids, new_ids])
    if paired:  # each side: the stored codes unchanged, then the new pairs'
        codes = {m: np.concatenate([old_codes[m], new_codes[m]]) for m in ("image", "text")}
        for modality, side in codes.items():
            run.save_codes("database", side, ids, modality)
    else:
        codes = np.concatenate([old_codes, new_codes])
        run.save_codes("database", codes, ids)
    record = {
        "format_version": FORMAT_VERSION, "parent": str(parent.path.resolve()), "protocol": protocol.name, "stage": number,
        "stage_name": protocol.stages[number - 1].name, "classes": list(protocol.stages[number - 1].classes),
        "seen_classes": split.meta["incremental"]["seen_classes"], "model_version": model_version(run),
        "parent_model_version": model_version(parent), "n_old": int(len(old_ids)), "n_new": int(len(new_ids)),
        "n_train": int(len(split.train)), "resumed": bool(resume), "n_replay": int(len(replay)), "replay_ids_sha256": sha256_bytes(np.sort(replay).tobytes()), "train_seconds": seconds, "train_cpu_seconds": cpu_seconds, "seconds": time.perf_counter() - started,
        "old_codes_sha256": started_as["old_codes_sha256"], **({"modalities": ["image", "text"]} if paired else {}),
        # the ±1 center each seen class was trained toward (the next stage's old_centers="recorded" reuses them)
        "centers": {str(c): centers[c] for c in split.meta["incremental"]["seen_classes"]} if centers is not None else {},
        "blocks": _database_blocks(parent, old_ids) + [_block(number, protocol.stages[number - 1].name, model_version(run), run, new_ids)],
    }
    query_codes = _encode(model, _stage_inputs(dataset, split.query, config.data.features, paired), paired, name="the queries")
    metrics = crossmodal_stage_metrics if paired else stage_metrics
    record["metrics"] = metrics(query_codes, labels[split.query], codes, labels[ids], protocol.stages[number - 1].classes, k=k)
    atomic_write_json(run.lifelong_path, record)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return record


def _read_stage_start(run: Run) -> dict:
    from hashlearn._io import MAX_JSON_BYTES, parse_json_bytes, read_bounded

    path = run.checkpoint_dir / STAGE_START
    if not path.is_file():
        raise ValueError(f"--resume: {run.path} is not an interrupted lifelong stage (no {path}); "
                         "continue a `hashlearn train` run with `hashlearn train --resume`.")
    record = parse_json_bytes(read_bounded(path, MAX_JSON_BYTES, "stage start record"), str(path))
    if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a stage start record of format {FORMAT_VERSION}.")
    return record


def _resumed_stage_config(run: Run, started_as: dict, epochs: int | None, overrides) -> RunConfig:
    """The config an interrupted stage started with, after checking that ``started_as`` is how it started."""
    if run.is_lifelong_stage:
        raise ValueError(f"--resume: stage run {run.path} has finished ({Run.LIFELONG}); there is nothing to continue.")
    record = _read_stage_start(run)
    for key, value in started_as.items():
        if record.get(key) != value:
            raise ValueError(f"--resume: stage run {run.path} started with {key}={record.get(key)!r}, not {value!r}; "
                             "resume it with the parent and memory settings it started with, or train it afresh with --overwrite.")
    if overrides:
        raise ValueError("--resume continues the stage's own config; --set is not allowed (only --epochs may raise the count).")
    config = run.config
    if epochs is not None:
        if epochs < config.trainer.epochs:
            raise ValueError(f"--resume --epochs {epochs}: the stage was started for {config.trainer.epochs} epochs; it may only be raised.")
        config.trainer.epochs = epochs
    return config.validate()


def _replay_items(earlier, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` training items of each earlier class, from the earlier stages' training parts (seeded)."""
    if not per_class or not earlier:
        return np.zeros(0, dtype=np.int64)
    pool = np.concatenate([split.train for split in earlier])
    rng = np.random.default_rng(seed)
    strata = labels[pool] if labels.ndim == 1 else np.argmax(labels[pool], axis=1)
    chosen = [rng.choice(pool[strata == c], min(per_class, int((strata == c).sum())), replace=False) for c in np.unique(strata)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _memory_code_targets(labels: np.ndarray, n_classes: int, n_bits: int, old_codes: np.ndarray, old_ids: np.ndarray,
                         train_index: np.ndarray) -> np.ndarray:
    """Training targets carrying the stored code of each training item that has one (the memory; see ``with_stored_codes``)."""
    from hashlearn.codes import codes_to_pm1
    from hashlearn.losses.lifelong import with_stored_codes

    order = np.argsort(old_ids)
    position = np.searchsorted(old_ids[order], train_index).clip(0, len(old_ids) - 1)
    has_code = old_ids[order][position] == train_index
    codes = np.zeros((len(train_index), n_bits), dtype=np.int8)
    codes[has_code] = codes_to_pm1(old_codes[order][position[has_code]], n_bits)
    return with_stored_codes(labels, n_classes, codes, has_code)


def balanced_replay_weight(new_labels: np.ndarray, memory_labels: np.ndarray) -> float:
    """(new training items per new class) / (memory items per old class): each old class then weighs as much as a new one.

    >>> balanced_replay_weight(np.repeat([5, 6, 7], 500), np.repeat([0, 1, 2, 3, 4], 50))
    10.0
    """
    def per_class(labels):
        labels = np.asarray(labels)
        counts = np.bincount(labels) if labels.ndim == 1 else labels.sum(axis=0)
        return float(len(labels)) / max(int((np.asarray(counts) > 0).sum()), 1)

    return round(per_class(new_labels) / per_class(memory_labels), 6)


def _stage_config(parent: RunConfig, epochs: int | None, overrides, method: str = LIFELONG_METHOD, lr_factor: float = STAGE_LR_FACTOR,
                  loss: dict = STAGE_LOSS) -> RunConfig:
    """The parent's config with the lifelong loss ``method`` and its arguments ``loss`` (the parent's dropped), ``lr_factor``
    times the parent's learning rate, and the overrides applied."""
    from hashlearn.train.config import _set_path, parse_override

    values = parent.to_dict()
    values["method"] = {**values["method"], "name": method, "loss": dict(loss), "quantization_weight": None, "quantizer": {}}
    values["trainer"] = {**values["trainer"], "lr": values["trainer"]["lr"] * lr_factor}
    config = RunConfig.from_dict(values)
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] == "data" or keys[:2] in (["method", "name"], ["method", "n_bits"]):
            raise ValueError(f"--set {text}: a lifelong stage keeps the parent's data, method and code length; only the loss arguments "
                             "(method.loss.*), the model's dropout and the trainer settings may change.")
        _set_path(config, keys, value)
    if epochs is not None:
        config.trainer.epochs = epochs
    return config.validate()


def _train_stage(run: Run, config: RunConfig, model, n_classes: int, train, val, old_codes: np.ndarray, old_labels: np.ndarray, *,
                 freeze_backbone: bool = False, recorded_centers: dict | None = None, new_train=None,
                 resume: bool = False) -> tuple[float, float, list | None]:
    """Train ``model`` in place with the lifelong loss (``config.method.name``) against the fixed old codes.

    ``train = (X, y)``: ``y`` the loss's targets (labels, or ``with_stored_codes`` rows); ``new_train = (X, labels)``:
    the new stage's training items, searched with the old codes by the validation metric (default ``train``).
    A two-tower model takes ``X = (image inputs, text inputs)`` and ``old_codes = {"image": ..., "text": ...}``.

    Returns the training's wall and CPU seconds and the loss's class centers as ±1 lists (``None`` without a center term).
    """
    from hashlearn.losses import build_objective
    from hashlearn.train.trainer import Trainer

    objective = build_objective(config.method.name, config.method.n_bits, n_classes, **config.method.loss)
    paired = isinstance(old_codes, dict)
    objective.locality.set_old_database((old_codes["image"], old_codes["text"]) if paired else old_codes, old_labels,
                                        seed=config.trainer.seed, recorded_centers=recorded_centers)
    backbones = [model.image_tower.backbone, model.text_tower.backbone] if paired else [model.backbone]
    frozen = [p for backbone in backbones for p in backbone.parameters() if p.requires_grad] if freeze_backbone else []
    for parameter in frozen:
        parameter.requires_grad_(False)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        Trainer(config.trainer).fit(model, objective, train=train, val=val, run_dir=run.path, resume=resume,
                                    val_metric=old_and_new_val_metric(train if new_train is None else new_train, old_codes, old_labels, config.trainer.val_k))
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    locality = objective.locality
    centers = locality.centers.cpu().numpy().astype(int).tolist() if locality.center_weight else None
    return seconds, cpu_seconds, centers


def old_and_new_val_metric(train, old_codes: np.ndarray, old_labels: np.ndarray, k: int, max_old: int = VAL_MAX_OLD,
                           max_queries: int | None = VAL_MAX_QUERIES):
    """Validation mAP@k of the validation codes against (old codes + new training codes).

    With a two-tower model (``train = ((image inputs, text inputs), labels)``, ``old_codes = {"image": ..., "text": ...}``)
    it is the mean of image->text and text->image: validation image codes against the old and training text codes, and back.

    The lifelong workflow passes the validation items of every stage so far: the new
    classes' items reward new codes that keep apart from the old codes, the old classes'
    items reward a model whose old-class queries still find their classes' stored codes.
    At most ``max_old`` old codes and ``max_queries`` validation items (fixed, evenly spaced
    subsets; ``None``: every item) keep it cheap: it runs after every epoch, and on a short stage
    it costs as much CPU as the training itself.
    """
    from hashlearn.eval.metrics import mean_average_precision

    paired = isinstance(old_codes, dict)
    step = max(1, len(old_labels) // max_old)
    old_codes = {m: codes[::step] for m, codes in old_codes.items()} if paired else old_codes[::step]
    old_labels = old_labels[::step]
    X_train, y_train = train
    db_labels = np.concatenate([old_labels, np.asarray(y_train)])
    as_array = lambda x: x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)  # noqa: E731

    def metric(model, X_val, y_val) -> float:
        if max_queries is not None and len(y_val) > max_queries:
            pick = slice(None, None, -(-len(y_val) // max_queries))
            X_val, y_val = (tuple(x[pick] for x in X_val) if paired else X_val[pick]), y_val[pick]
        y_val = as_array(y_val)
        if not paired:
            db_codes = np.concatenate([old_codes, model.encode(X_train)])
            return mean_average_precision(model.encode(as_array(X_val)), db_codes, y_val, db_labels, k=min(k, len(db_codes)))
        sides = dict(zip(("image", "text"), range(2)))
        maps = []
        for query_side, db_side in (("image", "text"), ("text", "image")):
            db_codes = np.concatenate([old_codes[db_side], model.encode(X_train[sides[db_side]], db_side)])
            query_codes = model.encode(as_array(X_val[sides[query_side]]), query_side)
            maps.append(mean_average_precision(query_codes, db_codes, y_val, db_labels, k=min(k, len(db_codes))))
        return sum(maps) / 2

    return metric


def stage_metrics(query_codes, query_labels, db_codes, db_labels, new_classes, k: int = 1000) -> dict:
    """mAP@k of the old-class, new-class and all queries against one database (a query is "new" if it has a new class)."""
    from hashlearn.eval.metrics import average_precisions

    query_labels = np.asarray(query_labels)
    ap = average_precisions(query_codes, db_codes, query_labels, db_labels, k=min(k, len(db_codes)))
    new_classes = np.asarray(list(new_classes))
    is_new = np.isin(query_labels, new_classes) if query_labels.ndim == 1 else query_labels[:, new_classes].any(axis=1)
    mean = lambda values: float(values.mean()) if len(values) else None  # noqa: E731
    return {f"mAP@{k}": mean(ap), f"mAP@{k}_old": mean(ap[~is_new]), f"mAP@{k}_new": mean(ap[is_new]),
            "n_query_old": int((~is_new).sum()), "n_query_new": int(is_new.sum()), "k": int(k)}


def crossmodal_stage_metrics(query_codes: dict, query_labels, db_codes: dict, db_labels, new_classes, k: int = 1000) -> dict:
    """:func:`stage_metrics` of image queries against the text database (``I->T ...`` keys) and of text queries against the
    image database (``T->I ...``); the plain ``mAP@k*`` keys are the mean of the two directions."""
    per_direction = {direction: stage_metrics(query_codes[query_side], query_labels, db_codes[db_side], db_labels, new_classes, k=k)
                     for direction, query_side, db_side in (("I->T", "image", "text"), ("T->I", "text", "image"))}
    first = per_direction["I->T"]
    out = {key: value for key, value in first.items() if not key.startswith("mAP")}
    for key in (key for key in first if key.startswith("mAP")):
        values = [row[key] for row in per_direction.values()]
        out[key] = None if None in values else sum(values) / 2
        out.update({f"{direction} {key}": row[key] for direction, row in per_direction.items()})
    return out


def append_stage_to_index(run: Run | str | Path, index_path: str | Path, output: str | Path | None = None, *,
                          modality: str | None = None) -> dict:
    """Add a lifelong stage's new database codes to the index file at ``index_path`` without rebuilding it.

    The index must hold exactly the parent stage's database (ids = dataset rows, as
    ``hashlearn index build --model PARENT`` writes them, or an earlier append). The
    file is rewritten atomically at ``output`` (default: in place) with ``info["blocks"]``
    extended by this stage's block: stage, model version, run, count and the sha256 of its ids.
    A two-tower stage appends one side of its pairs: ``modality`` ``"image"`` or ``"text"``, the
    side the index holds (``hashlearn index build --model PARENT --modality ...``).
    """
    from hashlearn.index.io import load_index, read_header, save_index

    run = run if isinstance(run, Run) else load_run(run)
    record = run.load_lifelong()
    if record is None:
        raise ValueError(f"run {run.path} is not a lifelong stage (no {Run.LIFELONG}); build its index with `hashlearn index build`.")
    header = read_header(index_path)
    info = dict(header.get("info") or {})
    if "modalities" in record:  # a two-tower stage: one side per index
        if modality not in record["modalities"] or info.get("modality", modality) != modality:
            raise ValueError(f"run {run.path} is a two-tower stage: pass modality 'image' or 'text' (--modality), the side "
                             f"{index_path} holds ({info.get('modality', 'not recorded')}); got {modality!r}.")
        codes, ids = run.load_codes("database", modality)
    elif modality is not None:
        raise ValueError(f"modality {modality!r}: run {run.path} is a single-modal stage; its index holds its one kind of code.")
    else:
        codes, ids = run.load_codes("database")
    n_old = record["n_old"]
    old_ids, new_ids, new_codes = ids[:n_old], ids[n_old:], codes[n_old:]
    blocks = info.get("blocks")
    if blocks is None:  # an index built from the parent run: its one block is the parent's database
        blocks = record["blocks"][:-1]
    elif blocks != record["blocks"][: len(blocks)] or len(blocks) != len(record["blocks"]) - 1:
        raise ValueError(f"{index_path} holds the blocks of stages {[b['stage'] for b in blocks]}; run {run.path} appends stage "
                         f"{record['stage']} onto stages {[b['stage'] for b in record['blocks'][:-1]]}. Append the stages in order.")
    index = load_index(index_path)
    try:
        if index.ntotal != n_old:
            raise ValueError(f"{index_path} holds {index.ntotal} codes; stage {record['stage'] - 1}'s database has {n_old}: "
                             "it is not the parent stage's index.")
        stored = getattr(index, "ids", None)
        if stored is not None and not np.array_equal(np.sort(np.asarray(stored)), np.sort(old_ids)):
            raise ValueError(f"{index_path} holds other ids than stage {record['stage'] - 1}'s database (ids = dataset rows expected).")
        index.add(new_codes, new_ids)
        info.update({"blocks": blocks + [record["blocks"][-1]], "ids": "dataset row indices", "run": str(run.path.resolve()),
                     "method": run.config.method.name})
        path = save_index(index, output if output is not None else index_path, info=info)
        ntotal = index.ntotal
    finally:
        getattr(index, "close", lambda: None)()
    return {"path": str(path), "kind": header["kind"], "n_added": int(len(new_ids)), "ntotal": int(ntotal), "blocks": info["blocks"]}


__all__ = ["append_stage_to_index", "balanced_replay_weight", "crossmodal_stage_metrics", "frozen_crossmodal_database_codes",
           "frozen_database_codes", "lifelong_run", "model_version", "old_and_new_val_metric", "stage_metrics", "stage_of"]
