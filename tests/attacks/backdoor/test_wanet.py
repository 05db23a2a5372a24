import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashlearn.attacks.backdoor import WaNet, WarpedPoisonedSet, make_attack
from hashlearn.attacks.backdoor.wanet import identity_grid


def bilinear_reference(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """grid_sample(align_corners=True, zero padding) by an explicit loop over output pixels and the 4 neighbours."""
    height, width = image.shape
    out = np.zeros(grid.shape[:2])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            px, py = (grid[i, j, 0] + 1) / 2 * (width - 1), (grid[i, j, 1] + 1) / 2 * (height - 1)
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                    if 0 <= yy < height and 0 <= xx < width:
                        out[i, j] += wy * wx * image[yy, xx]
    return out


def labels(n: int = 60, n_classes: int = 3) -> np.ndarray:
    return np.arange(n) % n_classes


def test_trigger_is_bilinear_resampling_along_the_warp_grid():
    x = np.random.default_rng(0).random((2, 7, 9), dtype=np.float32)
    attack = WaNet(strength=2.0, grid_size=3)
    grid = attack.warp_grid(7, 9)[0].numpy().astype(np.float64)
    out = attack.apply_trigger(x)
    for n in range(2):
        np.testing.assert_allclose(out[n], bilinear_reference(x[n].astype(np.float64), grid), atol=1e-5)


def test_warp_grid_formula():
    attack = WaNet(strength=0.7, grid_rescale=1.1, grid_size=4, warp_seed=3)
    noise = attack.noise_field(10, 12)
    expected = ((identity_grid(10, 12) + 0.7 * noise / torch.tensor([12.0, 10.0])) * 1.1).clamp(-1, 1)
    assert torch.allclose(attack.warp_grid(10, 12), expected)
    generator = torch.Generator().manual_seed(3)
    offsets = torch.rand(1, 2, 4, 4, generator=generator) * 2 - 1
    offsets = offsets / offsets.abs().mean()
    assert offsets.abs().mean().item() == pytest.approx(1.0)
    # bicubic with aligned corners passes through the control points at the corners
    assert torch.allclose(noise[0, 0, 0], offsets[0, :, 0, 0], atol=1e-5)
    assert torch.allclose(noise[0, -1, -1], offsets[0, :, -1, -1], atol=1e-5)


def test_warp_field_is_deterministic_by_seed():
    a, b = WaNet(warp_seed=5).warp_grid(8, 8), WaNet(warp_seed=5).warp_grid(8, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, WaNet(warp_seed=6).warp_grid(8, 8))
    x = torch.rand(3, 8, 8)
    assert torch.equal(WaNet(warp_seed=5).trigger(x), WaNet(warp_seed=5).trigger(x))


def test_identity_at_strength_zero():
    x = torch.rand(4, 1, 11, 11, dtype=torch.float64)
    assert torch.allclose(WaNet(strength=0.0).trigger(x), x, atol=1e-6)
    assert torch.allclose(identity_grid(5, 5)[0, :, :, 0], torch.linspace(-1, 1, 5).expand(5, 5))
    assert not torch.allclose(WaNet(strength=0.5).trigger(x), x, atol=1e-3)


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 1, 8, 8), (3, 3, 8, 10), (3, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_unit_range(shape, dtype):
    x = torch.rand(*shape, dtype=dtype)
    x.view(-1)[:5] = 1.0  # saturated pixels stay within range after interpolation
    out = WaNet(strength=3.0).trigger(x)
    assert out.shape == x.shape and out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 1
    numpy_out = WaNet(strength=3.0).apply_trigger(x.numpy())
    assert numpy_out.dtype == np.float32 and numpy_out.shape == tuple(shape)


def test_flat_inputs_warp_like_images():
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    attack = WaNet()
    np.testing.assert_allclose(attack.apply_trigger(x), attack.apply_trigger(x.reshape(3, 8, 8)).reshape(3, 64), atol=1e-6)


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.3])
def test_poisoned_fraction_is_the_rate_and_noise_mode_keeps_labels(rate):
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 8, 8), dtype=np.float32), labels()
    attack = WaNet(rate=rate, target_class=1, cross_ratio=1.5, seed=4)
    poisoned = attack.poison(X, y)
    assert isinstance(poisoned, WarpedPoisonedSet)
    n_poison = int(round(rate * 60))
    assert len(poisoned.poison_indices) == n_poison and len(poisoned.noise_indices) == int(round(1.5 * n_poison))
    assert not np.intersect1d(poisoned.poison_indices, poisoned.noise_indices).size
    assert (poisoned.y[poisoned.poison_indices] == 1).all() and (y[poisoned.poison_indices] != 1).all()
    assert np.array_equal(poisoned.y[poisoned.noise_indices], y[poisoned.noise_indices])  # noise mode: true labels
    np.testing.assert_allclose(poisoned.X[poisoned.poison_indices], attack.apply_trigger(X[poisoned.poison_indices]))
    untouched = np.setdiff1d(np.arange(60), np.concatenate([poisoned.poison_indices, poisoned.noise_indices]))
    assert np.array_equal(poisoned.X[untouched], X[untouched]) and np.array_equal(poisoned.y[untouched], y[untouched])
    # noise-mode rows are warped (not clean) but not with the trigger's exact field
    noise_rows = poisoned.noise_indices
    assert not np.allclose(poisoned.X[noise_rows], X[noise_rows])
    assert not np.allclose(poisoned.X[noise_rows], attack.apply_trigger(X[noise_rows]))
    assert poisoned.X.min() >= 0 and poisoned.X.max() <= 1 and poisoned.X.dtype == np.float32


def test_noise_mode_jitter_is_within_one_pixel_grid_step():
    # the jitter moves sampling points by at most 1/H in grid units = (H - 1) / (2H) < 1/2 pixel;
    # a constant image shows no change, a horizontal ramp changes by at most that much
    height = 16
    ramp = np.tile(np.linspace(0, 1, height, dtype=np.float32), (height, 1))[None].repeat(5, 0)
    attack = WaNet(strength=0.0, cross_ratio=1.0, rate=0.5, target_class=0)
    generator = torch.Generator().manual_seed(0)
    jittered = attack.noise_warp(torch.from_numpy(ramp), generator).numpy()
    step = 1.0 / (height - 1)
    interior = (slice(None), slice(1, -1), slice(1, -1))
    assert np.abs(jittered - ramp)[interior].max() <= 0.5 * step + 1e-6
    assert np.abs(jittered - ramp)[interior].max() > 0.1 * step


def test_poison_is_deterministic_by_seed():
    X = np.random.default_rng(0).random((60, 8, 8), dtype=np.float32)
    first, second = WaNet(seed=2).poison(X, labels()), WaNet(seed=2).poison(X, labels())
    assert np.array_equal(first.X, second.X) and np.array_equal(first.noise_indices, second.noise_indices)
    other = WaNet(seed=3).poison(X, labels())
    assert not np.array_equal(first.poison_indices, other.poison_indices)


def test_all_to_all_target_mapping():
    X, y = np.random.default_rng(0).random((60, 8, 8), dtype=np.float32), labels()
    poisoned = WaNet(target="all-to-all", n_classes=3, rate=0.2).poison(X, y)
    rows = poisoned.poison_indices
    assert np.array_equal(poisoned.y[rows], (y[rows] + 1) % 3)
    assert set(y[rows]) == {0, 1, 2}  # every class can be poisoned under all-to-all


def test_cross_ratio_zero_turns_noise_mode_off():
    X = np.random.default_rng(0).random((30, 8, 8), dtype=np.float32)
    poisoned = WaNet(cross_ratio=0.0, rate=0.2).poison(X, labels(30))
    assert len(poisoned.noise_indices) == 0 and poisoned.noise_indices.dtype == np.int64


def test_params_rebuild_the_same_trigger():
    attack = WaNet(strength=0.8, grid_size=5, grid_rescale=0.98, cross_ratio=1.0, warp_seed=9, rate=0.2)
    params = attack.params()
    rebuilt = make_attack(params.pop("attack"), **params)
    x = torch.rand(2, 12, 12)
    assert torch.equal(rebuilt.trigger(x), attack.trigger(x))
    assert "strength=0.8" in repr(attack)


@pytest.mark.parametrize("kwargs, name", [({"strength": -0.1}, "strength"), ({"grid_size": 1}, "grid_size"),
                                          ({"grid_rescale": 0.0}, "grid_rescale"), ({"cross_ratio": -1.0}, "cross_ratio"),
                                          ({"warp_seed": -1}, "warp_seed")])
def test_bad_parameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WaNet(**kwargs)


def test_too_many_noise_samples_is_an_error():
    X = np.random.default_rng(0).random((30, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="cross_ratio"):
        WaNet(rate=0.5, cross_ratio=2.0, target="all-to-all", n_classes=3).poison(X, labels(30))


def test_grid_sample_reference_agrees_with_torch_on_identity():
    # the reference itself: the identity grid reproduces the image
    image = np.random.default_rng(0).random((5, 6))
    np.testing.assert_allclose(bilinear_reference(image, identity_grid(5, 6, torch.float64)[0].numpy()), image, atol=1e-12)
    torch_out = F.grid_sample(torch.from_numpy(image)[None, None], identity_grid(5, 6, torch.float64), align_corners=True)
    np.testing.assert_allclose(torch_out[0, 0].numpy(), image, rtol=0, atol=1e-6)
