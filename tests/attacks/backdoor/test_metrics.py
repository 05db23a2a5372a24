import math

import numpy as np
import pytest
import torch
from torch import nn

from hashlearn.attacks.backdoor import BadNets, Blended
from hashlearn.attacks.backdoor.metrics import (
    attack_success_rate,
    clean_accuracy,
    clean_map,
    gaussian_window,
    linf_distance,
    psnr,
    ssim,
    targeted_retrieval,
)

SIDE = 12


class PixelRule(nn.Module):
    """Hand-built classifier: class 0 if the BadNets patch centre is lit, else the label written in pixel (0, 0)."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.n_classes = n_classes
        self.dropout = nn.Dropout(0.99)  # would scramble outputs if left in train mode
        self.scale = nn.Parameter(torch.ones(()))

    def predicted(self, x):
        x = x.reshape(len(x), SIDE, SIDE)
        label = torch.round(x[:, 0, 0] * 10).long().clamp(0, self.n_classes - 1)
        return torch.where(x[:, SIDE - 3, SIDE - 3] > 0.5, torch.zeros_like(label), label)

    def forward(self, x):
        logits = nn.functional.one_hot(self.predicted(x), self.n_classes).float() * self.scale
        return self.dropout(logits + 1.0)


def _images(labels):
    X = np.zeros((len(labels), SIDE, SIDE), np.float32)
    X[:, 0, 0] = np.asarray(labels) / 10
    return X


def test_clean_accuracy_and_asr_on_a_hand_built_model():
    model = PixelRule().train()
    y = np.array([0, 1, 2, 1, 2, 0])
    X = _images(y)
    assert clean_accuracy(model, X, y) == 1.0
    assert attack_success_rate(model, X, y, BadNets(target_class=0)) == 1.0  # 4 non-target inputs, all flipped
    assert attack_success_rate(model, X, y, Blended(alpha=0.1, target_class=0)) == 0.0  # pixel stays < 0.5
    assert model.training  # mode restored


def test_asr_counts_only_non_target_inputs():
    model = PixelRule()
    y = np.array([1, 2, 1, 2])
    X = _images(y)
    X[:2] = BadNets().apply_trigger(X[:2])  # already triggered: irrelevant, the trigger is applied anyway
    attack = BadNets(target_class=1)  # the rule sends triggered inputs to 0, not 1
    assert attack_success_rate(model, X, y, attack) == 0.0
    with pytest.raises(ValueError, match="target class"):
        attack_success_rate(model, _images([1, 1]), np.array([1, 1]), attack)


def test_asr_all_to_all():
    model = PixelRule()
    y = np.array([2, 2, 1])  # triggered -> class 0; all-to-all target of 2 is 0, of 1 is 2
    assert attack_success_rate(model, _images(y), y, BadNets(target="all-to-all", n_classes=3)) == pytest.approx(2 / 3)


class CodeRule(PixelRule):
    """Hand-built hash model: the code of the predicted class (±1 rows of a codebook)."""

    codebook = torch.tensor([[1.0] * 8, [1.0] * 4 + [-1.0] * 4, [-1.0] * 8])

    def forward(self, x):
        return self.codebook[self.predicted(x)] * self.scale


def test_targeted_retrieval_on_a_hand_built_hash_model():
    model = CodeRule()
    y_db = np.repeat([0, 1, 2], 5)
    y_q = np.array([1, 2, 0])
    out = targeted_retrieval(model, _images(y_db), y_db, _images(y_q), y_q, BadNets(target_class=0), top_n=5)
    assert out["t_map_triggered"] == 1.0 and out["top5_target_share_triggered"] == 1.0
    assert out["top5_target_share_clean"] == 0.0  # clean queries retrieve their own class first
    assert out["hamming_to_target_code_triggered"] == 0.0
    assert out["hamming_to_target_code_clean"] == 6.0  # queries of classes 1 and 2 (4 and 8 bits from the code of 0)
    assert clean_map(model, _images(y_db), y_db, _images(y_q), y_q) == 1.0


def test_linf_and_psnr_hand_values():
    x = np.zeros((2, 4, 4))
    y = x.copy()
    y[:, 0, 0] = 0.4  # MSE = 0.16 / 16 = 0.01 per image
    assert linf_distance(x, y) == pytest.approx(0.4)
    assert psnr(x, y) == pytest.approx(20.0)
    assert psnr(x, x) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, y[:1])


def _ssim_reference(x, y, window, c1, c2):
    """Explicit loops over window positions of one 2-D image."""
    size = window.shape[0]
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mu_a, mu_b = (window * a).sum(), (window * b).sum()
            var_a = (window * (a - mu_a) ** 2).sum()
            var_b = (window * (b - mu_b) ** 2).sum()
            cov = (window * (a - mu_a) * (b - mu_b)).sum()
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return np.mean(values)


def test_ssim_identity_constant_images_and_reference():
    rng = np.random.default_rng(0)
    x = rng.random((1, 14, 14))
    assert ssim(x, x) == pytest.approx(1.0)
    # constant images: sigma terms vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((1, 12, 12), a), np.full((1, 12, 12), b)) == pytest.approx(expected)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    reference = _ssim_reference(x[0], y[0], gaussian_window(), 0.01**2, 0.03**2)
    assert ssim(x, y) == pytest.approx(reference, rel=1e-10)
    assert ssim(x, y) < 1


def test_ssim_errors_and_flat_inputs():
    x = np.random.default_rng(0).random((2, 144))
    assert ssim(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="smaller than window_size"):
        ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="square"):
        ssim(np.zeros((1, 10)), np.zeros((1, 10)))


def test_gaussian_window_is_normalised_and_symmetric():
    w = gaussian_window(11, 1.5)
    assert w.sum() == pytest.approx(1.0) and np.allclose(w, w.T) and w.argmax() == 60
