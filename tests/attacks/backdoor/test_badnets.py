import numpy as np
import pytest
import torch

from hashlearn.attacks.backdoor import BadNets


@pytest.mark.parametrize("shape", [(3, 10, 10), (3, 1, 10, 10), (3, 100)])
def test_patch_is_stamped_in_the_corner_and_nothing_else_changes(shape):
    x = torch.full(shape, 0.5)
    out = BadNets(patch_size=3, margin=1).trigger(x)
    assert out.shape == x.shape
    images = out.reshape(3, 10, 10)
    expected = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert torch.equal(images[:, 6:9, 6:9], expected.expand(3, 3, 3))
    untouched = torch.ones(10, 10, dtype=torch.bool)
    untouched[6:9, 6:9] = False
    assert (images[:, untouched] == 0.5).all()


def test_outputs_stay_in_unit_range_and_input_is_not_modified():
    x = torch.rand(5, 28, 28)
    before = x.clone()
    out = BadNets().trigger(x)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(x, before)


def test_patch_too_big_for_the_image_is_a_value_error():
    with pytest.raises(ValueError, match="fit"):
        BadNets(patch_size=5, margin=1).trigger(torch.zeros(1, 5, 5))


def test_non_square_flat_input_is_a_value_error():
    with pytest.raises(ValueError, match="square"):
        BadNets().trigger(torch.zeros(2, 50))


def test_bad_patch_parameters():
    with pytest.raises(ValueError):
        BadNets(patch_size=0)
    with pytest.raises(TypeError):
        BadNets(margin=1.5)


def test_apply_trigger_on_numpy_matches_torch():
    x = np.random.default_rng(0).random((4, 12, 12), dtype=np.float32)
    attack = BadNets()
    assert np.array_equal(attack.apply_trigger(x), attack.trigger(torch.from_numpy(x)).numpy())
