import math

import pytest
import torch

from hashlearn.quantization import RegularizerQuantizer

DTYPES = [torch.float32, torch.float64]


def reference_regularizers(outputs, balance_weight, decorrelation_weight, error_weight, balance):
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    means = [sum(u[i][k] for i in range(batch)) / batch for k in range(n_bits)]
    if balance == "mean":
        balance_term = sum(m * m for m in means) / n_bits
    else:
        balance_term = 0.0
        for m in means:
            p = min(max((m + 1) / 2, 1e-6), 1 - 1e-6)
            balance_term += math.log(2) + p * math.log(p) + (1 - p) * math.log(1 - p)
        balance_term /= n_bits
    decorrelation = 0.0
    for a in range(n_bits):
        for b in range(n_bits):
            covariance = sum(u[i][a] * u[i][b] for i in range(batch)) / batch
            decorrelation += (covariance - (1.0 if a == b else 0.0)) ** 2
    decorrelation /= n_bits * n_bits
    error = sum((abs(x) - 1) ** 2 for row in u for x in row) / (batch * n_bits)
    return balance_weight * balance_term + decorrelation_weight * decorrelation + error_weight * error


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("balance", ["mean", "entropy"])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.3, 0.0, 2.0), (0.0, 0.5, 0.0)])
def test_matches_slow_loop(random_outputs, approx, dtype, balance, weights):
    outputs = random_outputs(9, 8, dtype, seed=1)
    quantizer = RegularizerQuantizer(balance_weight=weights[0], decorrelation_weight=weights[1], error_weight=weights[2], balance=balance)
    assert quantizer(outputs).item() == approx(reference_regularizers(outputs, *weights, balance), dtype)


def test_each_term_reacts_to_its_defect():
    binary_balanced = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    only = {"balance_weight": 0.0, "decorrelation_weight": 0.0, "error_weight": 0.0}
    balance = RegularizerQuantizer(**{**only, "balance_weight": 1.0})
    decorrelation = RegularizerQuantizer(**{**only, "decorrelation_weight": 1.0})
    error = RegularizerQuantizer(**{**only, "error_weight": 1.0})
    assert balance(binary_balanced).item() == decorrelation(binary_balanced).item() == error(binary_balanced).item() == 0.0
    unbalanced = torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    assert balance(unbalanced).item() > 0
    correlated = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    assert decorrelation(correlated).item() > 0 and balance(correlated).item() == 0.0
    assert error(0.5 * binary_balanced).item() == pytest.approx(0.25)


def test_bad_arguments():
    with pytest.raises(ValueError, match="balance"):
        RegularizerQuantizer(balance="variance")
    with pytest.raises(ValueError, match="error_weight"):
        RegularizerQuantizer(error_weight=-1.0)


def reference_forms(outputs, weight, decorrelation, error):
    """Slow loops for the weight decorrelation and the entropy quantization error."""
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    if decorrelation == "weights":
        w = weight.double().tolist()  # (n_bits, d)
        decorrelation_term = sum(
            (sum(w[a][k] * w[b][k] for k in range(len(w[0]))) - (1.0 if a == b else 0.0)) ** 2 for a in range(n_bits) for b in range(n_bits)
        ) / n_bits**2
    else:
        decorrelation_term = sum(
            (sum(u[i][a] * u[i][b] for i in range(batch)) / batch - (1.0 if a == b else 0.0)) ** 2 for a in range(n_bits) for b in range(n_bits)
        ) / n_bits**2
    if error == "entropy":
        total = 0.0
        for row in u:
            for x in row:
                p = min(max((x + 1) / 2, 1e-6), 1 - 1e-6)
                total += -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)
        error_term = total / (batch * n_bits)
    else:
        error_term = sum((abs(x) - 1) ** 2 for row in u for x in row) / (batch * n_bits)
    return decorrelation_term + error_term


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decorrelation", ["outputs", "weights"])
@pytest.mark.parametrize("error", ["square", "entropy"])
def test_forms_match_slow_loop(random_outputs, approx, dtype, decorrelation, error):
    from hashlearn.models import HashModel

    outputs = random_outputs(9, 8, dtype, seed=2)
    torch.manual_seed(0)
    model = HashModel("mlp", 8, {"in_features": 5, "hidden": []}).to(dtype)
    quantizer = RegularizerQuantizer(balance_weight=0.0, decorrelation=decorrelation, error=error).attach(model)
    expected = reference_forms(outputs, model.head.linear.weight.detach(), decorrelation, error)
    assert quantizer(outputs).item() == approx(expected, dtype)


def test_weight_decorrelation_is_zero_for_orthonormal_projections_and_trains_the_head():
    from hashlearn.models import HashModel

    model = HashModel("mlp", 8, {"in_features": 16, "hidden": []})
    quantizer = RegularizerQuantizer(balance_weight=0.0, error_weight=0.0, decorrelation="weights").attach(model)
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.eye(16)[:8])  # orthonormal rows
    outputs = torch.zeros(4, 8)
    assert quantizer(outputs).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        model.head.linear.weight.mul_(2.0)
    loss = quantizer(outputs)
    loss.backward()
    assert loss.item() > 0 and model.head.linear.weight.grad.abs().sum() > 0
    assert not list(quantizer.parameters())  # the model's weight is not a parameter of the loss


def test_weight_decorrelation_needs_an_attached_model():
    with pytest.raises(RuntimeError, match="attach"):
        RegularizerQuantizer(decorrelation="weights")(torch.zeros(4, 8))


def test_entropy_error_pulls_harder_near_one_than_the_square():
    u = torch.tensor([[0.9, -0.9]], requires_grad=True)
    RegularizerQuantizer(balance_weight=0, decorrelation_weight=0, error="entropy")(u).backward()
    entropy_grad = u.grad.abs().sum().item()
    u.grad = None
    RegularizerQuantizer(balance_weight=0, decorrelation_weight=0, error="square")(u).backward()
    assert entropy_grad > u.grad.abs().sum().item()


def test_build_deep_method_attaches_the_model():
    from hashlearn.runs.deep import build_deep_method

    model, objective = build_deep_method("dpsh+reg", 8, 3, (6,), quantizer_kwargs={"decorrelation": "weights"})
    assert objective.quantizer._hash_weight[0] is model.head.linear.weight


@pytest.mark.parametrize("kwargs", [{"decorrelation": "gram"}, {"error": "cube"}, {"balance_weight": True}])
def test_bad_forms(kwargs):
    with pytest.raises(ValueError):
        RegularizerQuantizer(**kwargs)
