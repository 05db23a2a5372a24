import numpy as np
import pytest

from hashlearn.codes import unpack_bits
from hashlearn.methods import PCAH


def test_matches_sklearn_pca_up_to_direction_sign():
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).normal(size=(300, 20)) * np.linspace(3, 0.5, 20)
    model = PCAH(n_bits=8).fit(X)
    reference = PCA(n_components=8, svd_solver="full").fit_transform(X)
    projected = model.transform(X)
    for j in range(8):  # each direction equals sklearn's up to a global sign
        sign = np.sign(np.dot(projected[:, j], reference[:, j]))
        np.testing.assert_allclose(projected[:, j] * sign, reference[:, j], atol=1e-3)
    bits = unpack_bits(model.encode(X), 8)
    np.testing.assert_array_equal(bits.astype(bool), projected > 0)


def test_bits_are_balanced_on_symmetric_data():
    X = np.random.default_rng(2).normal(size=(2000, 16))
    bits = unpack_bits(PCAH(n_bits=16).fit(X).encode(X), 16)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.06)


def test_too_many_bits():
    with pytest.raises(ValueError, match="n_bits <= n_features"):
        PCAH(n_bits=16).fit(np.random.default_rng(0).normal(size=(30, 8)))
