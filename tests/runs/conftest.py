"""An interrupted training: the Trainer writes epoch 1's checkpoint, then the run stops."""

import pytest


class Interrupted(Exception):
    pass


def run_interrupted_after_epoch_one(monkeypatch, run) -> None:
    """Call ``run()`` with the Trainer stopping right after its first checkpoint; the Trainer is restored after."""
    from hashlearn.train.trainer import Trainer

    original = Trainer._write_run

    def write_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_write_run", write_then_stop)
        with pytest.raises(Interrupted):
            run()
