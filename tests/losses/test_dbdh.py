import math

import pytest
import torch

from hashlearn.losses.dbdh import DBDHLoss, straight_through_sign


DTYPES = [torch.float32, torch.float64]


def reference_dbdh(outputs, label_sets, similar, alpha, own_quantization, straight_through):
    """Slow loop: likelihood over ordered pairs i != j on u (or sign(u)), then the per-code balance."""
    u = outputs.double().tolist()
    codes = [[(1.0 if x > 0 else -1.0) for x in row] for row in u] if straight_through else u
    batch, n_bits = len(u), len(u[0])
    total, n_pairs = 0.0, 0
    for i in range(batch):
        for j in range(batch):
            if i != j:
                theta = 0.5 * sum(codes[i][k] * codes[j][k] for k in range(n_bits))
                total += math.log1p(math.exp(theta)) - similar(label_sets, i, j) * theta
                n_pairs += 1
    balance = sum((sum(row) / n_bits) ** 2 for row in u) / batch
    return total / n_pairs + (alpha * balance if own_quantization else 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
@pytest.mark.parametrize("straight_through", [False, True])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, own_quantization, straight_through):
    outputs, labels, label_sets = make_batch(dtype, batch=7, n_bits=16, n_classes=4, multi_label=multi_label)
    value = DBDHLoss(16, 4, alpha=0.3, straight_through=straight_through, own_quantization=own_quantization)(outputs, labels)
    assert value.dtype == dtype
    expected = reference_dbdh(outputs, label_sets, similarity_of, 0.3, own_quantization, straight_through)
    assert float(value) == approx(expected, dtype)


def test_straight_through_sign_passes_gradients_unchanged():
    u = torch.tensor([-0.3, 0.0, 0.7], requires_grad=True)
    codes = straight_through_sign(u)
    assert codes.tolist() == [-1.0, -1.0, 1.0]
    (codes * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert u.grad.tolist() == [1.0, 2.0, 3.0]


def test_balance_term_prefers_balanced_codes():
    loss = DBDHLoss(8, 2, alpha=1.0)
    balanced = torch.tensor([[1.0, -1, 1, -1, 1, -1, 1, -1]] * 2)
    all_ones = torch.ones(2, 8)
    labels = torch.tensor([0, 0])
    # the same likelihood (identical codes, a similar pair): only the balance term differs
    assert float(loss(all_ones, labels)) - float(loss(balanced, labels)) == pytest.approx(1.0)


def test_rejects_negative_alpha():
    with pytest.raises(ValueError, match="alpha"):
        DBDHLoss(8, 2, alpha=-1)
