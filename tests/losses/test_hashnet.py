import math

import pytest
import torch

from hashlearn.losses import HashNetLoss
from hashlearn.losses.hashnet import scale_continuation

DTYPES = [torch.float32, torch.float64]


def reference_hashnet(outputs, label_sets, similar, alpha, scale):
    """Explicit class-balance weights w_ij = |pairs|/|similar| or |pairs|/|dissimilar|."""
    h = [[math.tanh(scale * math.atanh(x)) for x in row] for row in outputs.double().tolist()]
    batch, n_bits = len(h), len(h[0])
    pairs = [(i, j) for i in range(batch) for j in range(batch) if i != j]
    n_similar = sum(similar(label_sets, i, j) for i, j in pairs)
    n_dissimilar = len(pairs) - n_similar
    total = 0.0
    for i, j in pairs:
        s = similar(label_sets, i, j)
        x = alpha * sum(h[i][k] * h[j][k] for k in range(n_bits))
        weight = len(pairs) / n_similar if s else len(pairs) / n_dissimilar
        total += weight * (math.log1p(math.exp(x)) - s * x)
    return total / len(pairs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("n_steps", [0, 7])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, n_steps):
    outputs, labels, label_sets = make_batch(dtype, batch=8, n_bits=16, n_classes=3, multi_label=multi_label, seed=4)
    loss = HashNetLoss(16, 3, gamma=0.5, step_size=3)
    for _ in range(n_steps):
        loss.step()
    expected_scale = (1 + 0.5 * 6) ** 0.5 if n_steps else 1.0  # updated at steps 3 and 6
    assert loss.scale == pytest.approx(expected_scale)
    expected = reference_hashnet(outputs, label_sets, similarity_of, 10 / 16, expected_scale)
    assert loss(outputs, labels).item() == approx(expected, dtype)


def test_continuation_is_tanh_of_scaled_atanh_and_keeps_signs():
    u = torch.linspace(-0.999, 0.999, 40, dtype=torch.float64)
    sharpened = scale_continuation(u, 3.0)
    assert torch.allclose(sharpened, torch.tanh(3.0 * torch.atanh(u)))
    assert torch.equal(torch.sign(sharpened), torch.sign(u))
    ends = torch.tensor([-1.0, 1.0], requires_grad=True)
    scale_continuation(ends, 2.5).sum().backward()
    assert torch.isfinite(ends.grad).all()
    assert torch.equal(scale_continuation(u, 1.0), u)


def test_step_count_is_saved_in_the_state_dict():
    loss = HashNetLoss(8, 2, step_size=1)
    for _ in range(5):
        loss.step()
    restored = HashNetLoss(8, 2, step_size=1)
    restored.load_state_dict(loss.state_dict())
    assert restored.scale == loss.scale > 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="init_scale"):
        HashNetLoss(8, 2, init_scale=0.5)
    with pytest.raises(ValueError, match="step_size"):
        HashNetLoss(8, 2, step_size=0)


def test_only_one_kind_of_pair_uses_that_mean_alone():
    outputs = torch.tanh(torch.randn(4, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    loss = HashNetLoss(8, 1)
    x = loss.alpha * outputs @ outputs.T
    mask = ~torch.eye(4, dtype=torch.bool)
    expected = (torch.nn.functional.softplus(x) - x)[mask].mean()
    assert float(loss(outputs, torch.zeros(4, dtype=torch.int64))) == pytest.approx(float(expected))
