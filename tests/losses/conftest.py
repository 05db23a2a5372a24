"""Shared fixtures of the loss tests: random batches and a plain-Python similarity."""

import pytest
import torch

# Small tensors: one thread is much faster than two contended ones on the shared 2-core machine.
torch.set_num_threads(1)

DTYPES = [torch.float32, torch.float64]
TOLERANCES = {torch.float32: dict(rel=2e-5, abs=1e-6), torch.float64: dict(rel=1e-10, abs=1e-12)}


def _make_batch(dtype=torch.float64, batch=7, n_bits=8, n_classes=3, multi_label=False, seed=0):
    """Continuous codes in (-1, 1), labels (ids or multi-hot) and the same labels as Python sets."""
    generator = torch.Generator().manual_seed(seed)
    outputs = torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)
    if multi_label:
        labels = (torch.rand(batch, n_classes, generator=generator) < 0.4).to(torch.uint8)
        label_sets = [{c for c in range(n_classes) if labels[i, c]} for i in range(batch)]
    else:
        labels = torch.randint(0, n_classes, (batch,), generator=generator)
        label_sets = [{int(labels[i])} for i in range(batch)]
    return outputs, labels, label_sets


@pytest.fixture
def make_batch():
    return _make_batch


@pytest.fixture
def approx():
    """``approx(value, dtype)``: pytest.approx with the tolerance of the dtype."""
    return lambda value, dtype: pytest.approx(value, **TOLERANCES[dtype])


def similar(label_sets, i, j):
    return 1.0 if label_sets[i] & label_sets[j] else 0.0


@pytest.fixture
def similarity_of():
    return similar
