import numpy as np
import pytest
import torch

from hashlearn.attacks import CMLA
from hashlearn.defenses.crossmodal_adversarial import CrossModalAdversarialTraining
from hashlearn.losses import build_objective
from hashlearn.models.two_tower import build_two_tower
from hashlearn.train import TrainConfig, Trainer

BUDGETS = {"image": dict(eps=0.1, norm="linf", clip=(0.0, 1.0)), "text": dict(eps=0.5, norm="l2", clip=None)}


def cmla_factory(steps=3):
    return lambda tower, modality, seed: CMLA(tower, steps=steps, seed=seed, **BUDGETS[modality])


def paired_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = np.clip(np.eye(4)[labels].repeat(4, axis=1) * 0.8 + rng.random((n, 16)) * 0.2, 0, 1).astype(np.float32)
    texts = (np.eye(4)[labels] * 2 + rng.normal(size=(n, 4)) * 0.3).astype(np.float32)
    return images, texts, labels


def test_replaces_the_chosen_share_within_each_budget():
    torch.manual_seed(0)
    model = build_two_tower(16, (16,), (4,), hidden=(16,))
    images, texts, labels = paired_data()
    transform = CrossModalAdversarialTraining(cmla_factory(), fraction=0.25, seed=1)
    x_images, x_texts = torch.from_numpy(images), torch.from_numpy(texts)
    model.train()
    adv_images, adv_texts = transform(model, (x_images, x_texts), torch.from_numpy(labels))
    changed = (adv_images != x_images).any(dim=1)
    assert int(changed.sum()) <= 16 and int(((adv_texts != x_texts).any(dim=1)).sum()) <= 16
    assert torch.equal(changed | ~(adv_texts != x_texts).any(dim=1), changed | ~(adv_texts != x_texts).any(dim=1))
    assert float((adv_images - x_images).abs().max()) <= 0.1 + 1e-6
    assert float((adv_texts - x_texts).norm(dim=1).max()) <= 0.5 + 1e-5
    assert model.training  # modes restored by the attack


def test_only_the_chosen_modalities_move():
    torch.manual_seed(0)
    model = build_two_tower(16, (16,), (4,), hidden=(16,))
    images, texts, _ = paired_data()
    transform = CrossModalAdversarialTraining(cmla_factory(), modalities=("text",), fraction=1.0)
    adv_images, adv_texts = transform(model, (torch.from_numpy(images), torch.from_numpy(texts)), None)
    assert torch.equal(adv_images, torch.from_numpy(images)) and not torch.equal(adv_texts, torch.from_numpy(texts))


def test_trains_through_the_trainer_hook():
    torch.manual_seed(0)
    images, texts, labels = paired_data(96)
    model = build_two_tower(16, (16,), (4,), hidden=(16,))
    objective = build_objective("dcmh", 16, 4)
    transform = CrossModalAdversarialTraining(cmla_factory(2), fraction=0.5)
    result = Trainer(TrainConfig(epochs=3, batch_size=32, lr=3e-3)).fit(
        model, objective, train=((images, texts), labels), val=((images[:32], texts[:32]), labels[:32]), batch_transform=transform)
    assert transform.n_calls_ == 9 and len(result.history) == 3 and result.best_metric > 0.5


def test_validation():
    with pytest.raises(TypeError, match="attack_factory"):
        CrossModalAdversarialTraining(None)
    with pytest.raises(ValueError, match="modalities"):
        CrossModalAdversarialTraining(cmla_factory(), modalities=("audio",))
    with pytest.raises(ValueError, match="fraction"):
        CrossModalAdversarialTraining(cmla_factory(), fraction=0)
    transform = CrossModalAdversarialTraining(cmla_factory())
    with pytest.raises(TypeError, match="pair"):
        transform(build_two_tower(16, (16,), (4,)), torch.zeros(2, 16), None)
