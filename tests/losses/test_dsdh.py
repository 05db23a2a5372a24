import math

import pytest
import torch

from hashlearn.losses import DSDHLoss

DTYPES = [torch.float32, torch.float64]


def reference_dsdh(outputs, label_sets, similar, weight, n_classes, mu, nu, eta, classification, own_quantization):
    u = outputs.double().tolist()
    w = weight.double().tolist()  # (n_classes, n_bits)
    batch, n_bits = len(u), len(u[0])
    likelihood, n_pairs = 0.0, 0
    for i in range(batch):
        for j in range(batch):
            if i != j:
                theta = 0.5 * sum(u[i][k] * u[j][k] for k in range(n_bits))
                likelihood += math.log1p(math.exp(theta)) - similar(label_sets, i, j) * theta
                n_pairs += 1
    loss = likelihood / n_pairs if n_pairs else 0.0
    classification_loss = 0.0
    for i in range(batch):
        y = [1.0 if c in label_sets[i] else 0.0 for c in range(n_classes)]
        logits = [sum(w[c][k] * u[i][k] for k in range(n_bits)) for c in range(n_classes)]
        if classification == "mse":
            classification_loss += sum((y[c] - logits[c]) ** 2 for c in range(n_classes))
        elif sum(y):
            log_normaliser = math.log(sum(math.exp(z) for z in logits))
            classification_loss -= sum(y[c] / sum(y) * (logits[c] - log_normaliser) for c in range(n_classes))
    loss += mu * classification_loss / batch
    loss += nu * sum(x * x for row in w for x in row)
    if own_quantization:
        loss += eta * sum((x - (1.0 if x > 0 else -1.0)) ** 2 for row in u for x in row) / (batch * n_bits)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("classification", ["mse", "ce"])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, classification, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=6, n_bits=8, n_classes=3, multi_label=multi_label, seed=2)
    torch.manual_seed(0)
    loss = DSDHLoss(8, 3, mu=0.7, nu=0.05, eta=0.2, classification=classification, own_quantization=own_quantization).to(dtype)
    expected = reference_dsdh(
        outputs, label_sets, similarity_of, loss.classifier.weight.detach(), 3, 0.7, 0.05, 0.2, classification, own_quantization
    )
    assert loss(outputs, labels).item() == approx(expected, dtype)


def test_classifier_is_a_trainable_parameter():
    loss = DSDHLoss(8, 3)
    outputs = torch.tanh(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
    loss(outputs, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert loss.classifier.weight.grad is not None and loss.classifier.weight.grad.abs().sum() > 0


def test_unknown_classification_is_rejected():
    with pytest.raises(ValueError, match="classification"):
        DSDHLoss(8, 3, classification="hinge")
