import json

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.data import load_dataset
from hashlearn.models import HashModel


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "dpsh"
    config = tmp_path_factory.mktemp("cfg") / "run.toml"
    config.write_text('[trainer]\nbatch_size = 100\nlr = 0.003\n[model]\nhidden = [32]\n')
    code = main(["train", "--method", "dpsh+hswd", "--bits", "16", "--dataset", "digits", "--epochs", "2",
                 "--config", str(config), "--set", "trainer.seed=1", "--run-dir", str(run_dir), "-q"])
    assert code == 0
    return run_dir


def test_train_writes_a_complete_run_directory(trained_run):
    for name in ("config.json", "split/split.json", "split/split.npz", "history.json", "train_result.json",
                 "checkpoint/last.safetensors", "model/model.json"):
        assert (trained_run / name).exists(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert config["method"] == {"name": "dpsh+hswd", "n_bits": 16, "quantization_weight": None, "loss": {}}
    assert config["trainer"]["seed"] == 1 and config["trainer"]["batch_size"] == 100 and config["model"]["hidden"] == [32]
    assert len(json.loads((trained_run / "history.json").read_text())) == 2


def test_encode_matches_the_model(trained_run, tmp_path):
    X = load_dataset("digits").data[:25]
    np.save(tmp_path / "x.npy", X)
    assert main(["encode", "--model", str(trained_run), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.npy")]) == 0
    codes = np.load(tmp_path / "c.npy", allow_pickle=False)
    np.testing.assert_array_equal(codes, HashModel.load(trained_run / "model").encode(X))


def test_evaluate_writes_metrics(trained_run, capsys):
    assert main(["evaluate", "--model", str(trained_run), "--k", "100", "-q"]) == 0
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.2 < metrics["mAP@100"] <= 1.0 and metrics["n_query"] == 200
    assert "mAP@100" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--set", "trainer.lr_rate=1", "--run-dir", str(tmp_path / "r")]) == 1
    assert "unknown config key 'trainer.lr_rate'" in capsys.readouterr().err
    assert main(["train", "--dataset", "20newsgroups", "--features", "pixels", "--run-dir", str(tmp_path / "t"), "-q"]) == 1
    assert main(["evaluate", "--model", str(tmp_path / "nothing")]) == 1
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.float32))
    assert main(["encode", "--model", str(tmp_path / "nothing"), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.npy")]) == 1
    assert main(["train", "--resume", "--dataset", "digits"]) == 1
