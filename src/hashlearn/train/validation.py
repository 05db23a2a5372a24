"""Validation metric of the trainer: mAP@k of validation codes against training codes.

Model selection uses only the validation split (queries) and the training
split (database) -- never the query split of the evaluation protocol.
"""

from __future__ import annotations

import numpy as np
import torch


def retrieval_map(query_codes, db_codes, query_labels, db_labels, k: int | None = 1000) -> float:
    """mAP@k with ties broken by ascending database id (the metrics module's definition)."""
    from hashlearn.eval.metrics import mean_average_precision

    return float(mean_average_precision(query_codes, db_codes, query_labels, db_labels, k=k))


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
