"""Every registered method -- each loss (alone and with each quantizer) and each shallow estimator -- trains from the CLI."""

import json

import pytest

from hashlearn.cli.main import main
from hashlearn.losses import LOSSES
from hashlearn.methods import SHALLOW_METHODS
from hashlearn.quantization import QUANTIZERS

TINY = ["--dataset", "digits", "--bits", "8", "--epochs", "1", "-q", "--set", "model.hidden=[16]", "--set", "data.n_train=120",
        "--set", "data.n_val=40", "--set", "data.n_query=40", "--set", "data.n_database=300", "--set", "trainer.val_k=50"]
#: each loss alone, and each quantizer once (on the losses in turn), keeps the test to one run per registry entry
METHODS = [*LOSSES, *(f"{loss}+{q}" for loss, q in zip(list(LOSSES) * len(QUANTIZERS), QUANTIZERS)), *SHALLOW_METHODS]


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_evaluates_from_the_cli(method, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--method", method, *TINY, "--run-dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"]["name"] == method and config["method"]["n_bits"] == 8
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run_dir), "-k", "50", "--json", "-q"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["method"] == method and metrics["n_query"] == 40 and 0.0 <= metrics["mAP@50"] <= 1.0
    assert (run_dir / "codes" / "database_codes.npy").exists()
