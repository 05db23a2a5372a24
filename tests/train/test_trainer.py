import json

import numpy as np
import pytest
import torch

from hashlearn.codes import sign_to_codes
from hashlearn.eval.metrics import mean_average_precision
from hashlearn.train import Trainer, TrainConfig
from hashlearn.train.validation import retrieval_map

from .conftest import PairwiseObjective, make_model


def _fallback_map(query_codes, db_codes, query_labels, db_labels, k):
    """Slow reference mAP@k: loop over queries, rank by (distance, id), AP over relevant hits in the top k."""
    from hashlearn.codes import hamming_distances

    distances = hamming_distances(query_codes, db_codes)
    scores = []
    for row, label in zip(distances, query_labels):
        ranked = sorted(range(len(row)), key=lambda i: (row[i], i))[:k]
        hits, total = 0, 0.0
        for rank, index in enumerate(ranked, start=1):
            if db_labels[index] == label:
                hits += 1
                total += hits / rank
        scores.append(total / hits if hits else 0.0)
    return float(np.mean(scores))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_improves_val_map_over_random_init(digits_split):
    train, val = digits_split
    model = make_model()
    codes = lambda m, X: m.encode(X)  # noqa: E731
    start = retrieval_map(codes(model, val[0]), codes(model, train[0]), val[1], train[1], 1000)
    result = Trainer(TrainConfig(epochs=3, batch_size=64, lr=3e-3)).fit(model, PairwiseObjective(), train=train, val=val)
    after = retrieval_map(codes(model, val[0]), codes(model, train[0]), val[1], train[1], 1000)
    assert after > start + 0.1
    assert result.best_metric == pytest.approx(after)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.seconds_per_epoch > 0 and result.seconds_to_best > 0


def test_same_seed_gives_identical_weights(digits_split):
    train, val = digits_split
    runs = []
    for _ in range(2):
        model = make_model(dropout=0.2)
        Trainer(TrainConfig(epochs=2, batch_size=100, seed=3)).fit(model, PairwiseObjective(), train=train, val=val)
        runs.append(_weights(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = make_model(dropout=0.2)
    Trainer(TrainConfig(epochs=2, batch_size=100, seed=4)).fit(other, PairwiseObjective(), train=train, val=val)
    assert not all(torch.equal(runs[0][k], other.state_dict()[k]) for k in runs[0])


def test_objective_parameters_are_trained_and_epoch_hook_called(digits_split):
    train, val = digits_split
    objective = PairwiseObjective()
    Trainer(TrainConfig(epochs=2, batch_size=200)).fit(make_model(), objective, train=train, val=val)
    assert objective.epochs_seen == [0, 1]
    assert objective.log_scale.item() != 0.0


def test_early_stopping_keeps_best_val_weights(digits_split):
    train, val = digits_split
    scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0])
    snapshots = []

    def val_metric(model, X_val, y_val):
        snapshots.append(_weights(model))
        return next(scores)

    model = make_model()
    result = Trainer(TrainConfig(epochs=8, batch_size=200, patience=2)).fit(model, PairwiseObjective(), train=train, val=val, val_metric=val_metric)
    assert result.best_epoch == 2 and result.best_metric == 0.9
    assert len(result.history) == 4 and result.stopped_early
    assert all(torch.equal(model.state_dict()[k], snapshots[1][k]) for k in snapshots[1])


def test_val_metric_receives_val_split_only(digits_split):
    train, val = digits_split
    seen = []
    Trainer(TrainConfig(epochs=1)).fit(
        make_model(), PairwiseObjective(), train=train, val=val, val_metric=lambda m, X, y: seen.append((X.shape, y.shape)) or 0.0
    )
    assert seen == [((len(val[0]), 64), (len(val[0]),))]


def test_batch_transform_is_applied_and_train_mode_restored(digits_split):
    train, val = digits_split
    seen_by_transform, seen_by_model = [], []

    def transform(model, x, y):
        seen_by_transform.append((x.clone(), y.clone()))
        model.eval()  # a transform may leave eval mode on; the trainer must switch back
        return x + 0.01

    model = make_model()
    original_forward = model.forward

    def forward(x):
        seen_by_model.append((model.training, x.clone()))
        return original_forward(x)

    model.forward = forward
    Trainer(TrainConfig(epochs=2, batch_size=250)).fit(model, PairwiseObjective(), train=train, batch_transform=transform)
    # 600 items in batches of 250: 3 batches per epoch, each through the transform once
    assert [len(x) for x, _ in seen_by_transform] == [250, 250, 100] * 2
    X = torch.as_tensor(train[0], dtype=torch.float32)
    for x, y in seen_by_transform[:3]:  # the transform gets real training rows with their labels
        rows = [int(np.flatnonzero((X == row).all(dim=1))[0]) for row in x]
        np.testing.assert_array_equal(y.numpy(), train[1][rows])
    epoch_one = torch.cat([x for x, _ in seen_by_transform[:3]])
    assert sorted(map(tuple, epoch_one.tolist())) == sorted(map(tuple, X.tolist()))  # every row once per epoch
    training_calls = [(mode, x) for mode, x in seen_by_model if mode]
    assert len(training_calls) == 6 and all(mode for mode, _ in seen_by_model[:6])  # train mode restored
    for (_, fed), (original, _) in zip(training_calls, seen_by_transform):
        torch.testing.assert_close(fed, original + 0.01)  # the model trains on the transformed batch


def test_optimizers_and_schedulers(digits_split):
    train, val = digits_split
    for optimizer, scheduler in [("sgd", "step"), ("adamw", "cosine"), ("adam", None)]:
        config = TrainConfig(epochs=2, batch_size=400, optimizer=optimizer, scheduler=scheduler, lr=0.01, step_size=1, gamma=0.5)
        result = Trainer(config).fit(make_model(), PairwiseObjective(), train=train)
        lrs = [row["lr"] for row in result.history]
        expected = {"step": [0.01, 0.005], "cosine": [0.01, 0.005], None: [0.01, 0.01]}[scheduler]
        assert lrs == pytest.approx(expected)


def test_multi_hot_labels_and_tensor_inputs():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(80, 64)).astype(np.float32))
    y = (rng.random((80, 5)) < 0.3).astype(np.uint8)
    y[:, 0] |= y.sum(1) == 0

    class MultiLabel(torch.nn.Module):
        def forward(self, outputs, labels):
            assert labels.dtype == torch.float32 and labels.shape[1] == 5
            similar = (labels @ labels.T > 0).float()
            return ((outputs @ outputs.T / outputs.shape[1] - (2 * similar - 1)) ** 2).mean()

    model = make_model()
    result = Trainer(TrainConfig(epochs=2, batch_size=40)).fit(model, MultiLabel(), train=(X, y), val=(X[:20], y[:20]))
    # the selected metric is mAP@1000 of the val codes against the train codes with multi-hot
    # relevance (sharing a label), recomputed here on the model the trainer kept
    with torch.no_grad():
        model.eval()
        train_codes, val_codes = sign_to_codes(model(X).numpy()), sign_to_codes(model(X[:20]).numpy())
    expected = mean_average_precision(val_codes, train_codes, y[:20], y, k=1000)
    assert result.best_metric == pytest.approx(expected)
    assert result.best_metric == max(row["val_metric"] for row in result.history)
    # the val items are train items: each finds itself at distance 0, so mAP is well above chance
    assert result.best_metric > 0.5


def test_bad_inputs_raise_typed_errors(digits_split):
    train, _ = digits_split
    trainer = Trainer(TrainConfig(epochs=1))
    with pytest.raises(TypeError, match="train"):
        trainer.fit(make_model(), PairwiseObjective(), train=train[0])
    with pytest.raises(ValueError, match="rows"):
        trainer.fit(make_model(), PairwiseObjective(), train=(train[0], train[1][:10]))
    with pytest.raises(TypeError, match="nn.Module"):
        trainer.fit(make_model(), lambda o, y: o.sum(), train=train)
    with pytest.raises(ValueError, match="run_dir"):
        trainer.fit(make_model(), PairwiseObjective(), train=train, resume=True)
    with pytest.raises(ValueError, match="trainer.optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_run_dir_contents_and_resume_matches_uninterrupted(digits_split, tmp_path):
    train, val = digits_split
    config = TrainConfig(epochs=4, batch_size=100, scheduler="cosine", seed=1)

    full = make_model(dropout=0.1)
    full_result = Trainer(config).fit(full, PairwiseObjective(), train=train, val=val, run_dir=tmp_path / "full")
    for name in ("trainer_config.json", "history.json", "train_result.json", "checkpoint/last.json", "checkpoint/last.safetensors", "model/model.safetensors"):
        assert (tmp_path / "full" / name).exists(), name
    assert len(json.loads((tmp_path / "full" / "history.json").read_text())) == 4

    class Crash(Exception):
        pass

    calls = {"n": 0}
    batches_per_epoch = int(np.ceil(len(train[0]) / 100))

    def crash_in_third_epoch(model, x, y):
        calls["n"] += 1
        if calls["n"] > 2 * batches_per_epoch:
            raise Crash
        return x

    interrupted = make_model(dropout=0.1)
    with pytest.raises(Crash):
        Trainer(config).fit(interrupted, PairwiseObjective(), train=train, val=val, run_dir=tmp_path / "cut", batch_transform=crash_in_third_epoch)
    assert json.loads((tmp_path / "cut" / "checkpoint" / "last.json").read_text())["state"]["epoch"] == 2

    resumed = make_model(seed=99, dropout=0.1)  # different init: everything must come from the checkpoint
    resumed_result = Trainer(config).fit(resumed, PairwiseObjective(), train=train, val=val, run_dir=tmp_path / "cut", resume=True)
    assert all(torch.equal(full.state_dict()[k], resumed.state_dict()[k]) for k in full.state_dict())
    assert [r["train_loss"] for r in resumed_result.history] == [r["train_loss"] for r in full_result.history]
    assert resumed_result.best_epoch == full_result.best_epoch


def test_default_metric_matches_reference_map(digits_split):
    train, val = digits_split
    model = make_model()
    val = (val[0][:40], val[1][:40])
    result = Trainer(TrainConfig(epochs=1, val_k=50)).fit(model, PairwiseObjective(), train=train, val=val)
    codes_val, codes_train = sign_to_codes(model.transform(val[0])), sign_to_codes(model.transform(train[0]))
    assert result.best_metric == pytest.approx(_fallback_map(codes_val, codes_train, val[1], train[1], 50))
