"""The one trainer of hashlearn: its config, the training loop, checkpoints.

A run's whole configuration (data, model, method, trainer) lives in :mod:`hashlearn.runs`.
"""

from hashlearn.train.config import TrainConfig
from hashlearn.train.trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult"]
