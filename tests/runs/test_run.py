"""The run directory: layout, typed loaders, train/resume/overwrite safety, evaluate keeping codes."""

import json
import shutil

import numpy as np
import pytest
import torch

from hashlearn.errors import CorruptFileError
from hashlearn.models import HashModel
from hashlearn.runs import NotARunError, Run, RunExistsError, evaluate_run, load_run, resolve_config, train_run

OVERRIDES = ["method.name=csq", "method.n_bits=16", "data.dataset=digits", "trainer.epochs=1", "model.hidden=[32]",
             "trainer.lr=0.01", "data.n_train=200", "data.n_database=300"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run") / "r"
    model, result = train_run(resolve_config(overrides=OVERRIDES), run_dir)
    return run_dir, model, result


def test_train_writes_the_layout_run_describes(trained):
    run_dir, model, result = trained
    run = load_run(run_dir)
    for path in (run.config_path, run.split_dir / "split.json", run.model_dir / "model.json", run.checkpoint_dir / "last.json",
                 run.history_path, run.train_result_path):
        assert path.exists(), path
    assert run.config.method.name == "csq" and run.config.trainer.epochs == 1
    assert run.has_checkpoint() and len(run.load_history()) == 1 and run.load_train_result()["best_epoch"] == 1
    loaded = run.load_model()
    assert isinstance(loaded, HashModel)
    split = run.load_split()
    assert len(split.database) == 300 and split.dataset == "digits"
    x = torch.rand(5, 64)
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))


def test_evaluate_keeps_codes_and_metrics(trained, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(trained[0], run_dir)
    metrics = evaluate_run(run_dir, k=100)
    run = load_run(run_dir)
    assert run.load_metrics() == json.loads(json.dumps(metrics))
    split, model = run.load_split(), run.load_model()
    codes, ids = run.load_codes("database")
    np.testing.assert_array_equal(ids, split.database)
    from hashlearn.data import load_dataset

    np.testing.assert_array_equal(codes, model.encode(load_dataset("digits").data[split.database]))
    assert run.load_codes("query")[0].shape == (len(split.query), 2)


def test_not_a_run_and_damaged_runs(tmp_path):
    with pytest.raises(NotARunError, match="does not exist"):
        load_run(tmp_path / "missing")
    with pytest.raises(NotARunError, match="not a run directory"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"trainer": {"epoch": 3}}))
    with pytest.raises(CorruptFileError, match="unknown config key 'trainer.epoch'"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"hidden": [-1]}}))
    with pytest.raises(CorruptFileError, match="model.hidden"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load_run(tmp_path).load_model()
    with pytest.raises(FileNotFoundError, match="no split"):
        load_run(tmp_path).load_split()
    with pytest.raises(FileNotFoundError, match="evaluate"):
        load_run(tmp_path).load_codes("query")
    with pytest.raises(ValueError, match="part must be one of"):
        Run(tmp_path).codes_path("everything")


def test_a_non_empty_run_dir_is_refused_unless_resume_or_overwrite(trained, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(trained[0], run_dir)
    before = (run_dir / "model" / "model.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match="--resume.*--overwrite"):
        train_run(resolve_config(overrides=OVERRIDES), run_dir)
    assert (run_dir / "model" / "model.safetensors").read_bytes() == before
    (run_dir / "notes.txt").write_text("mine")
    train_run(resolve_config(overrides=[*OVERRIDES, "trainer.seed=3"]), run_dir, overwrite=True)
    assert load_run(run_dir).config.trainer.seed == 3 and (run_dir / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(RunExistsError, match="refusing to delete"):
        train_run(resolve_config(overrides=OVERRIDES), other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"


def test_resume_continues_from_the_runs_own_config(trained, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(trained[0], run_dir)
    _, result = train_run(None, run_dir, resume=True, epochs=2)
    history = load_run(run_dir).load_history()
    assert [row["epoch"] for row in history] == [1, 2] and len(result.history) == 2
    assert history[0] == load_run(trained[0]).load_history()[0]  # epoch 1 was not redone
    assert load_run(run_dir).config.trainer.epochs == 2 and load_run(run_dir).config.model.hidden == [32]
    with pytest.raises(ValueError, match="own config"):
        train_run(resolve_config(overrides=OVERRIDES), run_dir, resume=True)


def test_resume_without_a_checkpoint_is_an_error(trained, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(trained[0], run_dir)
    shutil.rmtree(run_dir / "checkpoint")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_run(None, run_dir, resume=True)
    with pytest.raises(NotARunError):
        train_run(None, tmp_path / "nothing", resume=True)


@pytest.mark.parametrize("method", ["itq", "lsh", "sign", "pcah", "sh"])
def test_shallow_methods_train_into_a_run(method, tmp_path):
    from hashlearn.methods import SHALLOW_METHODS

    run_dir = tmp_path / method
    estimator, result = train_run(resolve_config(overrides=[f"method.name={method}", "method.n_bits=16", "data.dataset=digits"]), run_dir)
    assert result is None
    run = load_run(run_dir)
    loaded = run.load_model()
    assert isinstance(loaded, SHALLOW_METHODS[method])
    metrics = evaluate_run(run, k=100)
    assert metrics["method"] == method and 0.1 < metrics["mAP@100"] <= 1.0
    codes, ids = run.load_codes("query")
    from hashlearn.data import load_dataset

    np.testing.assert_array_equal(codes, estimator.encode(load_dataset("digits").data[ids]))
