"""`hashlearn lifelong` from the command line: a stage from a `hashlearn train` run, an index appended in place."""

import json

import pytest

from hashlearn.cli.main import main
from hashlearn.data import dataset_available
from hashlearn.index.io import read_header


def test_lifelong_command_trains_the_next_stage_and_appends_to_the_index(tmp_path, capsys):
    stage1, stage2, index = tmp_path / "s1", tmp_path / "s2", tmp_path / "db.hlx"
    assert main(["train", "--method", "csq", "--bits", "16", "--dataset", "digits", "--epochs", "1", "--set", "model.hidden=[32]",
                 "--set", "data.protocol=class-incremental", "-q", "--run-dir", str(stage1)]) == 0
    assert main(["index", "build", "--model", str(stage1), "-o", str(index), "-q"]) == 0
    capsys.readouterr()
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(stage2), "--epochs", "1", "--index", str(index), "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["stage"] == 2 and record["index"]["ntotal"] == record["n_old"] + record["n_new"]
    assert [b["stage"] for b in read_header(index)["info"]["blocks"]] == [1, 2]
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(tmp_path / "s3"), "--stage", "3"]) == 2
    assert "next stage is 2" in capsys.readouterr().err
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(tmp_path / "s4"), "-o", "x.hlx"]) == 2
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(stage2), "--resume", "-q"]) == 2
    assert "has finished" in capsys.readouterr().err


@pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")
def test_lifelong_command_on_a_two_tower_run_grows_an_index_of_one_side(tmp_path, capsys):
    stage1, stage2, index = tmp_path / "s1", tmp_path / "s2", tmp_path / "text.hlx"
    assert main(["train", "--dataset", "openmoji", "--method", "dcmh", "--bits", "16", "--epochs", "1", "--set", "model.hidden=[32]",
                 "--set", "data.protocol=groups-small", "-q", "--run-dir", str(stage1)]) == 0
    assert main(["index", "build", "--model", str(stage1), "--modality", "text", "-o", str(index), "-q"]) == 0
    capsys.readouterr()
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(stage2), "--epochs", "1",
                 "--index", str(index), "--modality", "text", "-q"]) == 0
    out = capsys.readouterr().out
    assert "stage 2 'travel-activities-objects' of groups-small" in out and "I->T mAP@1000" in out and "T->I mAP@1000" in out
    record = json.loads((stage2 / "lifelong.json").read_text())
    assert record["modalities"] == ["image", "text"] and read_header(index)["info"]["modality"] == "text"
    # a two-tower stage's defaults: 100 memory pairs per old group (here every stage-1 training pair: 20 per group), twice the
    # parent's lr, the pairwise terms on top of the centers (the within-batch one at weight 2)
    assert record["n_replay"] == 80
    parent, config = (json.loads((run / "config.json").read_text()) for run in (stage1, stage2))
    assert config["trainer"]["lr"] == pytest.approx(2 * parent["trainer"]["lr"])
    assert (config["method"]["loss"]["old_weight"], config["method"]["loss"]["new_weight"]) == (1.0, 2.0)
    assert [b["stage"] for b in read_header(index)["info"]["blocks"]] == [1, 2]
    assert main(["lifelong", "--from", str(stage2), "--run-dir", str(tmp_path / "s3"), "--index", str(index), "-q"]) == 2
    assert "pass --modality text" in capsys.readouterr().err and not (tmp_path / "s3").exists()  # refused before training
    assert main(["lifelong", "--from", str(stage1), "--run-dir", str(tmp_path / "s4"), "--modality", "image"]) == 2


def test_readme_lifelong_block_runs_verbatim(tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text[text.index("<!-- lifelong:"):], re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert any(line.startswith("hashlearn lifelong") for line in lines)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "HASHLEARN_QUIET": "1", "OMP_NUM_THREADS": "1"}
    for line in lines:
        command = [sys.executable, "-m", "hashlearn", *line.split()[1:]]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"README line failed: {line}\n{result.stderr[-3000:]}"
    header = read_header(tmp_path / "runs" / "db.hlx")
    assert [b["stage"] for b in header["info"]["blocks"]] == [1, 2, 3] and header["kind"] == "mih"
    assert "blocks" in result.stdout
