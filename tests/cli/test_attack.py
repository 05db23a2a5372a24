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
    assert main(["attack", "--model", str(tmp_path), "-q"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--attack", "nope", "-q"]) == 2
    assert "attack must be one of" in capsys.readouterr().err
    assert main(["attack", "--model", str(run_dir), "--eps", "8/0", "-q"]) == 2
    assert main(["attack", "--model", str(run_dir), "--steps", "0", "-q"]) == 2
    assert "--steps" in capsys.readouterr().err
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    shutil.rmtree(broken / "split")
    assert main(["attack", "--model", str(broken), "-q"]) == 2
    assert "no split" in capsys.readouterr().err


def test_save_adv_keeps_the_adversarial_inputs(run_dir, tmp_path):
    import shutil

    from hashlearn.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["attack", "--model", str(run), "--attack", "pgd", "--eps", "0.1", "--steps", "3", "--n-queries", "7",
                 "--k", "50", "--save-adv", "-q"]) == 0
    report = json.loads((run / "attack" / "pgd.json").read_text())
    adv, ids = np.load(run / "attack" / "pgd_adv.npy"), np.load(run / "attack" / "pgd_ids.npy")
    split = load_run(run).load_split()
    np.testing.assert_array_equal(ids, split.query[:7])
    from hashlearn.data import load_dataset

    clean = load_dataset("digits").data[ids]
    assert adv.shape == clean.shape and np.abs(adv - clean).max() <= 0.1 + 1e-6
    assert np.abs(adv - clean).max() == pytest.approx(report["linf_max"], abs=1e-6)
    model = load_run(run).load_model()
    codes = model.encode(adv)
    assert (codes != model.encode(clean)).any()  # the kept inputs are the ones that changed the codes


def test_attack_on_backdoor_runs(tmp_path, capsys):
    hash_run, classifier_run = tmp_path / "bd-hash", tmp_path / "bd-clf"
    common = ["--attack", "badnets", "--dataset", "digits", "--epochs", "1", "--bits", "16", "-q"]
    assert main(["backdoor", *common, "--victim", "hash", "--run-dir", str(hash_run)]) == 0
    assert main(["attack", "--model", str(hash_run), "--attack", "fgsm", "--eps", "0.1", "--n-queries", "10", "--k", "50", "-q"]) == 0
    report = json.loads((hash_run / "attack" / "fgsm.json").read_text())
    assert report["n_queries"] == 10 and report["linf_max"] <= 0.1 + 1e-6
    capsys.readouterr()
    assert main(["backdoor", *common, "--victim", "classifier", "--run-dir", str(classifier_run)]) == 0
    assert main(["attack", "--model", str(classifier_run), "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds a Classifier" in err and len(err.strip().splitlines()) == 1
    for argv in (["evaluate", "--model", str(classifier_run)], ["encode", "--model", str(classifier_run), "--dataset", "digits"]):
        assert main([*argv, "-q"]) == 2
        assert "makes no hash codes" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(hash_run), "-k", "50", "-q"]) == 0  # a hash victim's run evaluates like any other


def test_prosgan_trains_once_then_reuses_its_generator(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    argv = ["attack", "--model", str(run), "--attack", "prosgan", "--eps", "0.2", "--epochs", "3", "--n-queries", "30", "--k", "100", "-q"]
    assert main(argv) == 0
    first = json.loads((run / "attack" / "prosgan.json").read_text())
    generator = run / "attack" / "prosgan_generator"
    assert sorted(p.name for p in generator.iterdir()) == ["prosgan.json", "prosgan.safetensors"]
    assert first["generator_reused"] is False and first["train_seconds"] > 0 and first["linf_max"] <= 0.2 + 1e-6
    assert first["adv_tmap"] > first["clean_tmap"]
    stamp = (generator / "prosgan.safetensors").stat().st_mtime_ns
    assert main(argv) == 0
    second = json.loads((run / "attack" / "prosgan.json").read_text())
    assert second["generator_reused"] is True and (generator / "prosgan.safetensors").stat().st_mtime_ns == stamp
    assert second["adv_tmap"] == first["adv_tmap"]  # the same generator, the same queries and targets
    assert main(["attack", "--model", str(run), "--attack", "hag", "--epochs", "3", "-q"]) == 2  # --epochs is for trained attacks
