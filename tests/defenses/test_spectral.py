import numpy as np
import pytest

from hashlearn.defenses import SpectralSignature, detection_rates
from hashlearn.defenses.spectral import spectral_scores


def test_scores_match_eigenvector_of_the_covariance():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 5)) * np.array([3.0, 1, 1, 1, 1])
    centred = f - f.mean(0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    reference = (centred @ vectors[:, -1]) ** 2
    assert np.allclose(spectral_scores(f), reference)


def test_constant_or_single_features_score_zero():
    assert np.array_equal(spectral_scores(np.ones((4, 3))), np.zeros(4))
    assert np.array_equal(spectral_scores(np.ones((1, 3))), np.zeros(1))


def test_flags_planted_poison_with_high_tpr_low_fpr(planted_features):
    features, labels, poison = planted_features()
    detector = SpectralSignature(poison_fraction=0.1, multiplier=1.5).fit(features, labels)
    tpr, fpr = detection_rates(detector.flagged_, poison, len(labels))
    assert tpr >= 0.95 and fpr <= 0.15
    # 1.5 x 10% of each class of 200 is flagged
    assert np.bincount(labels[detector.flagged_]).tolist() == [30] * 4


@pytest.mark.parametrize("kwargs, error", [({"poison_fraction": 0}, ValueError), ({"poison_fraction": 1.2}, ValueError), ({"multiplier": -1}, ValueError), ({"poison_fraction": "a"}, TypeError)])
def test_bad_parameters(kwargs, error, planted_features):
    features, labels, _ = planted_features(n_per_class=10)
    with pytest.raises(error):
        SpectralSignature(**kwargs).fit(features, labels)


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        SpectralSignature().fit(np.zeros(5), np.zeros(5, int))
    with pytest.raises(ValueError, match="rows"):
        SpectralSignature().fit(np.zeros((5, 2)), np.zeros(4, int))
