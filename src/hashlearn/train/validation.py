"""Validation metric of the trainer: mAP@k of validation codes against training codes.

Model selection uses only the validation split (queries) and the training
split (database) -- never the query split of the evaluation protocol.
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn.models.inference import batched_outputs


def retrieval_map(query_codes, db_codes, query_labels, db_labels, k: int | None = 1000) -> float:
    """mAP@k with ties broken by ascending database id (the metrics module's definition)."""
    from hashlearn.eval.metrics import mean_average_precision

    return float(mean_average_precision(query_codes, db_codes, query_labels, db_labels, k=k))


@torch.no_grad()
def model_outputs(model: torch.nn.Module, X: torch.Tensor, batch_size: int, device: str) -> np.ndarray:
    """Continuous outputs of ``model`` on ``X`` in eval mode; the caller's mode is restored."""
    return batched_outputs(model, X, 0, batch_size, device)


def retrieval_recall(query_codes, db_codes, query_features, db_features, n_neighbors: int = 10, k: int = 10) -> float:
    """Recall ``n_neighbors``@``k``: share of each query's float nearest neighbours found in its top ``k``."""
    from hashlearn.eval.metrics import float_knn, recall_at_k

    truth = float_knn(query_features, db_features, n_neighbors)
    return float(recall_at_k(query_codes, db_codes, truth, k))


def default_val_metric(train, val, k: int, batch_size: int, device: str):
    """mAP@k of the val split's codes as queries against the train split's codes.

    With float feature targets (unsupervised training) it is recall 10@10
    against the float 10 nearest neighbours in the target space instead.
    """
    from hashlearn.codes import sign_to_codes
    from hashlearn.train.trainer import is_feature_target

    X_train, y_train = train
    X_val, y_val = val
    if isinstance(X_train, tuple):  # a two-tower model: cross-modal retrieval, both directions
        return crossmodal_val_metric(train, val, k, batch_size, device)
    if is_feature_target(y_train):
        truth_db, truth_query = y_train.numpy(), y_val.numpy()

        def recall_metric(model, X_val_=None, y_val_=None) -> float:
            db_codes = sign_to_codes(model_outputs(model, X_train, batch_size, device))
            query_codes = sign_to_codes(model_outputs(model, X_val, batch_size, device))
            return retrieval_recall(query_codes, db_codes, truth_query, truth_db)

        return recall_metric

    def val_metric(model, X_val_=None, y_val_=None) -> float:
        db_codes = sign_to_codes(model_outputs(model, X_train, batch_size, device))
        query_codes = sign_to_codes(model_outputs(model, X_val, batch_size, device))
        return retrieval_map(query_codes, db_codes, y_val.numpy(), y_train.numpy(), k=k)

    return val_metric


def crossmodal_val_metric(train, val, k: int, batch_size: int, device: str):
    """Mean of image->text and text->image mAP@k, validation pairs as queries against training pairs."""
    from hashlearn.codes import sign_to_codes

    (train_images, train_texts), y_train = train
    (val_images, val_texts), y_val = val

    def val_metric(model, X_val_=None, y_val_=None) -> float:
        codes = {}
        for modality, train_x, val_x in (("image", train_images, val_images), ("text", train_texts, val_texts)):
            tower = model.tower(modality)
            codes[modality] = (sign_to_codes(model_outputs(tower, val_x, batch_size, device)),
                               sign_to_codes(model_outputs(tower, train_x, batch_size, device)))
        image_to_text = retrieval_map(codes["image"][0], codes["text"][1], y_val.numpy(), y_train.numpy(), k=k)
        text_to_image = retrieval_map(codes["text"][0], codes["image"][1], y_val.numpy(), y_train.numpy(), k=k)
        return (image_to_text + text_to_image) / 2

    return val_metric
