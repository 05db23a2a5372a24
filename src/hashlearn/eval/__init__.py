"""Evaluation: metrics (pure functions), the evaluator, reports and plots."""

from hashlearn.eval.evaluator import evaluate_codes
from hashlearn.eval.metrics import (
    PRCurve,
    average_precisions,
    float_knn,
    float_mean_average_precision,
    hamming_distance_matrix,
    mean_average_precision,
    pr_curve,
    precision_at_k,
    precision_recall_at_radius,
    rank_by_hamming,
    recall_at_k,
)

__all__ = [
    "PRCurve",
    "average_precisions",
    "evaluate_codes",
    "float_knn",
    "float_mean_average_precision",
    "hamming_distance_matrix",
    "mean_average_precision",
    "pr_curve",
    "precision_at_k",
    "precision_recall_at_radius",
    "rank_by_hamming",
    "recall_at_k",
]
