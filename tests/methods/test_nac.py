import numpy as np
import pytest
import torch

from hashlearn.codes import unpack_bits
from hashlearn.methods import SHALLOW_METHODS, build_shallow
from hashlearn.methods.nac import NeuralActivationCodes, layer_activations


def reference_nac(X, n_bits, threshold, max_agreement):
    """Slow loop: per-unit thresholds, units by decreasing variance, pairwise agreement checked item by item."""
    n, d = X.shape
    thresholds = [sorted(X[:, j])[n // 2] if n % 2 else (sorted(X[:, j])[n // 2 - 1] + sorted(X[:, j])[n // 2]) / 2 for j in range(d)] \
        if threshold == "median" else [0.0] * d
    bits = [[X[i, j] > thresholds[j] for j in range(d)] for i in range(n)]
    variances = [float(np.var(X[:, j].astype(np.float64))) for j in range(d)]
    order = sorted(range(d), key=lambda j: (-variances[j], j))
    chosen, skipped = [], []
    for j in order:
        if len(chosen) == n_bits:
            break
        column = [bits[i][j] for i in range(n)]
        if all(column) or not any(column):
            skipped.append(j)
            continue
        too_close = False
        for c in chosen:
            equal = sum(bits[i][c] == column[i] for i in range(n)) / n
            if equal > max_agreement or 1 - equal > max_agreement:
                too_close = True
        (skipped if too_close else chosen).append(j)
    chosen += skipped[: n_bits - len(chosen)]
    return np.array([[bits[i][j] for j in chosen] for i in range(n)])


@pytest.mark.parametrize("threshold", ["median", "zero"])
def test_matches_slow_loop(threshold):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 6))
    X = np.maximum(np.concatenate([base, base[:, :3] + 0.05 * rng.normal(size=(60, 3)), rng.normal(size=(60, 3))], axis=1), 0)
    X = (X * np.linspace(1, 2, X.shape[1])).astype(np.float32)  # distinct variances: a deterministic order
    nac = NeuralActivationCodes(n_bits=8, threshold=threshold, max_agreement=0.8).fit(X)
    np.testing.assert_array_equal(unpack_bits(nac.encode(X), 8).astype(bool), reference_nac(X, 8, threshold, 0.8))


def test_median_threshold_balances_every_bit_and_skips_duplicates():
    rng = np.random.default_rng(1)
    unit = rng.normal(size=(200, 1))
    X = np.concatenate([unit, unit * 1.01, rng.normal(size=(200, 15)) * 0.5], axis=1).astype(np.float32)
    nac = NeuralActivationCodes(n_bits=8).fit(X)
    assert not ({0, 1} <= set(nac.units_.tolist()))  # a near-copy of a chosen unit is skipped
    bits = unpack_bits(nac.encode(X), 8)
    np.testing.assert_allclose(bits.mean(axis=0), 0.5, atol=0.01)


def test_activation_patterns_of_a_frozen_module():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).train()
    X = np.random.default_rng(2).normal(size=(50, 10)).astype(np.float32)
    activations = layer_activations(module, X, "1", batch_size=16)
    with torch.no_grad():
        expected = torch.relu(module[0](torch.from_numpy(X))).numpy()
    np.testing.assert_allclose(activations, expected, rtol=1e-6)
    assert module.training  # mode restored
    codes = NeuralActivationCodes(n_bits=16, threshold="zero").fit(activations).encode(activations)
    chosen = NeuralActivationCodes(n_bits=16, threshold="zero").fit(activations).units_
    np.testing.assert_array_equal(unpack_bits(codes, 16).astype(bool), expected[:, chosen] > 0)
    with pytest.raises(ValueError, match="not a submodule"):
        layer_activations(module, X, "relu")


def test_registry_and_errors():
    assert SHALLOW_METHODS["nac"] is NeuralActivationCodes
    X = np.abs(np.random.default_rng(3).normal(size=(20, 8)))
    assert build_shallow("nac", n_bits=8).fit(X).encode(X).shape == (20, 1)
    with pytest.raises(ValueError, match="n_bits must be <="):
        NeuralActivationCodes(n_bits=16).fit(X)
    with pytest.raises(ValueError, match="threshold"):
        NeuralActivationCodes(n_bits=8, threshold="mean").fit(X)
    with pytest.raises(ValueError, match="max_agreement"):
        NeuralActivationCodes(n_bits=8, max_agreement=0.4).fit(X)
