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
    # the registered +quantizer weight of dpsh on pixels is resolved into the saved config
    assert config["method"] == {"name": "dpsh+hswd", "n_bits": 16, "quantization_weight": 0.1, "loss": {}, "quantizer": {}}
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
    assert main(["train", "--dataset", "digits", "--set", "trainer.lr_rate=1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "unknown config key 'trainer.lr_rate'" in capsys.readouterr().err
    assert main(["train", "--dataset", "20newsgroups", "--features", "pixels", "--run-dir", str(tmp_path / "t"), "-q"]) == 2
    assert main(["evaluate", "--model", str(tmp_path / "nothing")]) == 2
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.float32))
    assert main(["encode", "--model", str(tmp_path / "nothing"), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.npy")]) == 2
    assert main(["train", "--resume", "--dataset", "digits"]) == 2


def test_a_used_run_dir_is_refused_then_resumed_or_overwritten(digits_run, train_args, tmp_path, capsys):
    import shutil

    TRAIN_ARGS = train_args
    run_dir = tmp_path / "r"
    shutil.copytree(digits_run, run_dir)
    weights = (run_dir / "model" / "model.safetensors").read_bytes()
    assert main(["train", *TRAIN_ARGS, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--resume" in err and "--overwrite" in err
    assert (run_dir / "model" / "model.safetensors").read_bytes() == weights
    # --resume: no flag repeated, the run's own config (hidden=[32], lr=0.01) continues to epoch 2
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--epochs", "2", "-q"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["hidden"] == [32] and config["trainer"]["lr"] == 0.01 and config["trainer"]["epochs"] == 2
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--method", "dpsh", "-q"]) == 2
    assert "drop --method" in capsys.readouterr().err
    shutil.rmtree(run_dir / "checkpoint")
    assert main(["train", "--run-dir", str(run_dir), "--resume", "-q"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", *TRAIN_ARGS, "--bits", "24", "--run-dir", str(run_dir), "--overwrite"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["method"]["n_bits"] == 24
    assert main(["train", "--run-dir", str(tmp_path / "none"), "--resume", "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
