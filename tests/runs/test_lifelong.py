"""The lifelong workflow: stages trained from `hashlearn train` runs, old database codes bit-for-bit frozen, indexes grown in place."""

import json

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.codes import reference_search
from hashlearn.index.io import load_index, read_header
from hashlearn.runs import evaluate_run, load_run
from hashlearn.runs.lifelong import append_stage_to_index, lifelong_run

TINY = ["--method", "csq", "--bits", "16", "--dataset", "digits", "--epochs", "2", "--set", "model.hidden=[32]",
        "--set", "trainer.lr=0.01", "--set", "data.protocol=class-incremental", "--set", "trainer.val_k=100", "-q"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifelong")
    assert main(["train", *TINY, "--run-dir", str(root / "s1")]) == 0
    assert main(["index", "build", "--model", str(root / "s1"), "--factory", "MIH", "-o", str(root / "mih.hlx"), "-q"]) == 0
    assert main(["index", "build", "--model", str(root / "s1"), "--factory", "Flat", "-o", str(root / "flat.hlx"), "-q"]) == 0
    stage1_codes = load_run(root / "s1").load_codes("database")
    records = [lifelong_run(root / "s1", root / "s2", epochs=1), lifelong_run(root / "s2", root / "s3", stage="8-9", epochs=1)]
    return root, stage1_codes, records


def test_old_database_codes_are_bit_for_bit_unchanged_across_stages(stages):
    root, (codes1, ids1), records = stages
    codes2, ids2 = load_run(root / "s2").load_codes("database")
    codes3, ids3 = load_run(root / "s3").load_codes("database")
    assert np.array_equal(codes2[: len(ids1)], codes1) and np.array_equal(ids2[: len(ids1)], ids1)
    assert np.array_equal(codes3[: len(ids2)], codes2) and np.array_equal(ids3[: len(ids2)], ids2)
    # the models did change: the stage-3 model encodes the stage-1 items differently from their stored codes
    from hashlearn.runs.evaluate import encode_array
    from hashlearn.runs.data import run_inputs
    from hashlearn.data import load_dataset

    reencoded = encode_array(load_run(root / "s3").load_model(), run_inputs(load_dataset("digits"), ids1, "pixels"))
    assert not np.array_equal(reencoded, codes1)
    # evaluate on a stage uses the stored codes and leaves them as they are
    before = (root / "s3" / "codes" / "database_codes.npy").read_bytes()
    metrics = evaluate_run(root / "s3", k=100)
    assert (root / "s3" / "codes" / "database_codes.npy").read_bytes() == before and metrics["n_database"] == len(ids3)


def test_stage_bookkeeping(stages):
    root, (_, ids1), (second, third) = stages
    assert (second["stage"], second["stage_name"], third["stage"], third["stage_name"]) == (2, "5-7", 3, "8-9")
    assert second["parent"] == str((root / "s1").resolve()) and second["n_old"] == len(ids1)
    assert [b["stage"] for b in third["blocks"]] == [1, 2, 3]
    assert third["blocks"][:2] == second["blocks"] and third["n_old"] == second["n_old"] + second["n_new"]
    assert second["blocks"][1]["model_version"] == second["model_version"] != second["parent_model_version"]
    config = json.loads((root / "s2" / "config.json").read_text())
    assert config["method"]["name"] == "lifelong" and config["trainer"]["epochs"] == 1
    assert len(json.loads((root / "s2" / "history.json").read_text())) == 1
    split = load_run(root / "s2").load_split()
    from hashlearn.data import load_dataset

    assert split.meta["incremental"]["stage"] == 2 and set(np.unique(load_dataset("digits").labels[split.train])) == {5, 6, 7}
    for metric in ("mAP@1000", "mAP@1000_old", "mAP@1000_new"):
        assert 0.0 <= third["metrics"][metric] <= 1.0


def test_stages_must_come_in_order(stages, tmp_path):
    root, _, _ = stages
    with pytest.raises(ValueError, match="the next stage is 2"):
        lifelong_run(root / "s1", tmp_path / "x", stage=3)
    with pytest.raises(ValueError, match="last stage"):
        lifelong_run(root / "s3", tmp_path / "y")
    with pytest.raises(ValueError, match="parent's data"):
        lifelong_run(root / "s1", tmp_path / "z", overrides=["data.seed=5"])
    with pytest.raises(ValueError, match="must differ"):
        lifelong_run(root / "s1", root / "s1")


@pytest.mark.parametrize("name", ["flat.hlx", "mih.hlx"])
def test_index_grows_without_rebuilding_and_records_its_blocks(stages, tmp_path, name):
    root, _, records = stages
    grown = tmp_path / name
    append_stage_to_index(root / "s2", root / name, grown)
    with pytest.raises(ValueError, match="in order"):
        append_stage_to_index(root / "s2", grown, tmp_path / "twice.hlx")
    result = append_stage_to_index(root / "s3", grown)
    codes, ids = load_run(root / "s3").load_codes("database")
    assert result["ntotal"] == len(ids) and result["n_added"] == records[1]["n_new"]
    info = read_header(grown)["info"]
    assert [(b["stage"], b["model_version"]) for b in info["blocks"]] == [(b["stage"], b["model_version"]) for b in records[1]["blocks"]]
    index = load_index(grown)
    queries = codes[::37]
    expected = reference_search(queries, codes, 10, ids=ids)
    found = index.search(queries, 10)
    assert np.array_equal(found.distances, expected.distances) and np.array_equal(found.ids, expected.ids)
    with pytest.raises(ValueError, match="not a lifelong stage"):
        append_stage_to_index(root / "s1", grown)
