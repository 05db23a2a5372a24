"""The one trainer of hashlearn: its config, the training loop, checkpoints.

A run's whole configuration (data, model, method, trainer) lives in :mod:`hashlearn.runs`.
``Trainer`` and ``TrainResult`` are imported on first use, so reading a config does not load torch.
"""

from hashlearn.train.config import TrainConfig

__all__ = ["TrainConfig", "Trainer", "TrainResult"]


def __getattr__(name: str):
    if name in ("Trainer", "TrainResult"):
        from hashlearn.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'hashlearn.train' has no attribute {name!r}")
