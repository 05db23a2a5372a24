"""Evaluate codes under a protocol: the standard metrics in one call."""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.eval import metrics


def evaluate_codes(
    query_codes,
    db_codes,
    query_labels=None,
    db_labels=None,
    *,
    k: int = 1000,
    radius: int = 2,
    ground_truth_ids=None,
    with_pr_curve: bool = False,
) -> dict:
    """mAP@k, P@k and precision/recall within ``radius`` for labelled data;
    recall@k against float k-NN ground truth (``ground_truth_ids``) for unlabelled data.

    Returns a flat dict of floats; with ``with_pr_curve`` also ``pr_curve``
    (precision and recall within every Hamming radius) and ``pk_curve`` (P@k
    at 1, 2, 5, 10, ... up to ``k``), as lists, for reports.
    """
    results: dict = {}
    if query_labels is not None:
        k = check_positive_int(k, "k")
        results.update(metrics.ranking_metrics(query_codes, db_codes, query_labels, db_labels, map_ks=[k], precision_ks=[k]))
        curve = metrics.pr_curve(query_codes, db_codes, query_labels, db_labels)
        r = min(radius, len(curve.radii) - 1)
        results[f"P@r={radius}"] = float(curve.precision[r])
        results[f"R@r={radius}"] = float(curve.recall[r])
        if with_pr_curve:
            results["pr_curve"] = {"radius": curve.radii.tolist(), "precision": curve.precision.tolist(), "recall": curve.recall.tolist()}
            ks = metrics.default_curve_ks(len(db_codes), k)
            precision = metrics.precision_at_k_curve(query_codes, db_codes, query_labels, db_labels, ks)
            results["pk_curve"] = {"k": ks, "precision": precision.tolist()}
    if ground_truth_ids is not None:
        ground_truth_ids = np.asarray(ground_truth_ids)
        results[f"recall{ground_truth_ids.shape[1]}@{k}"] = metrics.recall_at_k(query_codes, db_codes, ground_truth_ids, k)
    if not results:
        raise ValueError("evaluate_codes needs labels (query_labels and db_labels) or ground_truth_ids.")
    return results
