import numpy as np
import pytest

from hashlearn.codes import unpack_bits
from hashlearn.errors import NotFittedError
from hashlearn.methods import ITQ, LSH, build_shallow


def clustered(seed=0, n=300, d=20):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(5, d))
    labels = rng.integers(0, 5, size=n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_lsh_is_sign_of_centred_random_projection():
    X, _ = clustered()
    lsh = LSH(n_bits=16, random_state=0).fit(X)
    expected = ((X - X.mean(axis=0)) @ lsh.projection_ > 0).astype(np.uint8)
    np.testing.assert_array_equal(unpack_bits(lsh.encode(X)), expected)
    np.testing.assert_array_equal(LSH(n_bits=16, random_state=0).fit(X).encode(X), lsh.encode(X))


def test_itq_rotation_is_orthogonal_and_error_decreases():
    X, _ = clustered()
    itq = ITQ(n_bits=16, n_iter=30, random_state=0).fit(X)
    np.testing.assert_allclose(itq.rotation_ @ itq.rotation_.T, np.eye(16), atol=1e-5)
    errors = itq.quantization_errors_
    assert errors[-1] <= errors[0] + 1e-9
    assert all(b <= a + 1e-7 for a, b in zip(errors, errors[1:]))  # Procrustes never increases the error
    # brute-force check of the projection
    V = (X - itq.mean_) @ itq.pca_ @ itq.rotation_
    np.testing.assert_array_equal(unpack_bits(itq.encode(X)), (V > 0).astype(np.uint8))


def test_itq_pca_directions_match_numpy_svd():
    X, _ = clustered(1)
    itq = ITQ(n_bits=8, n_iter=0, random_state=0).fit(X)
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    overlap = np.abs(vt[:8] @ itq.pca_)
    np.testing.assert_allclose(np.diag(overlap), 1, atol=1e-3)


def test_estimator_contract_and_errors():
    X, _ = clustered()
    est = build_shallow("itq", n_bits=8, random_state=0)
    assert est.get_params()["n_iter"] == 50 and repr(est) == "ITQ(n_bits=8, random_state=0)" and not hasattr(est, "rotation_")
    with pytest.raises(NotFittedError, match="not fitted"):
        est.encode(X)
    est.fit(X)
    with pytest.raises(ValueError, match="fitted with 20 features"):
        est.transform(X[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        est.transform(X[0])
    with pytest.raises(ValueError, match="multiple of 8"):
        LSH(n_bits=12).fit(X)
    with pytest.raises(ValueError, match="n_bits <= n_features"):
        ITQ(n_bits=32).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        LSH(n_bits=8).fit(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="unknown shallow method"):
        build_shallow("nope")
