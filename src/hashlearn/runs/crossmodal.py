"""Cross-modal runs: a two-tower model trained, evaluated, attacked and indexed through the run directory.

A run on a paired data set (``dataset.modality == "paired"``: openmoji,
mirflickr25k, nus-wide, ms-coco) trains a
:class:`~hashlearn.models.two_tower.TwoTowerHashModel` with a cross-modal loss
(``dcmh``, ``ssah``, optionally ``+quantizer``); the generic workflows
(:func:`~hashlearn.runs.train_run`, :func:`~hashlearn.runs.evaluate_run`,
:func:`~hashlearn.runs.attack_run`) hand such runs to this module. Inputs per
``data.features``:

=======================  ====================================  ==========================================
``data.features``        image tower input                     text tower input
=======================  ====================================  ==========================================
``pixels``               pixels (small CNN) or the set's       the set's text vectors (bag-of-words /
                         image features (``XAll``, MLP)        tags, MLP)
``efficientnet``         frozen EfficientNet-Lite0 features    the set's text vectors
``minilm``               pixels / the set's image features     frozen MiniLM embeddings of the texts
``efficientnet+minilm``  frozen EfficientNet-Lite0 features    frozen MiniLM embeddings
=======================  ====================================  ==========================================

The service hook: :func:`query_inputs` turns raw queries of one modality (texts
as strings, images as arrays) into that tower's inputs, so a text can be
encoded with ``model.encode(query_inputs(run, texts, "text"), "text")`` and
searched in an index built from the image side (``hashlearn index build
--model R --modality image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn.runs.run import Run, save_npy

MODALITIES = ("image", "text")
PAIRED_FEATURES = {
    "pixels": ("raw", "raw"),
    "efficientnet": ("efficientnet-lite0", "raw"),
    "minilm": ("raw", "minilm"),
    "efficientnet+minilm": ("efficientnet-lite0", "minilm"),
}


def is_paired(dataset) -> bool:
    return getattr(dataset, "modality", None) == "paired"


def _check_features(features: str) -> tuple[str, str]:
    if features not in PAIRED_FEATURES:
        raise ValueError(f"data.features of a paired data set must be one of {', '.join(PAIRED_FEATURES)}, got {features!r}.")
    return PAIRED_FEATURES[features]


def modality_inputs(dataset, index, features: str, modality: str) -> np.ndarray:
    """Float32 inputs of one tower for the pairs ``index`` (frozen features are cached by the feature cache)."""
    from hashlearn.data.features import extract_features

    image_kind, text_kind = _check_features(features)
    index = np.asarray(index)
    if modality == "image":
        if image_kind == "raw" or dataset.image_kind == "features":
            return dataset.image_inputs(index)
        return extract_features(dataset.images[index], image_kind)
    if modality == "text":
        if text_kind == "raw":
            return dataset.text_inputs(index)
        return extract_features(dataset.text_items(index), text_kind)
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")


def paired_inputs(dataset, index, features: str) -> tuple[np.ndarray, np.ndarray]:
    return modality_inputs(dataset, index, features, "image"), modality_inputs(dataset, index, features, "text")


def query_inputs(run: Run, queries, modality: str, dataset=None) -> np.ndarray:
    """Tower inputs of raw queries: texts (list of str) become the run's text representation (bag-of-words over
    the data set's vocabulary, or MiniLM embeddings); images (``(n, C, H, W)`` uint8 or float in [0, 1]) pixels or
    EfficientNet features. The hook the service uses for text->image and image->text search."""
    from hashlearn.data.features import extract_features
    from hashlearn.data.paired import bag_of_words
    from hashlearn.runs.data import load_run_dataset

    image_kind, text_kind = _check_features(run.config.data.features)
    if modality == "text":
        if isinstance(queries, str) or not all(isinstance(q, str) for q in queries):
            raise TypeError("text queries must be a list of str.")
        if text_kind != "raw":
            return extract_features(list(queries), text_kind, use_cache=False)
        dataset = dataset if dataset is not None else load_run_dataset(run.config.data)
        vocabulary = dataset.meta.get("vocabulary")
        if vocabulary is None:
            raise ValueError(f"data set {dataset.name!r} has text vectors without a vocabulary: raw text queries cannot be encoded; "
                             "pass text vectors instead.")
        return bag_of_words(list(queries), vocabulary)
    if modality == "image":
        from hashlearn.data.encoders import prepare_images

        images = prepare_images(queries)
        return images if image_kind == "raw" else extract_features(images, image_kind, use_cache=False)
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")


def train_crossmodal(run: Run, config, dataset, split, resume: bool):
    """Build the two-tower model and the cross-modal objective of ``config`` and train them into ``run``."""
    from hashlearn.losses import build_objective, loss_spec
    from hashlearn.models.two_tower import TwoTowerHashModel, default_tower
    from hashlearn.train.trainer import Trainer

    import torch

    if not getattr(loss_spec(config.method.name).cls, "cross_modal", False):
        raise ValueError(f"dataset {dataset.name!r} is paired (image-text): choose a cross-modal method (dcmh, ssah, "
                         f"optionally +quantizer), got {config.method.name!r}.")
    if config.method.is_shallow:
        raise ValueError(f"shallow estimators hash one modality; dataset {dataset.name!r} needs a cross-modal method (dcmh, ssah).")
    train_x = paired_inputs(dataset, split.train, config.data.features)
    val_x = paired_inputs(dataset, split.validation, config.data.features)
    hidden = config.model.hidden if config.model.hidden is not None else (512,)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.trainer.seed)
        model = TwoTowerHashModel(config.method.n_bits, default_tower(train_x[0].shape[1:], hidden), default_tower(train_x[1].shape[1:], hidden))
        extra = {} if config.method.quantization_weight is None else {"quantization_weight": float(config.method.quantization_weight)}
        objective = build_objective(config.method.name, config.method.n_bits, dataset.n_classes, **extra, **config.method.loss)
    result = Trainer(config.trainer).fit(model, objective, train=(train_x, dataset.labels[split.train]),
                                         val=(val_x, dataset.labels[split.validation]), run_dir=run.path, resume=resume)
    return model, result


def encode_crossmodal(run: Run, model, dataset, parts=("query", "database"), keep: bool = True) -> dict:
    """``{(part, modality): (codes, ids)}``; with ``keep`` written as ``codes/<part>_<modality>_codes.npy`` / ``_ids.npy``.

    The database of a lifelong stage (``hashlearn lifelong``) is read as stored: its old codes are frozen, never re-encoded."""
    split = run.load_split()
    out = {}
    for part in parts:
        ids = np.arange(len(dataset)) if part == "all" else getattr(split, part)
        for modality in MODALITIES:
            if part == "database" and run.is_lifelong_stage:
                out[(part, modality)] = run.load_codes(part, modality)
                continue
            codes = model.encode(modality_inputs(dataset, ids, run.config.data.features, modality), modality)
            if keep:
                run.save_codes(part, codes, ids, modality)
            out[(part, modality)] = (codes, np.asarray(ids, dtype=np.int64))
    return out


def evaluate_crossmodal_run(run: Run, *, k: int = 100, dataset=None) -> dict:
    """I->T, T->I, I->I and T->T mAP@all, mAP@k, P@k and PR curves of the run's queries against its database."""
    from hashlearn.eval.crossmodal import evaluate_crossmodal
    from hashlearn.runs.data import load_run_dataset

    dataset = dataset if dataset is not None else load_run_dataset(run.config.data)
    model = run.load_model()
    codes = encode_crossmodal(run, model, dataset)
    query_ids, db_ids = codes[("query", "image")][1], codes[("database", "image")][1]
    report = evaluate_crossmodal(codes[("query", "image")][0], codes[("query", "text")][0], codes[("database", "image")][0],
                                 codes[("database", "text")][0], dataset.labels[query_ids], dataset.labels[db_ids], k=k,
                                 with_pr_curve=True)
    flat = {f"{direction} {metric}": value for direction, row in report.items() if isinstance(row, dict)
            for metric, value in row.items() if metric != "pr_curve"}
    results = {"method": run.config.method.name, "cross_modal": True, "n_bits": model.n_bits, "dataset": dataset.name,
               "features": run.config.data.features, "n_query": len(query_ids), "n_database": len(db_ids),
               "cross_mean mAP@all": report["cross_mean"], **flat,
               "pr_curves": {direction: row["pr_curve"] for direction, row in report.items() if isinstance(row, dict)}}
    run.save_metrics(results)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return results


#: attack budgets of the run workflow per modality when the caller gives none: pixels L-inf 8/255;
#: binary bag-of-words L2 0.5 (half of one token's presence); sentence embeddings (unit norm) L2 0.25
DEFAULT_BUDGETS = {"pixels": ("linf", 8 / 255), "bow": ("l2", 0.5), "embedding": ("l2", 0.25), "image-features": ("l2", 0.5)}


def _input_kind(dataset, features: str, modality: str) -> str:
    image_kind, text_kind = _check_features(features)
    if modality == "image":
        return "pixels" if image_kind == "raw" and dataset.image_kind == "pixels" else "image-features"
    return "bow" if text_kind == "raw" else "embedding"


def attack_crossmodal_run(run: Run, attack: str = "cmla", *, modality: str = "image", eps: float | None = None,
                          norm: str | None = None, steps: int = 100, intra_weight: float = 0.5, n_queries: int | None = None,
                          seed: int = 0, save_adv: bool = False, dataset=None, cmla_form: str = "instance",
                          same_weight: float = 1.0) -> dict:
    """Attack the ``modality`` side of the run's query pairs (``cmla``: away from the paired codes; ``hag``:
    away from the own codes); cross- and same-modality mAP@all before and after, written to ``attack/<attack>-<modality>.json``.

    ``cmla_form="labels"``: CMLA's label form (the paper's objective) with the training pairs' clean codes and
    labels as references, similar and dissimilar references weighted equally, ``theta_scale = 1 / n_bits``
    (the settings of ``benchmarks/crossmodal.py``); written to ``attack/cmla-labels-<modality>.json``.
    ``cmla_form="target"``: the two-stage form (:class:`~hashlearn.attacks.cmla_target.CMLATarget`): a target code
    per query chosen against the training pairs' clean codes (``same_weight``: lambda of ``-AP_cross + lambda AP_same``),
    then reached within the budget, ``intra_weight`` on the kept bits; written to ``attack/cmla-target-<modality>.json``."""
    import torch

    from hashlearn.attacks import CMLA, HAG, CMLATarget
    from hashlearn.codes import sign_to_codes
    from hashlearn.eval.crossmodal import crossmodal_map
    from hashlearn.runs.data import load_run_dataset

    if attack not in ("cmla", "hag"):
        raise ValueError(f"attacks on a cross-modal run are 'cmla' and 'hag', got {attack!r}.")
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    if cmla_form not in ("instance", "labels", "target"):
        raise ValueError(f"cmla_form must be 'instance', 'labels' or 'target', got {cmla_form!r}.")
    if cmla_form != "instance" and attack != "cmla":
        raise ValueError(f"cmla_form applies to the cmla attack, not {attack!r}.")
    dataset = dataset if dataset is not None else load_run_dataset(run.config.data)
    model, split, features = run.load_model(), run.load_split(), run.config.data.features
    kind = _input_kind(dataset, features, modality)
    default_norm, default_eps = DEFAULT_BUDGETS[kind]
    norm, eps = norm or default_norm, float(eps if eps is not None else default_eps)
    clip = (0.0, 1.0) if kind in ("pixels", "bow") else None
    other = "text" if modality == "image" else "image"
    query = split.query[:n_queries]
    x = torch.from_numpy(modality_inputs(dataset, query, features, modality))
    paired = model.encode(modality_inputs(dataset, query, features, other), other)
    tower = model.tower(modality)
    if attack == "cmla" and cmla_form != "instance":
        reference = (model.encode(modality_inputs(dataset, split.train, features, modality), modality),
                     model.encode(modality_inputs(dataset, split.train, features, other), other), dataset.labels[split.train])
    if attack == "cmla" and cmla_form == "target":
        attacker = CMLATarget(tower, reference=reference, eps=eps, norm=norm, steps=steps, same_weight=same_weight,
                              intra_weight=intra_weight, seed=seed, clip=clip)
        result = attacker.attack(x, labels=dataset.labels[query])
    elif attack == "cmla" and cmla_form == "labels":
        attacker = CMLA(tower, eps=eps, norm=norm, steps=steps, intra_weight=intra_weight, seed=seed, clip=clip,
                        reference=reference, balanced=True, theta_scale=1.0 / model.n_bits)
        result = attacker.attack(x, paired, labels=dataset.labels[query])
    elif attack == "cmla":
        attacker = CMLA(tower, eps=eps, norm=norm, steps=steps, intra_weight=intra_weight, seed=seed, clip=clip)
        result = attacker.attack(x, paired)
    else:
        attacker = HAG(tower, eps=eps, norm=norm, steps=steps, seed=seed, clip=clip)
        result = attacker.attack(x)
    db = {m: model.encode(modality_inputs(dataset, split.database, features, m), m) for m in MODALITIES}
    clean = model.encode(x.numpy(), modality)
    adversarial = sign_to_codes(tower.transform(result.x_adv))
    cross, same = ("I->T", "I->I") if modality == "image" else ("T->I", "T->T")

    def maps(codes):
        queries = {modality: codes, other: paired}
        return crossmodal_map(queries["image"], queries["text"], db["image"], db["text"], dataset.labels[query],
                              dataset.labels[split.database], k=None, directions=[cross, same])

    before, after = maps(clean), maps(adversarial)
    report = {"run_dir": str(run.path), "dataset": dataset.name, "attack": attack, "modality": modality, "attack_repr": repr(attacker),
              "input_kind": kind, "norm": norm, "eps": eps, "steps": steps, "n_queries": len(query), "n_database": len(split.database),
              f"clean {cross} mAP": before[cross], f"attacked {cross} mAP": after[cross],
              f"clean {same} mAP": before[same], f"attacked {same} mAP": after[same],
              "mean distortion": float(np.mean(result.records[norm])), "mean bits flipped": float(np.mean(result.records["bits_flipped"])),
              "seconds per query": result.seconds_per_query}
    if "bits_from_paired" in result.records:
        report["mean bits from paired"] = float(np.mean(result.records["bits_from_paired"]))
    if "bits_planned" in result.records:
        report["mean bits planned"] = float(np.mean(result.records["bits_planned"]))
        report["mean bits reached"] = float(np.mean(result.records["bits_reached"]))
    name = f"{attack}-{cmla_form}-{modality}" if attack == "cmla" and cmla_form != "instance" else f"{attack}-{modality}"
    if attack == "cmla":
        report["cmla_form"] = cmla_form
    if save_adv:
        save_npy(run.attack_dir / f"{name}_adv.npy", result.x_adv.detach().cpu().numpy().astype(np.float32))
        save_npy(run.attack_dir / f"{name}_ids.npy", np.asarray(query, dtype=np.int64))
        report["adv_inputs"] = str(run.attack_dir / f"{name}_adv.npy")
    atomic_write_json(run.attack_path(name), report)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return report


def crossmodal_index_codes(run: Run, modality: str, *, dataset=None, part: str = "database") -> tuple[np.ndarray, np.ndarray]:
    """``(codes, ids)`` of one side of a run's pairs (``part`` of its split, or ``"all"``), for ``index build``."""
    from hashlearn.runs.data import load_run_dataset

    if modality not in MODALITIES:
        raise ValueError(f"--modality must be one of {MODALITIES}, got {modality!r}.")
    dataset = dataset if dataset is not None else load_run_dataset(run.config.data)
    if not is_paired(dataset):
        raise ValueError(f"dataset {dataset.name!r} is not paired; --modality applies to cross-modal runs only.")
    model = run.load_model()
    if not hasattr(model, "tower"):
        raise ValueError(f"run {run.path} holds a {type(model).__name__}, not a two-tower model; --modality needs a cross-modal run.")
    if part == "database" and run.is_lifelong_stage:  # frozen codes of earlier stages + this stage's: never re-encoded
        return run.load_codes(part, modality)
    ids = np.arange(len(dataset)) if part == "all" else getattr(run.load_split(), part)
    codes = model.encode(modality_inputs(dataset, ids, run.config.data.features, modality), modality)
    return codes, np.asarray(ids, dtype=np.int64)


__all__ = ["PAIRED_FEATURES", "attack_crossmodal_run", "crossmodal_index_codes", "encode_crossmodal", "evaluate_crossmodal_run",
           "is_paired", "modality_inputs", "paired_inputs", "query_inputs", "train_crossmodal"]
