import pytest
import torch

from hashlearn.quantization import HSWDQuantizer

DTYPES = [torch.float32, torch.float64]


def reference_hswd(outputs, sorted_targets=None):
    """Loop over bits: sort the column, compare with the balanced ±1 quantiles (or a given sorted sample)."""
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])
    total = 0.0
    for k in range(n_bits):
        column = sorted(u[i][k] for i in range(batch))
        if sorted_targets is None:
            target = [-1.0] * (batch // 2) + [1.0] * (batch - batch // 2)
        else:
            target = [sorted_targets[i][k] for i in range(batch)]
        total += sum((a - b) ** 2 for a, b in zip(column, target))
    return total / (batch * n_bits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 2, 7, 16])
def test_matches_slow_loop(random_outputs, approx, dtype, batch):
    outputs = random_outputs(batch, 8, dtype, seed=batch)
    assert HSWDQuantizer()(outputs).item() == approx(reference_hswd(outputs), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sampled_target_matches_slow_loop(random_outputs, approx, dtype):
    outputs = random_outputs(9, 8, dtype, seed=3)
    generator = torch.Generator().manual_seed(4)
    sample = torch.sort(torch.randint(0, 2, (8, 9), generator=generator) * 2 - 1, dim=1).values.T  # drawn one row per bit
    expected = reference_hswd(outputs, sample.double().tolist())
    assert HSWDQuantizer(target="sample", random_state=4)(outputs).item() == approx(expected, dtype)


@pytest.mark.parametrize("batch", [2, 8, 9, 31])
def test_zero_exactly_for_a_balanced_binary_batch(batch):
    """Each bit holds floor(B/2) times -1 and the rest +1, in any order."""
    generator = torch.Generator().manual_seed(batch)
    column = torch.ones(batch)
    column[: batch // 2] = -1
    balanced = torch.stack([column[torch.randperm(batch, generator=generator)] for _ in range(16)], dim=1)
    assert HSWDQuantizer()(balanced).item() == 0.0


@pytest.mark.parametrize("defect", ["unbalanced", "not_binary", "all_zero"])
def test_positive_for_anything_else(defect):
    balanced = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    outputs = {"unbalanced": balanced.abs(), "not_binary": 0.9 * balanced, "all_zero": torch.zeros(4, 2)}[defect]
    assert HSWDQuantizer()(outputs).item() > 0


def test_gradient_moves_each_value_towards_its_quantile():
    outputs = torch.tensor([[0.5], [-0.2], [0.1], [-0.9]], requires_grad=True)
    HSWDQuantizer()(outputs).backward()
    # sorted: -0.9 -> -1, -0.2 -> -1, 0.1 -> +1, 0.5 -> +1; gradient 2 (u - t) / 4
    assert torch.allclose(outputs.grad.flatten(), torch.tensor([-0.25, 0.4, -0.45, 0.05]))


def test_unknown_target():
    with pytest.raises(ValueError, match="target"):
        HSWDQuantizer(target="exact")


@pytest.mark.parametrize("batch", [5, 12])
def test_ties_give_the_sorted_pairing_value_and_gradient(batch):
    """Saturated tanh outputs repeat exactly; the selection must still pair like a sort."""
    generator = torch.Generator().manual_seed(batch)
    choices = torch.tensor([-1.0, 0.5, 1.0], dtype=torch.float64)
    outputs = choices[torch.randint(0, 3, (batch, 6), generator=generator)].requires_grad_(True)
    value = HSWDQuantizer()(outputs)
    assert value.item() == pytest.approx(reference_hswd(outputs.detach()), rel=1e-12)
    value.backward()
    sorted_pairing = outputs.detach().clone().requires_grad_(True)
    target = torch.ones(batch, dtype=torch.float64)
    target[: batch // 2] = -1
    (torch.sort(sorted_pairing, dim=0).values - target[:, None]).pow(2).mean().backward()
    # tied entries may swap targets, but then they hold the same value: compare per column as multisets
    for column in range(6):
        assert sorted(outputs.grad[:, column].tolist()) == pytest.approx(sorted(sorted_pairing.grad[:, column].tolist()))
