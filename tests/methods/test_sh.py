import itertools

import numpy as np
import pytest

from hashlearn.codes import unpack_bits
from hashlearn.methods import SpectralHashing
from hashlearn.methods.sh import select_modes


def brute_force_modes(ranges, n_bits):
    """Every (direction, k) with k <= n_bits, sorted by eigenvalue (k pi / range)^2 then direction, k."""
    candidates = [((k * np.pi / r) ** 2, i, k) for i, r in enumerate(ranges) for k in range(1, n_bits + 1)]
    return np.array([(i, k) for _, i, k in sorted(candidates)[:n_bits]])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_bits", [8, 16, 32])
def test_mode_selection_matches_brute_force(seed, n_bits):
    ranges = np.random.default_rng(seed).uniform(0.1, 5.0, size=min(n_bits, 12))
    np.testing.assert_array_equal(select_modes(ranges, n_bits), brute_force_modes(ranges, n_bits))


def test_equal_ranges_take_first_frequencies_in_direction_order():
    modes = select_modes(np.ones(4), 8)
    assert modes.tolist() == [[0, 1], [1, 1], [2, 1], [3, 1], [0, 2], [1, 2], [2, 2], [3, 2]]


def test_one_wide_direction_gets_several_bits():
    X = np.random.default_rng(0).normal(size=(500, 8)) * np.array([20, 1, 1, 1, 1, 1, 1, 1])
    model = SpectralHashing(n_bits=8).fit(X)
    assert (model.modes_[:, 0] == 0).sum() > 1


def test_bits_follow_the_eigenfunction_formula():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6)) * np.array([4, 3, 2, 1, 1, 0.5])
    model = SpectralHashing(n_bits=16).fit(X)
    projected = (X - X.mean(axis=0)) @ model.pca_
    bits = unpack_bits(model.encode(X), 16)
    for b, (i, k) in enumerate(model.modes_):
        low, width = projected[:, i].min(), model.ranges_[i]
        expected = np.sin(np.pi / 2 + k * np.pi * (projected[:, i] - low) / width) > 0
        agree = np.mean(bits[:, b].astype(bool) == expected)
        assert agree > 0.99, (b, i, k, agree)


def test_first_bit_splits_widest_direction_at_its_middle():
    X = np.random.default_rng(4).uniform(-1, 1, size=(1000, 3)) * np.array([10, 1, 1])
    model = SpectralHashing(n_bits=8).fit(X)
    assert model.modes_[0].tolist() == [0, 1]
    bits = unpack_bits(model.encode(X), 8)[:, 0]
    assert abs(bits.mean() - 0.5) < 0.05


def test_more_bits_than_features_is_allowed():
    X = np.random.default_rng(0).normal(size=(100, 4))
    assert SpectralHashing(n_bits=24).fit(X).encode(X).shape == (100, 3)
