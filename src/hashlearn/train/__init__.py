"""The one trainer of hashlearn: config, training loop, checkpoints."""

from hashlearn.train.config import DataConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig, resolve_config
from hashlearn.train.trainer import Trainer, TrainResult

__all__ = ["DataConfig", "MethodConfig", "ModelConfig", "RunConfig", "TrainConfig", "Trainer", "TrainResult", "resolve_config"]
