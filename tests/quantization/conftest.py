import pytest
import torch

# Small tensors: one thread is much faster than two contended ones on the shared 2-core machine.
torch.set_num_threads(1)

TOLERANCES = {torch.float32: dict(rel=2e-5, abs=1e-6), torch.float64: dict(rel=1e-10, abs=1e-12)}


@pytest.fixture
def approx():
    """``approx(value, dtype)``: pytest.approx with the tolerance of the dtype."""
    return lambda value, dtype: pytest.approx(value, **TOLERANCES[dtype])


@pytest.fixture
def random_outputs():
    def make(batch, n_bits, dtype=torch.float64, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)

    return make
