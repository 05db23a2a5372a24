import numpy as np
import pytest

from hashlearn.codes import unpack_bits
from hashlearn.methods import SHALLOW_METHODS, SignHasher, build_shallow
from hashlearn.errors import NotFittedError


def test_bits_are_signs_of_centred_dimensions():
    X = np.random.default_rng(0).normal(loc=3.0, size=(40, 24)).astype(np.float32)
    bits = unpack_bits(SignHasher(n_bits=16).fit(X).encode(X), 16)
    expected = (X - X.mean(axis=0))[:, :16] > 0
    np.testing.assert_array_equal(bits.astype(bool), expected)


def test_uncentred_sign_and_registry():
    X = np.random.default_rng(1).normal(size=(10, 8))
    bits = unpack_bits(build_shallow("sign", n_bits=8, center=False).fit(X).encode(X), 8)
    np.testing.assert_array_equal(bits.astype(bool), X > 0)
    assert SHALLOW_METHODS["sign"] is SignHasher


def test_errors():
    X = np.zeros((5, 8))
    with pytest.raises(ValueError, match="n_bits must be <= n_features"):
        SignHasher(n_bits=16).fit(X)
    with pytest.raises(NotFittedError):
        SignHasher(n_bits=8).encode(X)
    with pytest.raises(ValueError, match="features"):
        SignHasher(n_bits=8).fit(X).encode(np.zeros((2, 9)))
