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


# --- the paper's label form -------------------------------------------------------------------

def slow_label_objective(outputs, same, other, similarity, inter_weight, intra_weight, scale=0.5, balanced=False):
    """Per-query objective of the label form, one reference at a time."""
    out = []
    for i in range(outputs.shape[0]):
        inter = intra = 0.0
        n_pos = sum(float(similarity[i, j]) for j in range(other.shape[0]))
        n_neg = other.shape[0] - n_pos
        for j in range(other.shape[0]):
            theta = sum(float(outputs[i, b]) * float(other[j, b]) for b in range(outputs.shape[1])) * scale
            phi = sum(float(outputs[i, b]) * float(same[j, b]) for b in range(outputs.shape[1])) * scale
            s = float(similarity[i, j])
            if balanced:  # each side of the similarities half the weight
                weight = 1 / (2 * max(n_pos, 1)) if s else 1 / (2 * max(n_neg, 1))
            else:
                weight = 1 / other.shape[0]
            inter += weight * (s * theta + np.log1p(np.exp(-theta)))
            intra += weight * (np.log1p(np.exp(phi)) - s * phi)
        out.append(inter_weight * inter + intra_weight * intra)
    return np.array(out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale, balanced", [(0.5, False), (1 / 32, True), (0.25, True)])
def test_label_objective_matches_a_slow_loop(dtype, scale, balanced):
    g = torch.Generator().manual_seed(3)
    outputs = torch.tanh(torch.randn(4, 16, generator=g, dtype=dtype))
    same = torch.where(torch.randn(7, 16, generator=g) > 0, 1.0, -1.0).to(dtype)
    other = torch.where(torch.randn(7, 16, generator=g) > 0, 1.0, -1.0).to(dtype)
    similarity = (torch.rand(4, 7, generator=g) > 0.5).to(dtype)
    similarity[3] = 0  # a query with no similar reference
    attack = CMLA(torch.nn.Linear(2, 16), inter_weight=0.7, intra_weight=1.3, theta_scale=scale, balanced=balanced)
    attack._batch_references = (same, other, similarity)
    value = attack.default_objective(outputs, torch.zeros(4, 16, dtype=dtype))
    assert value.dtype == dtype
    np.testing.assert_allclose(value.numpy(), slow_label_objective(outputs, same, other, similarity, 0.7, 1.3, scale, balanced),
                               rtol=1e-5 if dtype == torch.float32 else 1e-12)


def test_label_form_uses_the_batch_as_references(trained_model, queries):
    """Without fixed references, the attacked batch's clean codes and paired codes are the references:
    the same as passing them explicitly when the whole query set is one batch."""
    x, y = queries
    paired = paired_codes(trained_model, x)
    batch = CMLA(trained_model, eps=0.1, steps=10).attack(x, paired, labels=y)
    explicit = CMLA(trained_model, eps=0.1, steps=10, reference=(clean_codes(trained_model, x), paired, y)).attack(x, paired, labels=y)
    torch.testing.assert_close(batch.x_adv, explicit.x_adv)
    # the batch form depends on the batch; fixed references do not
    fixed = (clean_codes(trained_model, x), paired, y)
    small = CMLA(trained_model, eps=0.1, steps=10, reference=fixed, batch_size=7).attack(x, paired, labels=y)
    torch.testing.assert_close(small.x_adv, explicit.x_adv)


def test_label_form_moves_away_from_the_other_modality_classes(trained_model, queries, database):
    """Against fixed references: the adversarial codes are farther from the other modality's codes of the query's
    class than the clean codes, and the intra-modal term keeps them nearer the own modality's codes of that class."""
    x, y = queries
    db_codes, db_labels = database
    rng = np.random.default_rng(1)
    pm1 = codes_to_pm1(db_codes, 16).copy()
    pm1[rng.random(pm1.shape) < 0.2] *= -1  # stand-in other-modality codes: the same items, 20% of bits changed
    other = sign_to_codes(pm1)
    reference = (db_codes, other, db_labels)
    paired = paired_codes(trained_model, x)

    def mean_distance_to_class(codes, reference_codes):
        d = hamming_distances(codes, reference_codes)
        return float(np.mean([d[i, db_labels == y[i]].mean() for i in range(len(y))]))

    clean = clean_codes(trained_model, x)
    free = CMLA(trained_model, eps=0.1, steps=50, intra_weight=0.0, reference=reference).attack(x, paired, labels=y)
    kept = CMLA(trained_model, eps=0.1, steps=50, intra_weight=2.0, reference=reference).attack(x, paired, labels=y)
    free_codes, kept_codes = clean_codes(trained_model, free.x_adv), clean_codes(trained_model, kept.x_adv)
    assert mean_distance_to_class(free_codes, other) > mean_distance_to_class(clean, other) + 1
    assert mean_distance_to_class(kept_codes, db_codes) < mean_distance_to_class(free_codes, db_codes)
    assert float((free.x_adv - x).abs().max()) <= 0.1 + 1e-6 and float((kept.x_adv - x).abs().max()) <= 0.1 + 1e-6


def test_label_form_validation_and_state(trained_model, queries):
    x, y = queries
    paired = paired_codes(trained_model, x)
    reference = (clean_codes(trained_model, x), paired, y)
    with pytest.raises(ValueError, match="one row per query"):
        CMLA(trained_model, steps=2).attack(x, paired, labels=y[:5])
    with pytest.raises(ValueError, match="labels"):
        CMLA(trained_model, steps=2, reference=reference).attack(x, paired)
    with pytest.raises(ValueError, match="multi-hot"):
        CMLA(trained_model, steps=2).attack(x, paired, labels=np.full((len(y), 3), 0.5))
    with pytest.raises(ValueError, match="one row per reference"):
        CMLA(trained_model, reference=(reference[0], paired[:5], y))
    with pytest.raises(ValueError, match="balanced"):
        CMLA(trained_model, balanced=1)
    with pytest.raises(ValueError, match="theta_scale"):
        CMLA(trained_model, theta_scale=0)
    with pytest.raises(ValueError, match="kind"):
        CMLA(trained_model, steps=2, reference=reference).attack(x, paired, labels=np.eye(10)[y])
    attack = CMLA(trained_model, steps=2, reference=reference)
    attack.attack(x, paired, labels=y)
    assert attack._labels is None and attack._batch_references is None and attack._clean is None
    assert "reference=<60 reference pairs>" in repr(attack)
