import numpy as np
import pytest
import torch

from hashlearn.attacks import HAG
from hashlearn.codes import hamming_distances


def test_alpha_is_geometric_from_start_to_end(trained_model):
    attack = HAG(trained_model, steps=5, alpha_start=1.0, alpha_end=16.0)
    assert [attack.alpha(step) for step in range(5)] == pytest.approx([1, 2, 4, 8, 16])
    assert HAG(trained_model, steps=1, alpha_end=3.0).alpha(0) == 3.0


def test_objective_against_a_loop(trained_model):
    attack = HAG(trained_model, margin=0.5)
    outputs = torch.tensor([[0.9, -0.7, 0.2, -0.4], [-0.6, -0.1, 0.8, 0.3]])
    reference = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    expected = []
    for h, b in zip(outputs.tolist(), reference.tolist()):
        kept = [hj * bj for hj, bj in zip(h, b) if hj * bj >= -0.5]  # bits flipped beyond the margin drop out
        expected.append((sum(kept) / 4 + 1) ** 2)
    torch.testing.assert_close(attack.default_objective(outputs, reference), torch.tensor(expected))


def test_masked_bits_get_no_gradient(trained_model):
    attack = HAG(trained_model, margin=0.5)
    outputs = torch.tensor([[0.9, -0.9, 0.3]], requires_grad=True)
    reference = torch.tensor([[1.0, 1.0, 1.0]])
    attack.default_objective(outputs, reference).sum().backward()
    assert outputs.grad[0, 1] == 0 and outputs.grad[0, 0] > 0 and outputs.grad[0, 2] > 0


def test_hag_flips_more_bits_than_random_noise(trained_model, queries):
    x, _ = queries
    eps = 0.2
    hag = HAG(trained_model, eps=eps, steps=30).attack(x)
    generator = torch.Generator().manual_seed(0)
    noise = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1) * eps  # corners of the L-inf ball
    noisy = (x + noise).clamp(0, 1)
    noise_flips = hamming_distances(trained_model.encode(x), trained_model.encode(noisy)).diagonal()
    assert hag.records["bits_flipped"].mean() > 3 * max(noise_flips.mean(), 0.5)
    assert hag.records["bits_flipped"].mean() > 0.4 * trained_model.n_bits
    assert np.abs(hag.records["linf"]).max() <= eps + 1e-6
