"""A tiny hash model trained on sklearn digits, shared by the attack tests.

Trained with a minimal local pairwise loop (DPSH-like likelihood on codes plus
a quantisation term) so the tests stand alone and take about a second.
"""

import pytest
import torch
from sklearn.datasets import load_digits

from hashlearn.models import HashModel


def train_tiny_hash_model(x: torch.Tensor, y: torch.Tensor, n_bits: int = 16, epochs: int = 15, seed: int = 0) -> HashModel:
    torch.manual_seed(seed)
    model = HashModel("mlp", n_bits, {"in_features": x.shape[1], "hidden": (64,)})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(128):
            codes = model(x[batch])
            similar = (y[batch, None] == y[None, batch]).float()
            theta = codes @ codes.T / 2
            likelihood = torch.nn.functional.softplus(theta) - similar * theta
            loss = likelihood.mean() + 0.1 * (codes - codes.sign()).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    return model


@pytest.fixture(scope="session")
def train_model():
    """The tiny training loop, for tests that need a second model."""
    return train_tiny_hash_model


@pytest.fixture(scope="session")
def digits():
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    return x, y


@pytest.fixture(scope="session")
def trained_model(digits):
    x, y = digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    try:
        return train_tiny_hash_model(x[:1200], y[:1200])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture()
def queries(digits):
    x, y = digits
    return x[1500:1560], y[1500:1560].numpy()


@pytest.fixture(scope="session")
def database(digits, trained_model):
    x, y = digits
    return trained_model.encode(x[:1200]), y[:1200].numpy()

