import numpy as np
import pytest
import torch
from torch import nn

from hashlearn.attacks.backdoor import LIRA, TriggerGenerator
from hashlearn.attacks.backdoor.lira import final_linear, forward_with_features
from hashlearn.errors import NotFittedError
from hashlearn.models import Classifier, HashModel


def _toy(n=96, side=8, seed=0):
    """Three classes of 8x8 images that differ by which third of the rows is bright."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.random((n, side, side), dtype=np.float32) * 0.3
    for c in range(3):
        X[y == c, c * 2 : c * 2 + 3, :] += 0.6
    return X.clip(0, 1), y


def _victim(seed=0):
    torch.manual_seed(seed)
    return Classifier("small_cnn", 3, {"in_channels": 1, "image_size": 8, "width": 4, "out_features": 16})


@pytest.mark.parametrize("eps", [0.0, -0.01, float("inf")])
def test_eps_must_be_positive_and_finite(eps):
    with pytest.raises(ValueError, match="eps"):
        LIRA(eps=eps)


def test_trigger_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError):
        LIRA().trigger(torch.zeros(1, 8, 8))


@pytest.mark.parametrize("second_order", [False, True])
def test_stage1_trigger_respects_budget_and_range(second_order):
    X, y = _toy()
    attack = LIRA(eps=0.03, stage1_epochs=1, batch_size=32, second_order=second_order, target_class=0)
    attack.fit_trigger(_victim(), nn.CrossEntropyLoss(), X, y)
    triggered = attack.apply_trigger(X)
    assert triggered.shape == X.shape
    assert np.abs(triggered - X).max() <= 0.03 + 1e-6
    assert triggered.min() >= 0 and triggered.max() <= 1
    assert np.abs(triggered - X).max() > 0  # the trigger does something
    assert len(attack.stage1_history_) == 1


def test_generator_output_in_minus_one_one_for_odd_sizes():
    out = TriggerGenerator(1, 4)(torch.rand(2, 1, 9, 9) * 10)
    assert out.shape == (2, 1, 9, 9) and out.abs().max() <= 1


def test_lookahead_does_not_touch_batchnorm_statistics_twice():
    X, y = _toy(n=32)
    victim = _victim()
    attack = LIRA(stage1_epochs=1, batch_size=32)
    before = victim.backbone.features[1].num_batches_tracked.item()
    attack.fit_trigger(victim, nn.CrossEntropyLoss(), X, y)
    # one victim forward on clean + one on poisoned inputs per batch; the look-ahead uses copies
    assert victim.backbone.features[1].num_batches_tracked.item() - before == 2


def test_stage1_learns_the_backdoor_on_toy_data():
    X, y = _toy(n=96)
    victim = _victim()
    attack = LIRA(eps=0.1, stage1_epochs=6, batch_size=32, trigger_lr=1e-2, victim_lr=3e-3, target_class=0)
    attack.fit_trigger(victim, nn.CrossEntropyLoss(), X, y)
    history = attack.stage1_history_
    assert history[-1]["poisoned_loss"] < history[0]["poisoned_loss"]


def test_fit_runs_both_stages_with_the_trainer():
    from hashlearn.train import TrainConfig

    X, y = _toy()
    attack = LIRA(eps=0.05, stage1_epochs=1, batch_size=32, rate=0.25, target_class=1)
    result = attack.fit(_victim(), nn.CrossEntropyLoss(), train=(X, y), config=TrainConfig(epochs=1, batch_size=32))
    assert len(result.poisoned.poison_indices) == 24
    assert (result.poisoned.y[result.poisoned.poison_indices] == 1).all()
    assert np.abs(result.poisoned.X - X).max() <= 0.05 + 1e-6


def test_trigger_save_load_round_trip(tmp_path):
    X, y = _toy(n=32)
    attack = LIRA(stage1_epochs=1, batch_size=32).fit_trigger(_victim(), nn.CrossEntropyLoss(), X, y)
    attack.save_trigger(tmp_path)
    loaded = LIRA().load_trigger(tmp_path)
    assert np.array_equal(attack.apply_trigger(X), loaded.apply_trigger(X))


def test_features_hook_matches_features_method():
    victim = _victim().eval()
    x = torch.rand(4, 8, 8)
    out, features = forward_with_features(victim, x)
    assert torch.allclose(out, victim(x)) and torch.allclose(features, victim.features(x))
    hash_model = HashModel("mlp", 8, {"in_features": 64, "hidden": [16]})
    assert final_linear(hash_model) is hash_model.head.linear
    with pytest.raises(TypeError):
        final_linear(nn.Linear(2, 2))
