import numpy as np
import pytest
import torch

from hashlearn.attacks import ATTACKS, CMLA
from hashlearn.codes import codes_to_pm1, hamming_distances, sign_to_codes


def clean_codes(model, x):
    with torch.no_grad():
        return sign_to_codes(model(x).numpy())


def paired_codes(model, x, n_flip=6, seed=0):
    """Stand-in codes of the paired other-modality items: the clean codes with a few bits changed."""
    pm1 = codes_to_pm1(clean_codes(model, x), 16).copy()
    rng = np.random.default_rng(seed)
    for row in pm1:
        row[rng.choice(16, n_flip, replace=False)] *= -1
    return sign_to_codes(pm1)


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("linf", 8 / 255), ("l2", 0.5)])
def test_budget_and_range(trained_model, queries, norm, eps):
    x, _ = queries
    result = CMLA(trained_model, eps=eps, norm=norm, steps=10).attack(x, paired_codes(trained_model, x))
    delta = (result.x_adv - x).flatten(1)
    bound = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(bound.max()) <= eps + 1e-5
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    np.testing.assert_allclose(result.records[norm], bound.double().numpy(), rtol=1e-5, atol=1e-7)


def test_feature_space_budget_without_clip(trained_model, queries):
    x, _ = queries
    shifted = x * 3 - 1  # feature vectors outside [0, 1]
    result = CMLA(trained_model, eps=0.3, norm="l2", steps=5, clip=None).attack(shifted, paired_codes(trained_model, x))
    assert float((result.x_adv - shifted).flatten(1).norm(dim=1).max()) <= 0.3 + 1e-5


def test_moves_away_from_the_paired_codes(trained_model, queries):
    x, _ = queries
    paired = paired_codes(trained_model, x)
    before = hamming_distances(clean_codes(trained_model, x), paired).diagonal()
    result = CMLA(trained_model, eps=0.1, steps=50, intra_weight=0.0).attack(x, paired)
    after = result.records["bits_from_paired"]
    np.testing.assert_array_equal(after, hamming_distances(clean_codes(trained_model, result.x_adv), paired).diagonal())
    assert after.mean() > before.mean() + 2


def test_intra_term_keeps_the_code_near_the_clean_one(trained_model, queries):
    x, _ = queries
    paired = paired_codes(trained_model, x)
    free = CMLA(trained_model, eps=0.1, steps=50, intra_weight=0.0).attack(x, paired)
    anchored = CMLA(trained_model, eps=0.1, steps=50, intra_weight=2.0).attack(x, paired)
    assert anchored.records["bits_flipped"].mean() < free.records["bits_flipped"].mean()
    # where the paired code differs from the clean one, both terms agree: those bits stay as they were
    assert anchored.records["bits_from_paired"].mean() >= hamming_distances(clean_codes(trained_model, x), paired).diagonal().mean() - 0.5


def test_objective_value_matches_the_formula(trained_model, queries):
    x, _ = queries
    attack = CMLA(trained_model, eps=0.1, steps=3, inter_weight=0.7, intra_weight=0.4)
    outputs = torch.tanh(torch.randn(5, 16, generator=torch.Generator().manual_seed(0)))
    paired = torch.where(torch.randn(5, 16, generator=torch.Generator().manual_seed(1)) > 0, 1.0, -1.0)
    attack._clean = torch.where(torch.randn(5, 16, generator=torch.Generator().manual_seed(2)) > 0, 1.0, -1.0)
    value = attack.default_objective(outputs, paired)
    for i in range(5):
        inter = (sum(float(outputs[i, j] * paired[i, j]) for j in range(16)) / 16 + 1) ** 2
        intra = (1 - sum(float(outputs[i, j] * attack._clean[i, j]) for j in range(16)) / 16) ** 2
        assert float(value[i]) == pytest.approx(0.7 * inter + 0.4 * intra, rel=1e-5)


def test_modes_restored_and_no_state_left(trained_model, queries):
    x, _ = queries
    trained_model.train()
    try:
        CMLA(trained_model, steps=2).attack(x[:4], paired_codes(trained_model, x[:4]))
        assert trained_model.training and all(m.training for m in trained_model.modules())
    finally:
        trained_model.eval()
    attack = CMLA(trained_model, steps=2)
    attack.attack(x[:4], paired_codes(trained_model, x[:4]))
    assert attack._clean is None


def test_validation_and_registry(trained_model, queries):
    x, _ = queries
    with pytest.raises(ValueError, match="target_codes"):
        CMLA(trained_model, steps=2).attack(x)
    with pytest.raises(ValueError, match="intra_weight"):
        CMLA(trained_model, intra_weight=-1)
    with pytest.raises(ValueError, match="one row per query"):
        CMLA(trained_model, steps=2).attack(x, paired_codes(trained_model, x)[:3])
    assert ATTACKS["cmla"] is CMLA
    assert "intra_weight=0.5" in repr(CMLA(trained_model))
