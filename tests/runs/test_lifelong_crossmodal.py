"""Lifelong stages of a two-tower run (openmoji by emoji group): both sides' old database codes bit-for-bit frozen."""

import json

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.codes import reference_search
from hashlearn.data import dataset_available
from hashlearn.index.io import load_index, read_header
from hashlearn.runs import evaluate_run, load_run
from hashlearn.runs.crossmodal import MODALITIES, modality_inputs
from hashlearn.runs.lifelong import CROSSMODAL_STAGE_LOSS, CROSSMODAL_STAGE_LR_FACTOR, append_stage_to_index, lifelong_run

from .conftest import run_interrupted_after_epoch_one

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")

#: a small DCMH stage 1 on openmoji's groups-small protocol: 32 px pixels (small CNN) + bag-of-words (MLP), 80 training pairs
TINY = ["--dataset", "openmoji", "--method", "dcmh", "--bits", "16", "--epochs", "1", "--set", "model.hidden=[32]",
        "--set", "data.protocol=groups-small", "--set", "trainer.val_k=100", "-q"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifelong-xm")
    assert main(["train", *TINY, "--run-dir", str(root / "s1")]) == 0
    for modality in MODALITIES:
        assert main(["index", "build", "--model", str(root / "s1"), "--modality", modality, "-o", str(root / f"{modality}.hlx"), "-q"]) == 0
    second = lifelong_run(root / "s1", root / "s2", epochs=1, replay_per_class=5)
    # stage 1's database codes: encoded once by its model (kept in s1 by the first stage), never again
    stage1 = {m: load_run(root / "s1").load_codes("database", m) for m in MODALITIES}
    records = [second, lifelong_run(root / "s2", root / "s3", stage="symbols-flags", epochs=1, replay_per_class=5)]
    return root, stage1, records


def test_both_sides_of_the_old_database_are_bit_for_bit_unchanged_across_stages(stages):
    from hashlearn.data import load_dataset

    root, stage1, records = stages
    dataset = load_dataset("openmoji")
    model1 = load_run(root / "s1").load_model()
    for modality in MODALITIES:
        codes1, ids1 = stage1[modality]
        assert np.array_equal(codes1, model1.encode(modality_inputs(dataset, ids1, "pixels", modality), modality))
        codes2, ids2 = load_run(root / "s2").load_codes("database", modality)
        codes3, ids3 = load_run(root / "s3").load_codes("database", modality)
        assert np.array_equal(codes2[: len(ids1)], codes1) and np.array_equal(ids2[: len(ids1)], ids1)
        assert np.array_equal(codes3[: len(ids2)], codes2) and np.array_equal(ids3[: len(ids2)], ids2)
        assert len(ids3) == records[1]["n_old"] + records[1]["n_new"]
        # the towers did change: the stage-3 model encodes the stage-1 pairs differently from their stored codes
        reencoded = load_run(root / "s3").load_model().encode(modality_inputs(dataset, ids1, "pixels", modality), modality)
        assert not np.array_equal(reencoded, codes1)
    # evaluate on a stage searches the stored codes and leaves them as they are
    before = {m: (root / "s3" / "codes" / f"database_{m}_codes.npy").read_bytes() for m in MODALITIES}
    metrics = evaluate_run(root / "s3", k=50)
    assert {m: (root / "s3" / "codes" / f"database_{m}_codes.npy").read_bytes() for m in MODALITIES} == before
    assert metrics["n_database"] == len(ids3) and 0.0 <= metrics["I->T mAP@all"] <= 1.0


def test_stage_bookkeeping_of_a_two_tower_chain(stages):
    root, stage1, (second, third) = stages
    assert (second["stage"], second["stage_name"], third["stage"], third["stage_name"]) == (
        2, "travel-activities-objects", 3, "symbols-flags")
    assert second["parent"] == str((root / "s1").resolve()) and third["parent"] == str((root / "s2").resolve())
    assert second["n_old"] == len(stage1["image"][1]) and second["modalities"] == ["image", "text"]
    assert [b["stage"] for b in third["blocks"]] == [1, 2, 3] and third["blocks"][:2] == second["blocks"]
    assert second["blocks"][1]["model_version"] == second["model_version"] != second["parent_model_version"]
    assert third["parent_model_version"] == second["model_version"]
    config = json.loads((root / "s2" / "config.json").read_text())
    assert config["method"]["name"] == "lifelong-crossmodal" and config["trainer"]["epochs"] == 1
    # without --set, a two-tower stage takes the two-tower defaults (the openmoji benchmark's validation choice)
    assert {key: config["method"]["loss"][key] for key in CROSSMODAL_STAGE_LOSS} == CROSSMODAL_STAGE_LOSS
    parent_lr = json.loads((root / "s1" / "config.json").read_text())["trainer"]["lr"]
    assert config["trainer"]["lr"] == pytest.approx(parent_lr * CROSSMODAL_STAGE_LR_FACTOR)
    model = json.loads((root / "s2" / "model" / "model.json").read_text())
    assert model["class"] == "TwoTowerHashModel"
    split = load_run(root / "s3").load_split()
    assert split.meta["incremental"]["stage"] == 3 and split.meta["paired"] is True
    for direction in ("I->T ", "T->I ", ""):
        for part in ("", "_old", "_new"):
            assert 0.0 <= third["metrics"][f"{direction}mAP@1000{part}"] <= 1.0
    mean = (third["metrics"]["I->T mAP@1000"] + third["metrics"]["T->I mAP@1000"]) / 2
    assert third["metrics"]["mAP@1000"] == pytest.approx(mean)
    assert second["n_replay"] > 0 and json.loads((root / "s2" / "config.json").read_text())["method"]["loss"]["replay_weight"] > 0


@pytest.mark.parametrize("modality", MODALITIES)
def test_an_index_of_one_side_grows_stage_by_stage(stages, tmp_path, modality):
    root, _, (second, third) = stages
    grown = tmp_path / f"{modality}.hlx"
    append_stage_to_index(root / "s2", root / f"{modality}.hlx", grown, modality=modality)
    other = "text" if modality == "image" else "image"
    with pytest.raises(ValueError, match="two-tower stage"):
        append_stage_to_index(root / "s3", grown, modality=other)
    result = append_stage_to_index(root / "s3", grown, modality=modality)
    codes, ids = load_run(root / "s3").load_codes("database", modality)
    assert result["ntotal"] == len(ids) and result["n_added"] == third["n_new"]
    assert [b["stage"] for b in read_header(grown)["info"]["blocks"]] == [1, 2, 3]
    index = load_index(grown)
    expected = reference_search(codes[::41], codes, 10, ids=ids)
    found = index.search(codes[::41], 10)
    assert np.array_equal(found.distances, expected.distances) and np.array_equal(found.ids, expected.ids)


def test_an_interrupted_two_tower_stage_resumes_to_the_same_weights_and_codes(stages, tmp_path, monkeypatch):
    root, stage1, _ = stages
    whole = lifelong_run(root / "s1", tmp_path / "whole", epochs=2, replay_per_class=5)
    run_interrupted_after_epoch_one(monkeypatch, lambda: lifelong_run(root / "s1", tmp_path / "cut", epochs=2, replay_per_class=5))
    assert not load_run(tmp_path / "cut").is_lifelong_stage
    with pytest.raises(ValueError, match="replay_per_class"):  # the two-tower default memory is not the one it started with
        lifelong_run(root / "s1", tmp_path / "cut", resume=True)
    resumed = lifelong_run(root / "s1", tmp_path / "cut", replay_per_class=5, resume=True)
    assert resumed["resumed"] and not whole["resumed"] and resumed["modalities"] == ["image", "text"]
    # the same weights (the model version is their sha256), and both sides' stored codes: the old ones as stage 1 keeps them
    assert resumed["model_version"] == whole["model_version"] != resumed["parent_model_version"]
    cut_model, whole_model = load_run(tmp_path / "cut").load_model(), load_run(tmp_path / "whole").load_model()
    for (name, weight), (other_name, other) in zip(cut_model.state_dict().items(), whole_model.state_dict().items()):
        assert name == other_name and np.array_equal(weight.numpy(), other.numpy()), name
    for modality in MODALITIES:
        codes, ids = load_run(tmp_path / "cut").load_codes("database", modality)
        whole_codes, whole_ids = load_run(tmp_path / "whole").load_codes("database", modality)
        assert np.array_equal(codes, whole_codes) and np.array_equal(ids, whole_ids)
        assert np.array_equal(codes[: len(stage1[modality][1])], stage1[modality][0])
    assert resumed["blocks"] == [{**b, "run": str((tmp_path / "cut").resolve())} if b["stage"] == 2 else b for b in whole["blocks"]]
    assert resumed["metrics"] == whole["metrics"] and resumed["replay_ids_sha256"] == whole["replay_ids_sha256"]
    with pytest.raises(ValueError, match="finished"):
        lifelong_run(root / "s1", tmp_path / "cut", replay_per_class=5, resume=True)
