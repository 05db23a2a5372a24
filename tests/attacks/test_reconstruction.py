"""The reconstruction attack: a case where floats must leak more than codes, slow references, determinism, modes."""

import math

import numpy as np
import pytest
import torch

from hashlearn.attacks.reconstruction import (
    ReconstructionAttack,
    class_mean_reconstruction,
    mean_reconstruction,
    reconstruction_quality,
    released_representations,
)
from hashlearn.codes import codes_to_pm1
from hashlearn.errors import NotFittedError
from hashlearn.models import HashModel

N_LATENT = 8


@pytest.fixture(scope="module")
def linear_world():
    """Inputs x = z W (64 pixels, 8x8) of a Gaussian latent z, and a tiny hash model whose outputs are tanh(0.3 z).

    The model's backbone is the identity and its head undoes W, so the float outputs determine z (and x)
    exactly, while the codes keep only sign(z): the best any decoder can do from them is
    E[x | sign z] = sign(z) sqrt(2/pi) W, with mean squared error (1 - 2/pi) ||W||_F^2 / 64 per pixel.
    """
    rng = np.random.default_rng(0)
    W = rng.normal(size=(N_LATENT, 64)) / 4
    z = rng.normal(size=(2600, N_LATENT))
    x = (z @ W).astype(np.float32)
    model = HashModel("mlp", N_LATENT, {"in_features": 64, "hidden": []})
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.tensor(0.3 * np.linalg.pinv(W).T, dtype=torch.float32))
        model.head.linear.bias.zero_()
    mmse_codes = (1 - 2 / math.pi) * float((W**2).sum()) / 64
    return x, model, mmse_codes


def _decoder(seed=0, **kwargs):
    settings = {"hidden": (64,), "epochs": 15, "batch_size": 128, "lr": 3e-3, "output_range": None, "seed": seed}
    return ReconstructionAttack(**{**settings, **kwargs})


def test_floats_reconstruct_better_than_codes_and_codes_cannot_beat_their_bound(linear_world):
    x, model, mmse_codes = linear_world
    released = released_representations(model, x)
    train, test = slice(0, 2000), slice(2000, None)
    mse = {kind: _decoder().fit(rep[train], x[train]).score(rep[test], x[test])["mse"] for kind, rep in released.items()}
    assert mse["outputs"] < 0.2 * mmse_codes and mse["features"] < 0.2 * mmse_codes
    assert mse["codes"] > 0.95 * mmse_codes  # no decoder beats E[x | sign z] on unseen items
    assert mse["codes"] < 1.3 * mmse_codes  # ... and this one gets close to it
    assert np.var(x) > 2 * mmse_codes  # the codes still say something: better than the mean


def test_released_representations_are_what_the_model_computes_and_modes_are_restored():
    torch.manual_seed(0)
    model = HashModel("mlp", 16, {"in_features": 20, "hidden": [12], "dropout": 0.5})
    model.train()
    model.head.eval()  # mixed modes must come back as they were
    x = torch.rand(30, 20)
    released = released_representations(model, x, batch_size=7)
    assert model.training and model.backbone.training and not model.head.training
    assert {k: v.shape for k, v in released.items()} == {"features": (30, 12), "outputs": (30, 16), "codes": (30, 16)}
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(released["features"], model.features(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(released["outputs"], model(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(released["codes"], codes_to_pm1(model.encode(x), 16))
    assert set(released_representations(model, x, kinds=["codes"])) == {"codes"}
    with pytest.raises(ValueError, match="kinds"):
        released_representations(model, x, kinds=["logits"])


def _psnr_slow(x, y, data_range):
    values = []
    for a, b in zip(x, y):
        mse = sum((float(p) - float(q)) ** 2 for p, q in zip(a.ravel(), b.ravel())) / a.size
        values.append(10 * math.log10(data_range**2 / mse))
    return sum(values) / len(values)


def _ssim_slow(x, y, window, data_range):
    """Wang et al. 2004 by explicit loops over every valid window position."""
    size = len(window)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for a, b in zip(x, y):
        for i in range(a.shape[0] - size + 1):
            for j in range(a.shape[1] - size + 1):
                pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
                mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
                var_a = (window * pa * pa).sum() - mu_a**2
                var_b = (window * pb * pb).sum() - mu_b**2
                cov = (window * pa * pb).sum() - mu_a * mu_b
                values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return sum(values) / len(values)


def _gaussian(size, sigma=1.5):
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    window = np.outer(g, g)
    return window / window.sum()


@pytest.mark.parametrize("side,window", [(14, 11), (8, 7), (12, 11)])
def test_quality_matches_slow_references(side, window):
    rng = np.random.default_rng(side)
    x = rng.random((3, side, side))
    y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1)
    quality = reconstruction_quality(x, y)
    assert quality["psnr"] == pytest.approx(_psnr_slow(x, y, 1.0), rel=1e-9)
    assert quality["ssim"] == pytest.approx(_ssim_slow(x, y, _gaussian(window), 1.0), rel=1e-9)
    assert quality["mse"] == pytest.approx(float(((x - y) ** 2).mean()))
    flat = reconstruction_quality(x.reshape(3, -1), y.reshape(3, -1))  # flat square vectors are images too
    assert flat["ssim"] == pytest.approx(quality["ssim"])
    assert reconstruction_quality(x[:, :, :3].reshape(3, -1)[:, :5], y[:, :, :3].reshape(3, -1)[:, :5])["ssim"] is None
    assert reconstruction_quality(x, x)["ssim"] == pytest.approx(1.0) and reconstruction_quality(x, x)["psnr"] == math.inf


def test_baselines_by_hand():
    aux = np.arange(12, dtype=np.float32).reshape(4, 3)
    labels = np.array([0, 1, 0, 1])
    np.testing.assert_array_equal(mean_reconstruction(aux, 2), np.tile(aux.mean(0), (2, 1)))
    np.testing.assert_array_equal(class_mean_reconstruction(aux, labels, np.array([1, 0])), np.stack([(aux[1] + aux[3]) / 2, (aux[0] + aux[2]) / 2]))
    with pytest.raises(ValueError, match="never shows"):
        class_mean_reconstruction(aux, labels, np.array([2]))


def test_determinism_and_the_callers_random_state(linear_world):
    x, model, _ = linear_world
    rep = released_representations(model, x[:400], kinds=["codes"])["codes"]
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = _decoder(seed=1, epochs=3).fit(rep[:300], x[:300]).reconstruct(rep[300:])
    after = torch.rand(3)
    assert torch.equal(before, after)  # fitting leaves torch's global generator alone
    second = _decoder(seed=1, epochs=3).fit(rep[:300], x[:300]).reconstruct(rep[300:])
    other = _decoder(seed=2, epochs=3).fit(rep[:300], x[:300]).reconstruct(rep[300:])
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert first.shape == (100, 64)


def test_output_range_bounds_the_reconstructions():
    rng = np.random.default_rng(0)
    rep, images = rng.normal(size=(200, 5)).astype(np.float32), rng.random((200, 6, 6)).astype(np.float32)
    attack = ReconstructionAttack(hidden=(16,), epochs=2, output_range=(0.0, 1.0)).fit(rep, images)
    out = attack.reconstruct(rng.normal(size=(50, 5)).astype(np.float32) * 100)
    assert out.shape == (50, 6, 6) and out.min() >= 0.0 and out.max() <= 1.0
    assert "ReconstructionAttack(hidden=(16,)" in repr(attack)


def test_bad_input_is_refused_with_the_argument_named():
    rep, images = np.zeros((20, 4), np.float32), np.zeros((20, 8, 8), np.float32)
    with pytest.raises(NotFittedError, match="not fitted"):
        ReconstructionAttack().reconstruct(rep)
    with pytest.raises(ValueError, match="one item per representation"):
        ReconstructionAttack(epochs=1).fit(rep, images[:10])
    with pytest.raises(ValueError, match="representations"):
        ReconstructionAttack(epochs=1).fit(rep[:, :, None], images)
    with pytest.raises(ValueError, match="NaN"):
        ReconstructionAttack(epochs=1).fit(np.full((20, 4), np.nan), images)
    fitted = ReconstructionAttack(hidden=(4,), epochs=1).fit(rep, images)
    with pytest.raises(ValueError, match="expecting 4 features"):
        fitted.reconstruct(np.zeros((3, 5), np.float32))
    for bad in ({"hidden": (0,)}, {"hidden": "64"}, {"val_fraction": 1.0}, {"output_range": (1, 0)}, {"seed": -1}, {"lr": 0}):
        with pytest.raises((TypeError, ValueError)):
            ReconstructionAttack(**{"epochs": 1, **bad}).fit(rep, images)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_quality(images, images[:, :4])
