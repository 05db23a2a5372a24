"""Run fixtures for the CLI tests, made by the real ``hashlearn train`` command (never by hand)."""

from __future__ import annotations

import pytest

from hashlearn.cli.main import main

#: one small deep run on digits: one epoch, a tiny MLP (seconds on one core)
TRAIN_ARGS = ["--method", "csq", "--bits", "16", "--dataset", "digits", "--epochs", "1",
              "--set", "model.hidden=[32]", "--set", "trainer.lr=0.01", "-q"]


def train(run_dir, *extra: str) -> None:
    assert main(["train", *TRAIN_ARGS, *extra, "--run-dir", str(run_dir)]) == 0


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A run written by `hashlearn train` on digits (tests that modify runs must copy it)."""
    run_dir = tmp_path_factory.mktemp("runs") / "csq-16-digits"
    train(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def train_args():
    """The arguments of the small digits run (``hashlearn train ARGS --run-dir R``)."""
    return list(TRAIN_ARGS)
