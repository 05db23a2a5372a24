"""Cross-modal runs through the command line: train, evaluate, attack (cmla, hag), index build --modality."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.data import dataset_available
from hashlearn.index.io import load_index

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")

#: a small DCMH run on openmoji: pixels + bag-of-words, 200 training pairs, one epoch
TRAIN = ["train", "--dataset", "openmoji", "--method", "dcmh", "--bits", "32", "--epochs", "1", "-q",
         "--set", "data.n_train=200", "--set", "data.n_val=40", "--set", "data.n_query=20", "--set", "model.hidden=[64]"]


@pytest.fixture(scope="module")
def openmoji_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("xmodal") / "dcmh-32-openmoji"
    assert main([*TRAIN, "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_train_writes_a_two_tower_run(openmoji_run):
    model = json.loads((openmoji_run / "model" / "model.json").read_text())
    assert model["class"] == "TwoTowerHashModel" and model["n_bits"] == 32
    assert model["image"]["backbone"] == "small_cnn" and model["text"]["backbone"] == "mlp"
    split = json.loads((openmoji_run / "split" / "split.json").read_text())
    assert split["meta"]["paired"] is True and split["sizes"]["query"] == 20


def test_evaluate_reports_every_direction(openmoji_run, capsys):
    assert main(["evaluate", "--model", str(openmoji_run), "--k", "100"]) == 0
    out = capsys.readouterr().out
    assert "I->T mAP@all" in out and "T->I mAP@100" in out and "pr_curve" not in out
    metrics = json.loads((openmoji_run / "metrics.json").read_text())
    assert set(metrics["pr_curves"]) == {"I->T", "T->I", "I->I", "T->T"}
    codes = np.load(openmoji_run / "codes" / "query_text_codes.npy")
    assert codes.shape == (20, 4) and 0 <= metrics["I->T mAP@all"] <= 1


@pytest.mark.parametrize("modality, attack, form", [("image", "cmla", "instance"), ("text", "cmla", "instance"),
                                                   ("image", "hag", None), ("text", "cmla", "labels"),
                                                   ("image", "cmla", "target"), ("text", "cmla", "target")])
def test_attack_modalities(openmoji_run, modality, attack, form, capsys):
    extra = (["--cmla-form", form] if form else []) + (["--same-weight", "1"] if form == "target" else [])
    assert main(["attack", "--model", str(openmoji_run), "--attack", attack, "--modality", modality, "--steps", "3",
                 "--n-queries", "5", "-q", *extra]) == 0
    name = f"cmla-{form}-{modality}" if form in ("labels", "target") else f"{attack}-{modality}"
    report = json.loads((openmoji_run / "attack" / f"{name}.json").read_text())
    assert report.get("cmla_form") == form
    if form == "labels":
        assert "reference=<200 reference pairs>" in report["attack_repr"] and "balanced=True" in report["attack_repr"]
    if form == "target":  # the target codes are chosen against the training pairs
        assert report["attack_repr"].startswith("CMLATarget(") and "reference=<200 reference pairs>" in report["attack_repr"]
        assert 0 <= report["mean bits reached"] <= report["mean bits planned"] <= 32
    assert report["n_queries"] == 5 and report["modality"] == modality
    if modality == "image":
        assert report["norm"] == "linf" and report["mean distortion"] <= 8 / 255 + 1e-6
    else:  # bag-of-words text: an L2 budget of 0.5 by default
        assert report["norm"] == "l2" and report["mean distortion"] <= 0.5 + 1e-5


def test_cmla_refuses_single_modal_runs(tmp_path, capsys):
    from tests.cli.conftest import train

    run_dir = tmp_path / "digits"
    train(run_dir)
    assert main(["attack", "--model", str(run_dir), "--attack", "cmla"]) != 0
    assert "cross-modal" in capsys.readouterr().err


def test_index_build_one_side(openmoji_run, tmp_path, capsys):
    out = tmp_path / "images.hlx"
    assert main(["index", "build", "--model", str(openmoji_run), "--dataset", "openmoji", "--modality", "image", "-o", str(out), "-q"]) == 0
    index = load_index(out)
    assert index.ntotal == 1670  # the database side of the split (the protocol's 200 queries are out of it)
    assert main(["index", "build", "--model", str(openmoji_run), "-o", str(out)]) != 0
    assert "--modality" in capsys.readouterr().err
    assert main(["index", "build", "--model", str(openmoji_run), "--dataset", "digits", "--modality", "text", "-o", str(out)]) != 0
