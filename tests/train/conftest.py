"""Shared fixtures: digits split into train / val, a tiny model and a simple pairwise objective."""

import numpy as np
import pytest
import torch
from torch import nn

from hashlearn.data import load_dataset
from hashlearn.models import HashModel


class PairwiseObjective(nn.Module):
    """Pairwise likelihood with a learnable temperature (a parameter owned by the objective)."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.epochs_seen = []

    def on_epoch_start(self, epoch):
        self.epochs_seen.append(epoch)

    def forward(self, outputs, labels):
        similar = (labels[:, None] == labels[None, :]).float()
        inner = outputs @ outputs.T / 2 * self.log_scale.exp()
        return (nn.functional.softplus(inner) - similar * inner).mean() + 0.1 * ((outputs.abs() - 1) ** 2).mean()


@pytest.fixture(scope="session")
def digits_split():
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(ds.data))
    train, val = order[:600], order[600:750]
    return (ds.data[train], ds.labels[train]), (ds.data[val], ds.labels[val])


def make_model(seed=0, n_bits=16, dropout=0.0):
    torch.manual_seed(seed)
    return HashModel("mlp", n_bits, {"in_features": 64, "hidden": [64], "dropout": dropout})
