import numpy as np
import pytest
import torch

from hashlearn.attacks.backdoor import Blended


def test_blend_formula_and_budget():
    x = torch.rand(6, 1, 9, 9)
    attack = Blended(alpha=0.2, pattern_seed=7)
    pattern = attack.pattern(1, 9, 9)
    out = attack.trigger(x)
    assert torch.allclose(out, 0.8 * x + 0.2 * pattern)
    assert (out - x).abs().max() <= 0.2 + 1e-6
    assert out.min() >= 0 and out.max() <= 1


def test_pattern_is_seeded_and_in_unit_range():
    a, b = Blended(pattern_seed=1).pattern(1, 8, 8), Blended(pattern_seed=1).pattern(1, 8, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, Blended(pattern_seed=2).pattern(1, 8, 8))
    assert a.min() >= 0 and a.max() <= 1


def test_same_pattern_for_flat_and_image_inputs():
    x = np.random.default_rng(0).random((3, 64), dtype=np.float32)
    attack = Blended()
    assert np.allclose(attack.apply_trigger(x), attack.apply_trigger(x.reshape(3, 8, 8)).reshape(3, 64))


@pytest.mark.parametrize("alpha", [0.0, 1.5, -0.2])
def test_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Blended(alpha=alpha)
