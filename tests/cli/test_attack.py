import json

import numpy as np
import pytest
import torch

from hashlearn.cli.attack import parse_eps
from hashlearn.cli.main import main
from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split
from hashlearn.models import HashModel


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as the trainer writes it: model/ and the split."""
    directory = tmp_path_factory.mktemp("run")
    dataset = load_dataset("digits")
    split = make_split(dataset, seed=0)
    torch.manual_seed(0)
    model = HashModel("mlp", 16, {"in_features": 64, "hidden": [32]})
    x, y = torch.from_numpy(dataset.data[split.train]), torch.from_numpy(dataset.labels[split.train])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    for _ in range(15):
        codes = model(x)
        similar = (y[:, None] == y[None, :]).float()
        theta = codes @ codes.T / 2
        loss = (torch.nn.functional.softplus(theta) - similar * theta).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    model.save(directory / "model")
    split.save(directory)
    return directory


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.03") == pytest.approx(0.03)
    for bad in ("8/0", "-1", "0", "eight", ""):
        with pytest.raises(ValueError, match="--eps"):
            parse_eps(bad)


@pytest.mark.parametrize("attack", ["hag", "fgsm", "prototype"])
def test_attack_command(run_dir, tmp_path, capsys, attack):
    output = tmp_path / "report.json"
    code = main(["attack", "--model", str(run_dir), "--attack", attack, "--eps", "0.2", "--steps", "5",
                 "--n-queries", "20", "--k", "100", "-q", "--output", str(output)])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["n_queries"] == 20 and report["dataset"] == "digits"
    assert report["linf_max"] <= 0.2 + 1e-6
    assert report["adv_map"] < report["clean_map"]
    if attack == "prototype":
        assert report["adv_tmap"] > report["clean_tmap"]
    assert "clean_map" in capsys.readouterr().out


def test_attack_command_errors(run_dir, tmp_path, capsys):
    assert main(["attack", "--model", str(tmp_path), "-q"]) == 1
    assert "no saved model" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--attack", "nope", "-q"]) == 1
    assert "--attack must be one of" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--eps", "8/0", "-q"]) == 1
    assert main(["attack", "--model", str(run_dir), "--steps", "0", "-q"]) == 1
    assert "--steps" in capsys.readouterr().err
    (tmp_path / "model").mkdir()
    HashModel("mlp", 8, {"in_features": 64}).save(tmp_path / "model")
    assert main(["attack", "--model", str(tmp_path), "-q"]) == 1
    assert "no split" in capsys.readouterr().err
