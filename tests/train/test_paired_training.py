"""The trainer's paired-batch path: (X_image, X_text) inputs, a two-tower model, a cross-modal loss."""

import numpy as np
import pytest
import torch

from hashlearn.eval.crossmodal import crossmodal_map
from hashlearn.losses import build_objective
from hashlearn.models.two_tower import TwoTowerHashModel, build_two_tower
from hashlearn.train import TrainConfig, Trainer


def paired_data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = (np.eye(4)[labels] @ rng.normal(size=(4, 12)) + 0.5 * rng.normal(size=(n, 12))).astype(np.float32)
    texts = (np.eye(4)[labels] @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(n, 6))).astype(np.float32)
    return images, texts, labels


@pytest.mark.parametrize("method", ["dcmh", "ssah", "dcmh+hswd", "ssah+swd"])
def test_cross_modal_methods_learn_aligned_codes(method, tmp_path):
    images, texts, labels = paired_data()
    model = build_two_tower(16, (12,), (6,), seed=0, hidden=(32,))
    objective = build_objective(method, 16, 4)
    result = Trainer(TrainConfig(epochs=8, batch_size=32, lr=3e-3)).fit(
        model, objective, train=((images[:96], texts[:96]), labels[:96]), val=((images[96:], texts[96:]), labels[96:]),
        run_dir=tmp_path)
    assert result.best_metric > 0.8  # mean of I->T and T->I mAP on the validation pairs
    q = slice(96, None)
    maps = crossmodal_map(model.encode(images[q], "image"), model.encode(texts[q], "text"), model.encode(images[:96], "image"),
                          model.encode(texts[:96], "text"), labels[q], labels[:96], k=None)
    assert (maps["I->T"] + maps["T->I"]) / 2 == pytest.approx(result.best_metric, abs=1e-9)
    reloaded = TwoTowerHashModel.load(tmp_path / "model")  # the trainer saved the best model
    np.testing.assert_array_equal(reloaded.encode(texts, "text"), model.encode(texts, "text"))


def test_paired_inputs_are_validated():
    images, texts, labels = paired_data(16)
    model = build_two_tower(16, (12,), (6,))
    trainer = Trainer(TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="one row per pair"):
        trainer.fit(model, build_objective("dcmh", 16, 4), train=((images, texts[:8]), labels))
    with pytest.raises(ValueError, match="pair"):
        trainer.fit(model, build_objective("dcmh", 16, 4), train=((images, texts, texts), labels))
    with pytest.raises(ValueError, match="rows"):
        trainer.fit(model, build_objective("dcmh", 16, 4), train=((images, texts), labels[:8]))
