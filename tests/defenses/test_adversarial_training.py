import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hashlearn.attacks import HAG, PGD
from hashlearn.defenses.adversarial_training import AdversarialTraining
from hashlearn.models import HashModel
from hashlearn.train import Trainer, TrainConfig


class PairwiseLikelihood(torch.nn.Module):
    """A small DPSH-like objective, local to the tests."""

    def forward(self, codes, labels):
        similar = (labels[:, None] == labels[None, :]).float()
        theta = codes @ codes.T / 2
        return (torch.nn.functional.softplus(theta) - similar * theta).mean() + 0.1 * (codes - codes.sign()).pow(2).mean()


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)


def small_model(seed=0):
    torch.manual_seed(seed)
    return HashModel("mlp", 16, {"in_features": 64, "hidden": (32,)})


def test_transform_respects_budget_and_fraction(digits):
    x, y = digits[0][:40], digits[1][:40]
    model = small_model()
    transform = AdversarialTraining(attack=PGD, eps=0.1, steps=3, fraction=0.5)
    x_adv = transform(model, x, y)
    changed = (x_adv != x).flatten(1).any(dim=1)
    assert changed.sum() <= 20 and changed.sum() > 10
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("mode", [True, False])
def test_mode_restored(digits, mode):
    x, y = digits[0][:16], digits[1][:16]
    model = small_model()
    model.train(mode)
    AdversarialTraining(attack=PGD, eps=0.1, steps=2)(model, x, y)
    assert model.training is mode


def test_deterministic_for_a_seed(digits):
    x, y = digits[0][:32], digits[1][:32]
    model = small_model()
    first = AdversarialTraining(attack=PGD, eps=0.1, steps=2, seed=5)(model, x, y)
    second = AdversarialTraining(attack=PGD, eps=0.1, steps=2, seed=5)(model, x, y)
    other = AdversarialTraining(attack=PGD, eps=0.1, steps=2, seed=6)(model, x, y)
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_center_codes_against_a_loop(digits):
    x, y = digits[0][:60], digits[1][:60]
    model = small_model()
    transform = AdversarialTraining(attack=PGD, momentum=0.5)
    with torch.no_grad():
        outputs = model.eval()(x)
    centers = transform.center_codes(model, x[:30], y[:30])
    centers = transform.center_codes(model, x[30:], y[30:])
    for row, label in enumerate(y[30:].tolist()):
        first = outputs[:30][y[:30] == label]
        second = outputs[30:][y[30:] == label]
        mean = second.mean(0) if len(first) == 0 else 0.5 * first.mean(0) + 0.5 * second.mean(0)
        expected = torch.where(mean >= 0, 1.0, -1.0)
        assert torch.equal(centers[row], expected)


def test_multi_hot_centers(digits):
    x, y = digits[0][:30], digits[1][:30]
    model = small_model()
    multi = AdversarialTraining(attack=PGD).center_codes(model, x, torch.nn.functional.one_hot(y, 10).float())
    single = AdversarialTraining(attack=PGD).center_codes(model, x, y)
    assert torch.equal(multi, single)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"reference": "mean"}, "reference"),
        ({"eps": 0}, "eps"),
        ({"steps": 0}, "steps"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": 0}, "fraction"),
        ({"momentum": 1.0}, "momentum"),
        ({"norm": "l1"}, "norm"),
        ({"step_size": -1.0}, "step_size"),
        ({"clip": (1, 0)}, "clip"),
    ],
)
def test_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AdversarialTraining(attack=PGD, **kwargs)


def test_attack_is_injected_and_required():
    with pytest.raises(TypeError, match="attack"):
        AdversarialTraining(eps=0.1)
    with pytest.raises(TypeError, match="attack must be an attack class"):
        AdversarialTraining(attack="pgd")
    assert "attack=HAG" in repr(AdversarialTraining(attack=HAG, eps=0.1, steps=2))


@pytest.mark.parametrize("reference", ["center", "benign"])
def test_adversarial_training_through_the_trainer_improves_robustness(digits, reference):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    try:
        check_robustness_improves(digits, reference)
    finally:
        torch.set_num_threads(threads)


def check_robustness_improves(digits, reference):
    x, y = digits
    train, val, queries = (x[:800], y[:800]), (x[800:1000], y[800:1000]), (x[1500:1600], y[1500:1600])
    config = TrainConfig(epochs=8, batch_size=64, lr=3e-3, seed=0)
    eps = 0.15
    standard = small_model()
    Trainer(config).fit(standard, PairwiseLikelihood(), train=train, val=val)
    robust = small_model()
    transform = AdversarialTraining(reference, attack=PGD, eps=eps, steps=3)
    Trainer(config).fit(robust, PairwiseLikelihood(), train=train, val=val, batch_transform=transform)
    assert transform.n_calls_ > 0
    flips = {name: HAG(m, eps=eps, steps=20).attack(queries[0]).records["bits_flipped"].mean() for name, m in [("standard", standard), ("robust", robust)]}
    assert flips["robust"] < flips["standard"]
