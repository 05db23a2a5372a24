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
