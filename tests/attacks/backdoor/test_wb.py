import numpy as np
import pytest
import torch
from torch import nn

from hashlearn.attacks.backdoor import WassersteinBackdoor, discriminative_swd
from hashlearn.models import Classifier


def _reference_dswd(a, b, directions):
    """Slow reference for equal sample sizes: per direction, match the i-th smallest projections."""
    total = 0.0
    for w in directions:
        w = w / np.linalg.norm(w)
        pa, pb = sorted(a @ w), sorted(b @ w)
        total += sum((u - v) ** 2 for u, v in zip(pa, pb)) / len(pa)
    return total / len(directions)


def test_dswd_is_zero_for_identical_samples_and_permutations():
    a = torch.randn(20, 5)
    directions = torch.randn(3, 5)
    assert float(discriminative_swd(a, a, directions)) == 0.0
    assert float(discriminative_swd(a, a[torch.randperm(20)], directions)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dswd_matches_slow_reference(dtype):
    rng = np.random.default_rng(0)
    a, b, d = rng.normal(size=(15, 4)), rng.normal(1.0, 2.0, size=(15, 4)), rng.normal(size=(3, 4))
    value = discriminative_swd(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype), torch.tensor(d, dtype=dtype))
    assert float(value) == pytest.approx(_reference_dswd(a, b, d), rel=1e-5)
    assert float(value) > 0


def test_dswd_unequal_sizes_uses_quantiles():
    a = torch.arange(10, dtype=torch.float64).unsqueeze(1)  # 0..9
    b = torch.tensor([[2.0], [7.0]], dtype=torch.float64)  # the quartiles of a at levels 0.25 and 0.75 are 2 and 7
    assert float(discriminative_swd(a, b, torch.ones(1, 1, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)
    assert float(discriminative_swd(a, b + 1, torch.ones(1, 1, dtype=torch.float64))) == pytest.approx(1.0)


def test_dswd_only_sees_the_given_directions():
    a = torch.zeros(8, 2)
    b = torch.zeros(8, 2)
    b[:, 1] = torch.randn(8)  # differs only along the second axis
    assert float(discriminative_swd(a, b, torch.tensor([[1.0, 0.0]]))) == 0.0
    assert float(discriminative_swd(a, b, torch.tensor([[0.0, 3.0]]))) > 0


def test_dswd_is_differentiable():
    a = torch.randn(6, 3, requires_grad=True)
    discriminative_swd(a, torch.randn(9, 3), torch.randn(2, 3)).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_dswd_shape_errors():
    with pytest.raises(ValueError, match="widths"):
        discriminative_swd(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="at least one"):
        discriminative_swd(torch.zeros(0, 2), torch.zeros(3, 2), torch.zeros(1, 2))


def test_wb_refuses_all_to_all_and_bad_lambda():
    with pytest.raises(ValueError, match="all-to-one"):
        WassersteinBackdoor(target="all-to-all", n_classes=3)
    with pytest.raises(ValueError, match="lambda_latent"):
        WassersteinBackdoor(lambda_latent=0)


def test_wb_stage1_uses_the_latent_term_and_respects_budget():
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 8, 8), dtype=np.float32), np.arange(64) % 3
    torch.manual_seed(0)
    victim = Classifier("small_cnn", 3, {"in_channels": 1, "image_size": 8, "width": 4, "out_features": 16})
    attack = WassersteinBackdoor(eps=0.04, stage1_epochs=1, batch_size=32, target_class=2)
    attack.fit_trigger(victim, nn.CrossEntropyLoss(), X, y)
    assert attack.stage1_history_[0]["latent_loss"] > 0
    assert np.abs(attack.apply_trigger(X) - X).max() <= 0.04 + 1e-6
