"""Every registered method -- each loss (alone and with each quantizer) and each shallow estimator -- trains from the CLI."""

import json

import pytest

from hashlearn.cli.main import main
from hashlearn.data import dataset_available
from hashlearn.losses import LOSSES
from hashlearn.losses.crossmodal import CrossModalLoss
from hashlearn.methods import SHALLOW_METHODS
from hashlearn.quantization import QUANTIZERS

TINY = ["--dataset", "digits", "--bits", "8", "--epochs", "1", "-q", "--set", "model.hidden=[16]", "--set", "data.n_train=120",
        "--set", "data.n_val=40", "--set", "data.n_query=40", "--set", "data.n_database=300", "--set", "trainer.val_k=50"]
#: cross-modal losses train on image-text pairs (openmoji), with as small a budget
PAIRED = ["--dataset", "openmoji", "--bits", "16", "--epochs", "1", "-q", "--set", "model.hidden=[32]", "--set", "data.n_train=100",
          "--set", "data.n_val=40", "--set", "data.n_query=40"]
SINGLE = [name for name, spec in LOSSES.items() if not issubclass(spec.cls, CrossModalLoss)]
CROSS = [name for name in LOSSES if name not in SINGLE]
#: each loss alone, and each quantizer once (on the single-modal losses in turn): one run per registry entry
METHODS = [*SINGLE, *(f"{loss}+{q}" for loss, q in zip(SINGLE * len(QUANTIZERS), QUANTIZERS)), *SHALLOW_METHODS]


@pytest.mark.parametrize("method", CROSS)
@pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")
def test_cross_modal_method_trains_and_evaluates_from_the_cli(method, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--method", method, *PAIRED, "--run-dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["method"]["name"] == method
    assert main(["evaluate", "--model", str(run_dir), "-k", "20", "-q"]) == 0
    assert (run_dir / "metrics.json").exists()


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
