import json

import numpy as np
import pytest

from hashlearn.cli.attack import parse_eps
from hashlearn.cli.main import main
from hashlearn.models import HashModel


@pytest.fixture(scope="module")
def run_dir(digits_run):
    return digits_run


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
    assert "not a run directory" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--attack", "nope", "-q"]) == 1
    assert "attack must be one of" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--eps", "8/0", "-q"]) == 1
    assert main(["attack", "--model", str(run_dir), "--steps", "0", "-q"]) == 1
    assert "--steps" in capsys.readouterr().err
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    shutil.rmtree(broken / "split")
    assert main(["attack", "--model", str(broken), "-q"]) == 1
    assert "no split" in capsys.readouterr().err
