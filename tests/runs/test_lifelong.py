"""The lifelong workflow: stages trained from `hashlearn train` runs, old database codes bit-for-bit frozen, indexes grown in place."""

import json

import numpy as np
import pytest

from hashlearn._io import sha256_bytes
from hashlearn.cli.main import main
from hashlearn.codes import reference_search
from hashlearn.index.io import load_index, read_header
from hashlearn.runs import evaluate_run, load_run
from hashlearn.runs.lifelong import append_stage_to_index, lifelong_run

from .conftest import run_interrupted_after_epoch_one

TINY = ["--method", "csq", "--bits", "16", "--dataset", "digits", "--epochs", "2", "--set", "model.hidden=[32]",
        "--set", "trainer.lr=0.01", "--set", "data.protocol=class-incremental", "--set", "trainer.val_k=100", "-q"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifelong")
    assert main(["train", *TINY, "--run-dir", str(root / "s1")]) == 0
    assert main(["index", "build", "--model", str(root / "s1"), "--factory", "MIH", "-o", str(root / "mih.hlx"), "-q"]) == 0
    assert main(["index", "build", "--model", str(root / "s1"), "--factory", "Flat", "-o", str(root / "flat.hlx"), "-q"]) == 0
    try:
        import distributed  # noqa: F401
    except ImportError:
        pass
    else:
        assert main(["index", "build", "--model", str(root / "s1"), "--factory", "Shard2(Flat)", "-o", str(root / "sharded.hlx"), "-q"]) == 0
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


@pytest.mark.parametrize("name", ["flat.hlx", "mih.hlx", "sharded.hlx"])
def test_index_grows_without_rebuilding_and_records_its_blocks(stages, tmp_path, name):
    root, _, records = stages
    if name == "sharded.hlx":
        pytest.importorskip("distributed")
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
    try:
        found = index.search(queries, 10)
    finally:
        getattr(index, "close", lambda: None)()
    assert read_header(grown)["kind"] == read_header(root / name)["kind"]
    assert np.array_equal(found.distances, expected.distances) and np.array_equal(found.ids, expected.ids)
    with pytest.raises(ValueError, match="not a lifelong stage"):
        append_stage_to_index(root / "s1", grown)


def test_exemplar_memory_is_earlier_training_items_weighted_to_balance_the_classes(stages):
    from hashlearn.data import load_dataset
    from hashlearn.runs.lifelong import DEFAULT_REPLAY, STAGE_LOSS, _replay_items, balanced_replay_weight

    root, _, (second, third) = stages
    labels = load_dataset("digits").labels
    s1, s2 = load_run(root / "s1").load_split(), load_run(root / "s2").load_split()
    memory = _replay_items([s1], labels, DEFAULT_REPLAY, load_run(root / "s2").config.data.seed + 2)
    assert second["n_replay"] == len(memory) > 0 and np.isin(memory, s1.train).all()
    assert second["replay_ids_sha256"] == sha256_bytes(np.sort(memory).tobytes())
    # the stage's config records the loss it trained with: the workflow's defaults plus the balancing weight
    loss = json.loads((root / "s2" / "config.json").read_text())["method"]["loss"]
    assert {key: loss[key] for key in STAGE_LOSS} == STAGE_LOSS
    per_new = len(s2.train) / 3
    per_old = second["n_replay"] / len(np.unique(labels[s1.train]))
    assert loss["replay_weight"] == pytest.approx(per_new / per_old)
    assert balanced_replay_weight(np.repeat([5, 6, 7], 40), np.repeat(np.arange(5), 8)) == 5.0
    # stage 3's memory is drawn from both earlier stages' training items
    assert third["n_replay"] > second["n_replay"]


def test_replay_weight_set_by_hand_is_kept_and_frozen_backbone_stays_the_parents(stages, tmp_path):
    import torch

    root, _, _ = stages
    lifelong_run(root / "s1", tmp_path / "frozen", epochs=1, freeze_backbone=True, overrides=["method.loss.replay_weight=2.5"])
    assert json.loads((tmp_path / "frozen" / "config.json").read_text())["method"]["loss"]["replay_weight"] == 2.5
    parent, child = load_run(root / "s1").load_model(), load_run(tmp_path / "frozen").load_model()
    for (name, before), after in zip(parent.backbone.state_dict().items(), child.backbone.state_dict().values()):
        assert torch.equal(before, after), name
    assert not torch.equal(parent.head.linear.weight, child.head.linear.weight)
    assert all(p.requires_grad for p in child.parameters())
    record = lifelong_run(root / "s1", tmp_path / "none", epochs=1, replay_per_class=0)
    assert record["n_replay"] == 0 and "replay_weight" not in json.loads((tmp_path / "none" / "config.json").read_text())["method"]["loss"]


def test_each_stage_records_its_centers_and_the_next_can_reuse_them(stages, tmp_path):
    from hashlearn.losses.lifelong import far_centers

    root, _, (second, third) = stages
    assert sorted(map(int, second["centers"])) == list(range(8)) and sorted(map(int, third["centers"])) == list(range(10))
    centers = np.array([second["centers"][str(c)] for c in range(8)])
    assert np.isin(centers, (-1, 1)).all() and centers.shape == (8, 16)
    # stage 2's new centers are far from its old (stage-1 majority) ones: as far as the greedy max-min choice goes
    assert np.array_equal(centers[5:], far_centers(centers[:5], 3, 16, seed=load_run(root / "s2").config.trainer.seed))
    # the default (old_centers="recorded"): stage 3 keeps the centers stage 2 trained its classes toward
    assert all(third["centers"][str(c)] == second["centers"][str(c)] for c in range(8))
    record = lifelong_run(root / "s2", tmp_path / "majority", epochs=1, overrides=["method.loss.old_centers=majority"])
    # with "majority" the old classes' centers are the bitwise majority of their stored codes
    from hashlearn.codes import codes_to_pm1
    from hashlearn.data import load_dataset

    codes, ids = load_run(root / "s2").load_codes("database")
    pm1, labels = codes_to_pm1(codes, 16), load_dataset("digits").labels[ids]
    for c in range(8):
        assert record["centers"][str(c)] == np.where(pm1[labels == c].sum(axis=0) >= 0, 1, -1).tolist()


def test_memory_items_can_carry_their_stored_codes_and_validation_searches_only_new_items(stages, tmp_path, monkeypatch):
    import hashlearn.runs.lifelong as workflow
    from hashlearn.codes import codes_to_pm1
    from hashlearn.data import load_dataset

    root, _, _ = stages
    codes, ids = load_run(root / "s1").load_codes("database")  # stage 2's stored old codes
    labels = load_dataset("digits").labels
    split = load_run(root / "s2").load_split()
    memory = np.sort(np.random.default_rng(0).choice(ids, 12, replace=False))
    train_index = np.concatenate([split.train[:5], memory])
    rows = workflow._memory_code_targets(labels[train_index], 10, 16, codes, ids, train_index)
    stored = {int(i): codes_to_pm1(codes[k : k + 1], 16)[0].tolist() for k, i in enumerate(ids)}
    for row, item in zip(rows, train_index):
        assert row[: 10].tolist() == np.eye(10)[labels[item]].tolist()
        has_code = item in memory
        assert row[10] == float(has_code)
        assert row[11:].tolist() == ([(b + 1) / 2 for b in stored[int(item)]] if has_code else [0.0] * 16)
    # the workflow: its validation metric sees the new stage's training items only, not the memory's fresh codes
    seen = {}
    original = workflow.old_and_new_val_metric

    def spy(train, *args, **kwargs):
        seen["n"] = len(train[1])
        return original(train, *args, **kwargs)

    monkeypatch.setattr(workflow, "old_and_new_val_metric", spy)
    record = lifelong_run(root / "s1", tmp_path / "codes", epochs=1, overrides=["method.loss.memory_targets=codes"])
    assert record["n_replay"] > 0 and seen["n"] == record["n_train"]
    assert json.loads((tmp_path / "codes" / "config.json").read_text())["method"]["loss"]["memory_targets"] == "codes"
    assert np.array_equal(load_run(tmp_path / "codes").load_codes("database")[0][: len(codes)], codes)


def test_validation_metric_scores_an_evenly_spaced_subset_of_at_most_max_queries_items():
    from hashlearn.codes import sign_to_codes
    from hashlearn.eval.metrics import mean_average_precision
    from hashlearn.runs.lifelong import old_and_new_val_metric

    rng = np.random.default_rng(0)

    class Sign:  # a "model" whose codes are the signs of its inputs
        def encode(self, X):
            return sign_to_codes(np.where(np.asarray(X) > 0, 1.0, -1.0))

    X_train, y_train = rng.normal(size=(30, 16)), rng.integers(0, 3, 30)
    old_codes, old_labels = sign_to_codes(np.where(rng.random((40, 16)) < 0.5, -1.0, 1.0)), rng.integers(0, 3, 40)
    X_val, y_val = rng.normal(size=(25, 16)), rng.integers(0, 3, 25)
    db, db_labels = np.concatenate([old_codes, Sign().encode(X_train)]), np.concatenate([old_labels, y_train])
    for max_queries, step in ((None, 1), (25, 1), (10, 3), (5, 5)):
        metric = old_and_new_val_metric((X_train, y_train), old_codes, old_labels, k=20, max_queries=max_queries)
        expected = mean_average_precision(Sign().encode(X_val[::step]), db, y_val[::step], db_labels, k=20)
        assert metric(Sign(), X_val, y_val) == pytest.approx(expected), max_queries


def test_an_interrupted_stage_resumes_to_the_same_codes_and_refuses_another_start(stages, tmp_path, monkeypatch):
    root, _, _ = stages
    whole = lifelong_run(root / "s1", tmp_path / "whole", epochs=2)
    run_interrupted_after_epoch_one(monkeypatch, lambda: lifelong_run(root / "s1", tmp_path / "cut", epochs=2))
    assert not load_run(tmp_path / "cut").is_lifelong_stage
    with pytest.raises(ValueError, match="replay_per_class"):
        lifelong_run(root / "s1", tmp_path / "cut", replay_per_class=3, resume=True)
    with pytest.raises(ValueError, match="parent"):
        lifelong_run(tmp_path / "whole", tmp_path / "cut", resume=True)
    with pytest.raises(ValueError, match="--set"):
        lifelong_run(root / "s1", tmp_path / "cut", overrides=["trainer.lr=0.1"], resume=True)
    resumed = lifelong_run(root / "s1", tmp_path / "cut", resume=True)
    assert resumed["resumed"] and not whole["resumed"]
    # the Trainer's resume replays the same batches: the stage ends where the uninterrupted one did
    assert resumed["model_version"] == whole["model_version"]
    assert np.array_equal(load_run(tmp_path / "cut").load_codes("database")[0], load_run(tmp_path / "whole").load_codes("database")[0])
    assert resumed["blocks"][:-1] == whole["blocks"][:-1] and resumed["metrics"] == whole["metrics"]
    with pytest.raises(ValueError, match="finished"):
        lifelong_run(root / "s1", tmp_path / "cut", resume=True)
    # a checkpointed run without the record of a stage start (e.g. an ordinary `hashlearn train` run) is not resumed as a stage
    (tmp_path / "whole" / "checkpoint" / "lifelong_stage.json").unlink()
    (tmp_path / "whole" / "lifelong.json").unlink()
    with pytest.raises(ValueError, match="not an interrupted lifelong stage"):
        lifelong_run(root / "s1", tmp_path / "whole", resume=True)
