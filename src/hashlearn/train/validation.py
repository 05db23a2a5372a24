"""Validation metric of the trainer: mAP@k of validation codes against training codes.

Model selection uses only the validation split (queries) and the training
split (database) -- never the query split of the evaluation protocol.
"""

from __future__ import annotations

import numpy as np
import torch


def retrieval_map(query_codes, db_codes, query_labels, db_labels, k: int | None = 1000) -> float:
    """mAP@k with ties broken by ascending database id (the one switch point to the metrics module)."""
    try:
        from hashlearn.eval.metrics import mean_average_precision
    except ImportError:  # the metrics module is not on this branch yet
        return _fallback_map(query_codes, db_codes, query_labels, db_labels, k)
    return float(mean_average_precision(query_codes, db_codes, query_labels, db_labels, k=k))


def _fallback_map(query_codes, db_codes, query_labels, db_labels, k):
    from hashlearn.codes import codes_to_pm1, validate_codes

    query_codes, db_codes = validate_codes(query_codes), validate_codes(db_codes)
    n_bits = query_codes.shape[1] * 8
    q, d = codes_to_pm1(query_codes, n_bits), codes_to_pm1(db_codes, n_bits)
    k = len(d) if k is None else min(k, len(d))
    query_labels, db_labels = np.asarray(query_labels), np.asarray(db_labels)
    scores = []
    for start in range(0, len(q), 256):
        distances = np.rint((n_bits - q[start : start + 256] @ d.T) / 2).astype(np.int32)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]  # stable: ties by ascending id
        for row, ranked in enumerate(order):
            label = query_labels[start + row]
            if db_labels.ndim == 1:
                relevant = db_labels[ranked] == label
            else:
                relevant = ((db_labels[ranked] > 0) & (label > 0)).any(axis=1)
            hits = np.cumsum(relevant)
            n_relevant = hits[-1] if len(hits) else 0
            ranks = np.arange(1, len(ranked) + 1)
            scores.append(float((relevant * hits / ranks).sum() / n_relevant) if n_relevant else 0.0)
    return float(np.mean(scores)) if scores else 0.0


@torch.no_grad()
def model_outputs(model: torch.nn.Module, X: torch.Tensor, batch_size: int, device: str) -> np.ndarray:
    """Continuous outputs of ``model`` on ``X`` in eval mode; the caller's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        chunks = [model(X[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy()


def default_val_metric(train, val, k: int, batch_size: int, device: str):
    """mAP@k of the val split's codes as queries against the train split's codes."""
    from hashlearn.codes import sign_to_codes

    X_train, y_train = train
    X_val, y_val = val

    def val_metric(model, X_val_=None, y_val_=None) -> float:
        db_codes = sign_to_codes(model_outputs(model, X_train, batch_size, device))
        query_codes = sign_to_codes(model_outputs(model, X_val, batch_size, device))
        return retrieval_map(query_codes, db_codes, y_val.numpy(), y_train.numpy(), k=k)

    return val_metric
