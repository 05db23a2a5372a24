import numpy as np
import pytest
import torch

from hashlearn.defenses import detection_rates, latent_features
from hashlearn.defenses.detection import make_detector
from hashlearn.models import Classifier


def test_detection_rates_hand_built():
    assert detection_rates([0, 1, 2, 7], [0, 1, 2, 3], 10) == (0.75, 1 / 6)
    assert detection_rates([], [4], 5) == (0.0, 0.0)
    assert detection_rates(np.arange(5), [], 5) == (0.0, 1.0)


def test_detection_rates_bad_input():
    with pytest.raises(ValueError, match="flagged"):
        detection_rates([10], [0], 10)
    with pytest.raises(TypeError, match="poison_indices"):
        detection_rates([1], [0.5], 10)
    with pytest.raises(ValueError, match="n"):
        detection_rates([1], [0], 0)


def test_latent_features_are_the_penultimate_features_in_eval_mode():
    torch.manual_seed(0)
    model = Classifier("mlp", 3, {"in_features": 4, "hidden": [6], "dropout": 0.5}).train()
    X = np.random.default_rng(0).random((7, 4), dtype=np.float32)
    features = latent_features(model, X)
    model.eval()
    assert np.allclose(features, model.features(torch.from_numpy(X)).detach().numpy())
    assert features.shape == (7, 6)


def test_make_detector():
    assert type(make_detector("spectral")).__name__ == "SpectralSignature"
    with pytest.raises(ValueError, match="spectral"):
        make_detector("strip")
