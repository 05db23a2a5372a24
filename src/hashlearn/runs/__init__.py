"""Runs: the run directory (one layout, typed loaders) and the workflows on it.

:class:`Run` owns the layout of a run directory; :func:`load_run` opens one
and validates its config. The workflows -- :func:`train_run`,
:func:`evaluate_run`, :func:`encode_parts`, :func:`attack_run`,
:func:`backdoor_run`, :func:`detect_run` -- read and write runs only through
it, and the ``hashlearn`` command is a thin wrapper over them.

>>> from hashlearn.runs import resolve_config, train_run, evaluate_run, load_run
>>> config = resolve_config(overrides=["method.name=csq", "method.n_bits=16", "data.dataset=digits", "trainer.epochs=1"])
>>> config.method.name, config.trainer.epochs
('csq', 1)
"""

from hashlearn.runs.attack import attack_run
from hashlearn.runs.backdoor import BackdoorRun, backdoor_run, detect_run, load_backdoor
from hashlearn.runs.config import BackdoorConfig, DataConfig, MethodConfig, ModelConfig, RunConfig, resolve_config
from hashlearn.runs.evaluate import encode_array, encode_dataset, encode_parts, evaluate_run
from hashlearn.runs.index import build_index
from hashlearn.runs.run import CODE_PARTS, NotARunError, Run, load_model, load_run
from hashlearn.runs.train import RunExistsError, prepare_run_dir, train_run

__all__ = [
    "BackdoorConfig", "BackdoorRun", "CODE_PARTS", "build_index", "DataConfig", "MethodConfig", "ModelConfig", "NotARunError", "Run",
    "RunConfig", "RunExistsError", "attack_run", "backdoor_run", "detect_run", "encode_array", "encode_dataset", "encode_parts",
    "evaluate_run", "load_backdoor", "load_model", "load_run", "prepare_run_dir", "resolve_config", "train_run",
]
