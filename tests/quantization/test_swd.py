import pytest
import torch

from hashlearn.quantization import SlicedWassersteinQuantizer
from hashlearn.quantization.swd import random_binary_codes, random_directions

DTYPES = [torch.float32, torch.float64]


def reference_swd(outputs, targets, directions):
    """Loop over directions: project, sort, mean squared difference of order statistics."""
    u, t, d = outputs.double().tolist(), targets.double().tolist(), directions.double().tolist()
    batch, n_bits, n_projections = len(u), len(u[0]), len(d[0])
    total = 0.0
    for direction in range(n_projections):
        projected_u = sorted(sum(u[i][k] * d[k][direction] for k in range(n_bits)) for i in range(batch))
        projected_t = sorted(sum(t[i][k] * d[k][direction] for k in range(n_bits)) for i in range(batch))
        total += sum((a - b) ** 2 for a, b in zip(projected_u, projected_t))
    return total / (batch * n_projections)


def draws(seed, batch, n_bits, n_projections):
    """The targets and directions a quantizer seeded with ``seed`` draws on its first call."""
    generator = torch.Generator().manual_seed(seed)
    targets = random_binary_codes(batch, n_bits, generator)
    return targets, random_directions(n_bits, n_projections, generator)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, n_bits", [(1, 8), (7, 8), (16, 24)])
def test_matches_slow_loop(random_outputs, approx, dtype, batch, n_bits):
    outputs = random_outputs(batch, n_bits, dtype, seed=2)
    quantizer = SlicedWassersteinQuantizer(n_projections=5, random_state=11)
    targets, directions = draws(11, batch, n_bits, 5)
    assert set(targets.unique().tolist()) <= {-1.0, 1.0}
    assert torch.allclose(directions.norm(dim=0), torch.ones(5))
    assert quantizer(outputs).item() == approx(reference_swd(outputs, targets, directions), dtype)


def test_invariant_to_permutation_of_the_batch(random_outputs):
    outputs = random_outputs(32, 16, seed=3)
    permuted = outputs[torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    first = SlicedWassersteinQuantizer(random_state=4)(outputs)
    second = SlicedWassersteinQuantizer(random_state=4)(permuted)
    assert first.item() == pytest.approx(second.item(), rel=1e-12)


def test_seeded_per_call_site_and_redrawn_per_call(random_outputs):
    outputs = random_outputs(16, 8, seed=5)
    quantizer, twin = SlicedWassersteinQuantizer(random_state=1), SlicedWassersteinQuantizer(random_state=1)
    first, second = quantizer(outputs).item(), quantizer(outputs).item()
    assert first == twin(outputs).item() and second == twin(outputs).item()
    assert first != second
    assert SlicedWassersteinQuantizer(random_state=2)(outputs).item() != first


def test_zero_for_the_target_sample_itself_and_large_for_collapsed_codes():
    targets, _ = draws(8, 64, 16, 10)
    assert SlicedWassersteinQuantizer(n_projections=10, random_state=8)(targets).item() == pytest.approx(0.0, abs=1e-12)
    collapsed = torch.ones(64, 16)  # binary but one single code
    binary_random = torch.where(torch.rand(64, 16, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0)
    quantizer = SlicedWassersteinQuantizer(random_state=0)
    assert quantizer(collapsed).item() > 5 * SlicedWassersteinQuantizer(random_state=0)(binary_random).item()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_projections"):
        SlicedWassersteinQuantizer(n_projections=0)
    with pytest.raises(TypeError, match="random_state"):
        SlicedWassersteinQuantizer(random_state="seed")
