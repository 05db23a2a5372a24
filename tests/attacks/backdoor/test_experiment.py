import numpy as np
import pytest

from hashlearn.attacks.backdoor.experiment import latent_tsne
from hashlearn.models import Classifier


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return Classifier("small_cnn", 3, {"in_channels": 1, "image_size": 8})


def test_latent_tsne_samples_poison_noise_and_clean_rows(model):
    X = np.random.default_rng(0).random((80, 8, 8), dtype=np.float32)
    poison, noise = np.arange(0, 20), np.arange(20, 32)
    rows, points = latent_tsne(model, X, poison, noise_indices=noise, n_clean=15, n_poison=10, seed=1)
    assert rows.dtype == np.int64 and np.array_equal(rows, np.unique(rows))
    assert np.isin(rows, poison).sum() == 10 and np.isin(rows, noise).sum() == 5 and (rows >= 32).sum() == 15
    assert points.shape == (30, 2) and points.dtype == np.float32 and np.isfinite(points).all()
    again = latent_tsne(model, X, poison, noise_indices=noise, n_clean=15, n_poison=10, seed=1)
    assert np.array_equal(again[0], rows) and np.allclose(again[1], points)


def test_latent_tsne_needs_a_few_rows(model):
    X = np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="at least 5 rows"):
        latent_tsne(model, X, np.array([0]))
