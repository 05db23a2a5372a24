"""A vertical split (vertical federated learning): each party holds a block of columns of every image.

Party ``p`` runs its own *bottom model* (an MLP) on its slice of the image and
sends an embedding of ``embedding_dim`` values to the *top model*, which
classifies the concatenated embeddings. With ``hash_embeddings=True`` each
party sends binary codes instead -- the sign of its ``tanh`` embedding, trained
through a straight-through gradient (the binarisation of HashVFL, Qiu et al.
2023) -- so the top model sees ``embedding_dim`` bits per party and nothing
more. The architecture is otherwise identical, so the two settings compare the
exchanged representation only.

>>> import torch
>>> model = VerticalSplitModel(image_shape=(28, 28), n_classes=10, hash_embeddings=True)
>>> x = torch.rand(5, 28, 28)
>>> [tuple(part.shape) for part in model.party_inputs(x)], model.party_columns
([(5, 28, 14), (5, 28, 14)], [(0, 14), (14, 28)])
>>> sent = model.embeddings(x)
>>> tuple(model(x).shape), sorted(set(sent[1].flatten().tolist()))
((5, 10), [-1.0, 1.0])
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from hashlearn._validation import check_positive_int
from hashlearn.models.backbones import mlp


def straight_through_sign(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` (``+1`` where ``x > 0``, else ``-1``) forward; the identity's gradient backward."""
    hard = torch.where(x > 0, torch.ones_like(x), -torch.ones_like(x))
    return x + (hard - x).detach()



def _check_widths(value, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value):
        raise ValueError(f"{name} must be a sequence of integers >= 1, got {value!r}.")
    return tuple(int(v) for v in value)


class VerticalSplitModel(nn.Module):
    """``n_parties`` bottom models on column blocks of an image and a top model on what they send.

    Parameters
    ----------
    image_shape : (int, int)
        ``(H, W)`` of the grey images; party ``p`` holds columns ``party_columns[p]``
        (``W`` split as evenly as possible, left to right).
    n_classes : int
        Classes of the top model's task.
    n_parties : int
        Number of parties (2: left and right halves).
    embedding_dim : int
        Values (or bits, when hashing) each party sends per item.
    bottom_hidden, top_hidden : tuple of int
        Hidden widths of each bottom MLP and of the top MLP.
    hash_embeddings : bool
        Send the sign of the ``tanh`` embedding (straight-through gradient) instead of the embedding.
    """

    def __init__(self, image_shape=(28, 28), n_classes: int = 10, n_parties: int = 2, embedding_dim: int = 64,
                 bottom_hidden=(256,), top_hidden=(128,), hash_embeddings: bool = False):
        super().__init__()
        if len(tuple(image_shape)) != 2:
            raise ValueError(f"image_shape must be (H, W) of grey images, got {image_shape!r}.")
        height, width = (check_positive_int(v, "image_shape") for v in image_shape)
        self.n_parties = check_positive_int(n_parties, "n_parties", minimum=2)
        if self.n_parties > width:
            raise ValueError(f"n_parties={n_parties} exceeds the image width {width}: each party needs at least one column.")
        self.image_shape = (height, width)
        self.n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.bottom_hidden = _check_widths(bottom_hidden, "bottom_hidden")
        self.top_hidden = _check_widths(top_hidden, "top_hidden")
        if not isinstance(hash_embeddings, bool):
            raise TypeError(f"hash_embeddings must be True or False, got {hash_embeddings!r}.")
        self.hash_embeddings = hash_embeddings
        edges = np.linspace(0, width, self.n_parties + 1).round().astype(int)
        self.party_columns = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.bottoms = nn.ModuleList(mlp(height * (b - a), self.bottom_hidden, self.embedding_dim) for a, b in self.party_columns)
        self.top = mlp(self.n_parties * self.embedding_dim, self.top_hidden, self.n_classes)

    def __repr__(self) -> str:
        return (f"VerticalSplitModel(image_shape={self.image_shape}, n_parties={self.n_parties}, embedding_dim={self.embedding_dim}, "
                f"hash_embeddings={self.hash_embeddings})")

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.image_shape
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        elif x.dim() == 2 and x.shape[1] == height * width:
            x = x.view(len(x), height, width)
        if x.dim() != 3 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"inputs must be images (B, {height}, {width}) (or (B, 1, H, W), or flat (B, {height * width})), got {tuple(x.shape)}.")
        return x

    def party_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each party's slice ``(B, H, columns)`` of the images ``x``."""
        x = self._images(x)
        return [x[:, :, a:b] for a, b in self.party_columns]

    def embeddings(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What each party sends to the top model: ``tanh`` embeddings, or their +-1 signs when hashing."""
        sent = []
        for bottom, part in zip(self.bottoms, self.party_inputs(x)):
            embedding = torch.tanh(bottom(part.flatten(1)))
            sent.append(straight_through_sign(embedding) if self.hash_embeddings else embedding)
        return sent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, n_classes)`` of the top model."""
        return self.top(torch.cat(self.embeddings(x), dim=1))


__all__ = ["VerticalSplitModel", "straight_through_sign"]
