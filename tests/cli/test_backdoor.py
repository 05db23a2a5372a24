import json

import numpy as np
import pytest

from hashlearn.cli import backdoor as backdoor_cli
from hashlearn.cli.main import main
from hashlearn.runs import load_backdoor, load_run


def test_literal_choices_match_the_registries():
    from hashlearn.attacks.backdoor import ATTACKS
    from hashlearn.attacks.backdoor.base import MAPPINGS
    from hashlearn.attacks.backdoor.experiment import VICTIMS
    from hashlearn.runs import config

    assert backdoor_cli.ATTACK_NAMES == sorted(ATTACKS)
    assert tuple(backdoor_cli.MAPPINGS) == MAPPINGS and tuple(backdoor_cli.VICTIMS) == VICTIMS
    assert sorted(config.BACKDOOR_ATTACKS) == sorted(ATTACKS)


@pytest.mark.parametrize("attack, victim", [("badnets", "classifier"), pytest.param("wb", "hash", marks=pytest.mark.slow)])
def test_backdoor_then_detect_on_digits(tmp_path, capsys, attack, victim):
    run_dir = tmp_path / "run"
    argv = ["backdoor", "--attack", attack, "--dataset", "digits", "--rate", "0.1", "--victim", victim, "--bits", "16",
            "--epochs", "1", "--stage1-epochs", "1", "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 0
    record = json.loads((run_dir / "backdoor" / "backdoor.json").read_text())
    indices = np.load(run_dir / "backdoor" / "poison_indices.npy")
    assert len(indices) == 50  # round(0.1 * 500) training samples of the digits protocol
    assert record["attack"]["attack"] == attack
    if victim == "classifier":  # the trigger implants: far above the 1-in-10 a random label would hit
        assert record["metrics"]["attack_success_rate"] > 0.5
    else:
        assert record["metrics"]["t_map_triggered"] > record["metrics"]["t_map_clean"]
    loaded = load_backdoor(run_dir)
    assert load_run(run_dir).config.backdoor.attack == attack
    assert np.array_equal(loaded.poison_indices, indices)
    X = loaded.X
    assert X.min() >= 0 and X.max() <= 1
    if victim == "hash":
        return  # detection + retraining of a hash run: same code path, kept out of the default suite for time
    assert main(["detect", "--run-dir", str(run_dir), "--defense", "spectral", "--quiet"]) == 0
    report = json.loads((run_dir / "detect" / "spectral.json").read_text())
    assert report["tpr"] > report["fpr"]  # flags poison more often than clean samples (1 epoch, 10% poison: weak but real)
    assert main(["detect", "--run-dir", str(run_dir), "--defense", "ac", "--rule", "smaller", "--retrain", "--quiet"]) == 0
    report = json.loads((run_dir / "detect" / "ac.json").read_text())
    assert report["tpr"] >= 0.9 and report["tpr"] > 2 * report["fpr"]  # activation clustering finds the poison
    assert set(report["after_retraining"]) == {"clean_accuracy", "attack_success_rate"}


def test_typed_errors_become_exit_status_2(tmp_path, capsys):
    assert main(["backdoor", "--attack", "badnets", "--dataset", "digits", "--rate", "1.5", "--run-dir", str(tmp_path), "-q"]) == 2
    assert "rate" in capsys.readouterr().err
    assert main(["detect", "--run-dir", str(tmp_path / "none"), "--defense", "ac"]) == 2


def test_wanet_all_to_all_run_keeps_noise_rows_and_its_report_shows_the_tsne(tmp_path):
    from hashlearn.attacks.backdoor.experiment import load_experiment_data

    run_dir = tmp_path / "wanet"
    argv = ["backdoor", "--attack", "wanet", "--target", "all-to-all", "--strength", "1", "--cross-ratio", "1", "--dataset", "digits",
            "--rate", "0.1", "--epochs", "1", "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 0
    folder = run_dir / "backdoor"
    record = json.loads((folder / "backdoor.json").read_text())
    assert record["attack"]["attack"] == "wanet" and record["attack"]["strength"] == 1.0 and record["attack"]["target"] == "all-to-all"
    poison, noise = np.load(folder / "poison_indices.npy"), np.load(folder / "noise_indices.npy")
    assert len(poison) == 50 and len(noise) == 50 and not np.intersect1d(poison, noise).size
    clean_y = load_experiment_data("digits", seed=0).train[1]
    poisoned_y = np.load(folder / "poisoned_y.npy")
    assert np.array_equal(poisoned_y[poison], (clean_y[poison] + 1) % 10)  # all-to-all: y -> y + 1
    assert np.array_equal(poisoned_y[noise], clean_y[noise])  # noise mode keeps the true label
    rows, points = np.load(folder / "tsne_rows.npy"), np.load(folder / "tsne.npy")
    assert points.shape == (len(rows), 2) and np.isfinite(points).all() and np.isin(poison, rows).all()
    loaded = load_backdoor(run_dir)
    assert loaded.attack.params() == record["attack"]
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir), "--quiet"]) == 0
    page = (run_dir / "report.html").read_text()
    assert 'alt="t-SNE of clean vs poisoned latent features"' in page
    assert "t-SNE of latent features (500 training inputs, 50 poisoned)" in (run_dir / "report.md").read_text()
