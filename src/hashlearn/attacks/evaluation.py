"""How much an attack hurts retrieval: mAP, t-mAP, success rate, perturbation size, transfer.

Definitions (used by the benchmark, the CLI and the docs):

* **mAP@k** of attacked queries against the clean database codes, relevance by
  the queries' true labels (lower is a stronger untargeted attack); the
  *all-bits-flipped floor* is the mAP when each query code is replaced by its
  complement -- what an attack that flips every bit would reach.
* **t-mAP@k** (targeted mAP): the same ranking, relevance by the *target*
  label (higher is a stronger targeted attack).
* **success rate**, untargeted: the share of queries whose precision in the
  top ``precision_k`` (default 100) drops below half of its clean value, among
  queries whose clean precision is above zero (the others cannot get worse).
  Targeted: the share of queries with at least half of their top
  ``precision_k`` from the target label.
* **perturbation**: ``linf`` (max over queries) and ``rmse`` (median), on the
  input scale (``[0, 1]`` for images).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from hashlearn._validation import check_labels, check_positive_int
from hashlearn.attacks.base import AttackResult, HashAttack, _EvalMode
from hashlearn.codes import sign_to_codes, validate_codes
from hashlearn.eval.metrics import hamming_distance_blocks, mean_average_precision, rank_by_hamming

#: blocks of queries ranked at once (memory: block x n_db distances)
_BLOCK = 128


def complement_codes(codes) -> np.ndarray:
    """Every bit flipped: the code farthest from ``codes`` in Hamming space."""
    return np.bitwise_not(validate_codes(codes))


def precision_per_query(query_codes, db_codes, query_labels, db_labels, k: int = 100) -> np.ndarray:
    """Precision in the top ``min(k, n_db)`` of each query ``(nq,)``; ties by ascending database index."""
    query_codes = validate_codes(query_codes, name="query_codes")
    db_codes = validate_codes(db_codes, name="db_codes")
    query_labels = check_labels(query_labels, "query_labels", n_samples=len(query_codes))
    db_labels = check_labels(db_labels, "db_labels", n_samples=len(db_codes))
    k = min(check_positive_int(k, "k"), len(db_codes))
    out = np.empty(len(query_codes))
    for block, distances in hamming_distance_blocks(query_codes, db_codes, _BLOCK):
        ranked = rank_by_hamming(distances, k)
        if query_labels.ndim == 1:
            relevant = db_labels[ranked] == query_labels[block, None]
        else:
            relevant = (db_labels[ranked].astype(np.int32) * query_labels[block, None, :]).sum(axis=2) > 0
        out[block] = relevant.mean(axis=1)
    return out


def untargeted_success_rate(clean_precision: np.ndarray, adv_precision: np.ndarray) -> float:
    """Share of queries (with clean precision > 0) whose precision falls below half of clean."""
    clean_precision, adv_precision = np.asarray(clean_precision), np.asarray(adv_precision)
    if clean_precision.shape != adv_precision.shape:
        raise ValueError(f"clean_precision and adv_precision must have the same shape, got {clean_precision.shape} and {adv_precision.shape}.")
    degradable = clean_precision > 0
    if not degradable.any():
        return float("nan")
    return float((adv_precision[degradable] < 0.5 * clean_precision[degradable]).mean())


def targeted_success_rate(target_precision: np.ndarray) -> float:
    """Share of queries with at least half of their top-k from the target label."""
    return float((np.asarray(target_precision) >= 0.5).mean())


def evaluate_attack(
    attack: HashAttack,
    queries,
    query_labels,
    db_codes,
    db_labels,
    *,
    target_labels=None,
    k: int = 1000,
    precision_k: int = 100,
    result: AttackResult | None = None,
) -> dict:
    """Attack ``queries`` with ``attack`` (or reuse ``result``) and measure everything above.

    ``db_codes`` are the clean database codes of ``attack.model``. Targeted
    attacks need ``target_labels`` (class ids, one per query). Returns a flat
    dict of floats, JSON-ready.
    """
    query_labels = check_labels(query_labels, "query_labels", n_samples=len(queries))
    db_codes = validate_codes(db_codes, name="db_codes")
    if attack.targeted and target_labels is None:
        raise ValueError(f"{type(attack).__name__} is targeted: pass target_labels (one class id per query).")
    if result is None:
        result = attack.attack(queries, target_labels=target_labels) if attack.targeted else attack.attack(queries)
    model = attack.model
    clean_codes = model_codes(model, queries)
    adv_codes = model_codes(model, result.x_adv)
    report = {
        "attack": attack.name,
        "n_queries": int(len(queries)),
        "clean_map": mean_average_precision(clean_codes, db_codes, query_labels, db_labels, k=k),
        "adv_map": mean_average_precision(adv_codes, db_codes, query_labels, db_labels, k=k),
        "flipped_floor_map": mean_average_precision(complement_codes(clean_codes), db_codes, query_labels, db_labels, k=k),
        "linf_max": float(result.records["linf"].max()),
        "rmse_median": float(np.median(result.records["rmse"])),
        "bits_flipped_mean": float(result.records["bits_flipped"].mean()),
        "seconds_per_query": result.seconds_per_query,
    }
    if attack.targeted:
        target_labels = check_labels(target_labels, "target_labels", n_samples=len(queries))
        report["clean_tmap"] = mean_average_precision(clean_codes, db_codes, target_labels, db_labels, k=k)
        report["adv_tmap"] = mean_average_precision(adv_codes, db_codes, target_labels, db_labels, k=k)
        report["bits_to_target_mean"] = float(result.records["bits_to_target"].mean())
        target_precision = precision_per_query(adv_codes, db_codes, target_labels, db_labels, precision_k)
        report["success_rate"] = targeted_success_rate(target_precision)
    else:
        clean_precision = precision_per_query(clean_codes, db_codes, query_labels, db_labels, precision_k)
        adv_precision = precision_per_query(adv_codes, db_codes, query_labels, db_labels, precision_k)
        report["success_rate"] = untargeted_success_rate(clean_precision, adv_precision)
    return report


def model_codes(model: torch.nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """Packed codes of ``x`` under ``model`` in eval mode (each module's mode restored after)."""
    x = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x), dtype=torch.float32)
    with _EvalMode(model), torch.no_grad():
        device = next(model.parameters()).device
        outputs = [model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    return sign_to_codes(torch.cat(outputs))


def transfer_matrix(
    models: dict[str, torch.nn.Module],
    make_attack: Callable[[torch.nn.Module], HashAttack],
    queries,
    query_labels,
    databases: dict[str, np.ndarray],
    db_labels,
    *,
    k: int = 1000,
) -> dict[str, dict[str, float]]:
    """mAP@k on model B (columns) of queries perturbed on model A (rows).

    ``databases[name]`` are the clean database codes of ``models[name]`` (same
    items, same ``db_labels``). The diagonal is the white-box attack; row
    ``"clean"`` holds each model's unattacked mAP.
    """
    if set(models) != set(databases):
        raise ValueError(f"databases must have one entry per model {sorted(models)}, got {sorted(databases)}.")
    matrix = {"clean": {}}
    for name, model in models.items():
        matrix["clean"][name] = mean_average_precision(model_codes(model, queries), databases[name], query_labels, db_labels, k=k)
    for source, model in models.items():
        x_adv = make_attack(model).attack(queries).x_adv
        matrix[source] = {
            target: mean_average_precision(model_codes(victim, x_adv), databases[target], query_labels, db_labels, k=k)
            for target, victim in models.items()
        }
    return matrix


def robustness_report(
    model: torch.nn.Module,
    attacks: dict[str, HashAttack],
    queries,
    query_labels,
    db_codes,
    db_labels,
    *,
    target_labels=None,
    k: int = 1000,
) -> dict[str, dict]:
    """Clean mAP@k and :func:`evaluate_attack` of every attack in ``attacks`` (name -> attack on ``model``).

    The summary a defense is judged by: ``report["clean"]["map"]`` and, per
    attack, ``adv_map`` (and ``adv_tmap`` for targeted attacks, which use
    ``target_labels``).
    """
    for name, attack in attacks.items():
        if attack.model is not model:
            raise ValueError(f"attacks[{name!r}] attacks a different model than the one evaluated.")
    clean = mean_average_precision(model_codes(model, queries), db_codes, query_labels, db_labels, k=k)
    report = {"clean": {"map": clean, "n_queries": int(len(queries))}}
    for name, attack in attacks.items():
        targets = target_labels if attack.targeted else None
        report[name] = evaluate_attack(attack, queries, query_labels, db_codes, db_labels, target_labels=targets, k=k)
    return report
