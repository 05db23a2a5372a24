import math

import numpy as np
import pytest
import torch

from hashlearn.attacks import ATTACKS, FGSM, HAG, PGD, AttackResult, HashAttack, pre_activation
from hashlearn.codes import hamming_distances, sign_to_codes

UNTARGETED = [HAG, PGD, FGSM]


def make(attack_cls, model, **kwargs):
    if attack_cls is not FGSM:
        kwargs.setdefault("steps", 5)
    return attack_cls(model, **kwargs)


@pytest.mark.parametrize("attack_cls", UNTARGETED)
@pytest.mark.parametrize("eps", [8 / 255, 0.05])
def test_linf_budget_and_range(attack_cls, trained_model, queries, eps):
    x, _ = queries
    result = make(attack_cls, trained_model, eps=eps, random_start=True).attack(x)
    delta = result.x_adv - x
    assert delta.abs().max().item() <= eps + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    np.testing.assert_allclose(result.records["linf"], delta.abs().flatten(1).amax(1).numpy(), atol=1e-6)


@pytest.mark.parametrize("attack_cls", UNTARGETED)
def test_l2_budget(attack_cls, trained_model, queries):
    x, _ = queries
    eps = 0.5
    result = make(attack_cls, trained_model, eps=eps, norm="l2", random_start=True).attack(x)
    norms = (result.x_adv - x).flatten(1).norm(dim=1)
    assert norms.max().item() <= eps + 1e-5
    assert norms.max().item() > eps / 2  # the budget is actually used
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    np.testing.assert_allclose(result.records["l2"], norms.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(result.records["rmse"], result.records["l2"] / math.sqrt(x.shape[1]), rtol=1e-6)


def test_records_match_a_reference(trained_model, queries):
    x, _ = queries
    result = PGD(trained_model, eps=0.1, steps=5).attack(x)
    expected = hamming_distances(trained_model.encode(x), trained_model.encode(result.x_adv)).diagonal()
    np.testing.assert_array_equal(result.records["bits_flipped"], expected)
    assert isinstance(result, AttackResult) and result.seconds > 0
    assert result.seconds_per_query == pytest.approx(result.seconds / len(x))


@pytest.mark.parametrize("start_mode", [True, False])
def test_mode_restored_and_parameters_untouched(trained_model, queries, start_mode):
    x, _ = queries
    trained_model.train(start_mode)
    trained_model.backbone.net[0].train(not start_mode)  # a mixed state survives too
    flags = {name: p.requires_grad for name, p in trained_model.named_parameters()}
    seen_modes = []
    hook = trained_model.register_forward_hook(lambda module, args, out: seen_modes.append(module.training))
    try:
        HAG(trained_model, eps=0.05, steps=2).attack(x)
    finally:
        hook.remove()
        modes = (trained_model.training, trained_model.backbone.net[0].training)
        trained_model.eval()
    assert modes == (start_mode, not start_mode)
    assert not any(seen_modes)  # eval mode while attacking
    assert flags == {name: p.requires_grad for name, p in trained_model.named_parameters()}
    assert all(p.grad is None for p in trained_model.parameters())


def test_mode_restored_on_error(trained_model, queries):
    x, _ = queries

    def broken(outputs, reference):
        raise RuntimeError("boom")

    trained_model.train()
    with pytest.raises(RuntimeError, match="boom"):
        PGD(trained_model, steps=2, objective=broken).attack(x)
    assert trained_model.training
    trained_model.eval()


@pytest.mark.parametrize("attack_cls", UNTARGETED)
def test_same_seed_same_result(attack_cls, trained_model, queries):
    x, _ = queries
    first = make(attack_cls, trained_model, random_start=True, seed=3).attack(x).x_adv
    second = make(attack_cls, trained_model, random_start=True, seed=3).attack(x).x_adv
    other = make(attack_cls, trained_model, random_start=True, seed=4).attack(x).x_adv
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"eps": 0}, "eps"),
        ({"eps": -0.1}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"eps": "8/255"}, "eps"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"step_size": -1.0}, "step_size"),
        ({"norm": "l1"}, "norm"),
        ({"random_start": 1}, "random_start"),
        ({"seed": -1}, "seed"),
        ({"clip": (1.0, 0.0)}, "clip"),
        ({"clip": 1.0}, "clip"),
        ({"objective": 3}, "objective"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_parameters(trained_model, kwargs, name):
    with pytest.raises(ValueError, match=name):
        PGD(trained_model, **kwargs)


def test_invalid_attack_specific_parameters(trained_model):
    with pytest.raises(ValueError, match="margin"):
        HAG(trained_model, margin=2.0)
    with pytest.raises(ValueError, match="alpha_start"):
        HAG(trained_model, alpha_start=0)
    with pytest.raises(ValueError, match="steps"):
        FGSM(trained_model, steps=10)
    with pytest.raises(ValueError, match="model"):
        PGD("not a model")


def test_invalid_inputs(trained_model, queries):
    x, _ = queries
    attack = PGD(trained_model, steps=1)
    with pytest.raises(ValueError, match="clip range"):
        attack.attack(x + 2)
    with pytest.raises(ValueError, match="NaN"):
        attack.attack(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="x must be a batch"):
        attack.attack(x[0])
    with pytest.raises(ValueError, match="target_codes"):
        attack.attack(x, target_codes=np.zeros((len(x) + 1, 2), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        attack.attack(x, target_codes=np.zeros((len(x), 2), np.int64))
    with pytest.raises(ValueError, match="per-sample loss"):
        PGD(trained_model, steps=1, objective=lambda o, r: (o * r).sum()).attack(x)


def test_numpy_input_and_feature_vectors_without_clip(trained_model, queries):
    x, _ = queries
    shifted = (x * 10 - 5).numpy()  # embeddings: outside [0, 1]
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    result = PGD(model, eps=0.5, steps=3, clip=None).attack(shifted)
    delta = result.x_adv - torch.as_tensor(shifted)
    assert delta.abs().max().item() <= 0.5 + 1e-6
    assert result.x_adv.min() < 0  # no [0, 1] clipping
    custom = PGD(model, eps=0.5, steps=3, clip=(-5.0, 5.0)).attack(shifted).x_adv
    assert custom.min() >= -5 and custom.max() <= 5


def test_pre_activation_matches_the_tanh_head(trained_model, queries):
    x, _ = queries
    with torch.no_grad():
        exact = pre_activation(trained_model, x)
        np.testing.assert_allclose(torch.tanh(exact).numpy(), trained_model(x).numpy(), atol=1e-6)
        generic = torch.nn.Sequential(trained_model)  # no .head: falls back to atanh
        recovered = pre_activation(generic, x)
    near_zero = exact.abs() < 3
    np.testing.assert_allclose(recovered[near_zero].numpy(), exact[near_zero].numpy(), atol=1e-3)


def test_custom_objective_is_used(trained_model, queries):
    x, _ = queries
    calls = []

    def keep_code(outputs, reference):  # minimising -<f, b> keeps the clean code
        calls.append(outputs.shape)
        return -(outputs * reference).sum(1)

    result = PGD(trained_model, eps=0.05, steps=3, objective=keep_code).attack(x)
    assert len(calls) == 3
    assert result.records["bits_flipped"].mean() < 1


def test_repr_and_registry(trained_model):
    attack = HAG(trained_model, eps=0.1, steps=7)
    assert repr(attack).startswith("HAG(eps=0.1, norm='linf', steps=7,")
    assert "margin=0.5" in repr(attack)
    assert set(ATTACKS) >= {"hag", "pgd", "fgsm", "dhta", "p2p", "prototype"}
    assert all(issubclass(cls, HashAttack) for cls in ATTACKS.values())


def test_attack_does_not_print(trained_model, queries, capsys):
    x, _ = queries
    HAG(trained_model, steps=2).attack(x)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_batches_give_the_same_result_without_random_start(trained_model, queries):
    x, _ = queries
    whole = PGD(trained_model, steps=3, random_start=False, batch_size=256).attack(x).x_adv
    split = PGD(trained_model, steps=3, random_start=False, batch_size=7).attack(x).x_adv
    torch.testing.assert_close(whole, split)
    assert sign_to_codes(trained_model(whole)).shape == (len(x), 2)
