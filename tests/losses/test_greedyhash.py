import math

import pytest
import torch

from hashlearn.losses import GreedyHashLoss
from hashlearn.losses.greedyhash import straight_through_sign

DTYPES = [torch.float32, torch.float64]


def reference_greedyhash(outputs, label_sets, weight, bias, alpha, own_quantization):
    u = outputs.double().tolist()
    w, b = weight.double().tolist(), bias.double().tolist()
    batch, n_bits, n_classes = len(u), len(u[0]), len(b)
    total = 0.0
    for i in range(batch):
        code = [1.0 if x > 0 else -1.0 for x in u[i]]
        logits = [sum(w[c][k] * code[k] for k in range(n_bits)) + b[c] for c in range(n_classes)]
        log_normaliser = math.log(sum(math.exp(z) for z in logits))
        labels = sorted(label_sets[i])
        total -= sum((logits[c] - log_normaliser) / len(labels) for c in labels)
    loss = total / batch
    if own_quantization:
        loss += alpha * sum(abs(abs(x) - 1) ** 3 for row in u for x in row) / (batch * n_bits)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, dtype, multi_label, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=6, n_bits=8, n_classes=3, multi_label=multi_label, seed=7)
    torch.manual_seed(0)
    loss = GreedyHashLoss(8, 3, alpha=0.6, own_quantization=own_quantization).to(dtype)
    weight, bias = loss.classifier.weight.detach(), loss.classifier.bias.detach()
    expected = reference_greedyhash(outputs, label_sets, weight, bias, 0.6, own_quantization)
    assert loss(outputs, labels).item() == approx(expected, dtype)


def test_gradient_passes_straight_through_the_sign():
    torch.manual_seed(0)
    loss = GreedyHashLoss(8, 3, own_quantization=False)
    outputs = torch.tanh(torch.randn(5, 8)).requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 0, 1])
    loss(outputs, labels).backward()
    codes = torch.where(outputs > 0, 1.0, -1.0).detach().requires_grad_(True)
    torch.nn.functional.cross_entropy(loss.classifier(codes), labels).backward()
    assert torch.allclose(outputs.grad, codes.grad)


def test_forward_values_are_binary():
    values = straight_through_sign(torch.tensor([[-0.5, 0.0, 0.2]]))
    assert values.tolist() == [[-1.0, -1.0, 1.0]]  # 0 is bit 0, i.e. -1
