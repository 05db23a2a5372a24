"""Score-distillation hashing: codes whose Hamming ranking reproduces a neural scorer's ranking.

A scoring function ``f(q, x)`` (e.g. an MLP over two sentence embeddings) ranks
items well but must be evaluated on every item for every query. Distillation
trains a hash model so that, within each batch, the softmax over items of the
code similarity matches the softmax of ``f``'s scores: for every row ``i``,
``KL(softmax_j(f(x_i, x_j) / T) || softmax_j(scale * <u_i, u_j> / n_bits))`` over
``j != i``, averaged over rows. Candidates then come from a Hamming lookup and
only they are scored by ``f``.

The "labels" the trainer passes are the items' feature vectors (the scorer's
inputs), as for the unsupervised loss; the scorer is frozen (no gradient, its
parameters are not the loss's). A scorer is any callable ``scorer(queries (n, d),
items (m, d)) -> (n, m)`` scores, higher = more relevant; :class:`MLPPairScorer`
is a small neural one.

>>> import torch
>>> scorer = MLPPairScorer(in_features=6, hidden=8)
>>> loss = ScoreDistillationLoss(8, scorer=scorer)
>>> generator = torch.Generator().manual_seed(0)
>>> float(loss(torch.tanh(torch.randn(5, 8, generator=generator)), torch.randn(5, 6, generator=generator))) >= 0
True
"""

from __future__ import annotations

import torch
from torch import nn

from hashlearn._validation import check_positive_int
from hashlearn.losses.base import LocalityLoss, off_diagonal_mask


class MLPPairScorer(nn.Module):
    """``f(q, x) = v . relu(A q + B x + c) + w <q, x>``: a neural, non-metric pair scorer.

    The hidden layer sees both items at once (no dot-product factorisation), so
    ``f`` cannot be searched by a vector index; ``A q`` and ``B x`` are computed
    once per item, so scoring ``n x m`` pairs costs ``O(n m hidden)``.
    """

    def __init__(self, in_features: int, hidden: int = 64):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.hidden = check_positive_int(hidden, "hidden")
        self.query_layer = nn.Linear(in_features, hidden)
        self.item_layer = nn.Linear(in_features, hidden, bias=False)
        self.output = nn.Linear(hidden, 1, bias=False)
        self.dot_weight = nn.Parameter(torch.ones(()))

    def forward(self, queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``(n, m)`` of every query against every item."""
        hidden = torch.relu(self.query_layer(queries)[:, None, :] + self.item_layer(items)[None, :, :])
        return self.output(hidden).squeeze(-1) + self.dot_weight * queries @ items.T


def score_distillation_loss(outputs: torch.Tensor, teacher_scores: torch.Tensor, temperature: float, scale: float) -> torch.Tensor:
    """Mean over rows of ``KL(softmax(teacher / T) || softmax(scale * <u_i, u_j> / n_bits))`` over ``j != i``."""
    batch, n_bits = outputs.shape
    mask = off_diagonal_mask(batch, outputs.device)
    very_negative = torch.finfo(outputs.dtype).min / 4
    teacher = torch.where(mask, teacher_scores.to(outputs.dtype) / temperature, very_negative)
    student = torch.where(mask, scale * (outputs @ outputs.T) / n_bits, very_negative)
    target = torch.softmax(teacher, dim=1)
    kl = target * (torch.log_softmax(teacher, dim=1) - torch.log_softmax(student, dim=1))
    return torch.where(mask, kl, torch.zeros((), dtype=kl.dtype, device=kl.device)).sum(dim=1).mean()


class ScoreDistillationLoss(LocalityLoss):
    """Listwise distillation of a frozen scorer's in-batch ranking into code similarities.

    Parameters
    ----------
    n_bits : int
    n_classes : ignored (the common constructor signature)
    scorer : callable ``(queries, items) -> (n, m)`` scores, required
    temperature : float, default 1.0
        Softmax temperature of the teacher scores.
    scale : float, default 8.0
        Inverse temperature of the codes' normalised inner products (in [-1, 1]).
    eta : float, default 0.1
        Own quantization term ``eta * mean (|u| - 1)^2``.
    own_quantization : bool, default True
    """

    label_kind = "features"
    needs_similarity = False
    has_own_quantization = True

    def __init__(self, n_bits: int, n_classes: int | None = None, *, scorer=None, temperature: float = 1.0, scale: float = 8.0,
                 eta: float = 0.1, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        if scorer is None or not callable(scorer):
            raise TypeError("scorer must be a callable (queries, items) -> scores, e.g. an MLPPairScorer; got None." if scorer is None
                            else f"scorer must be callable, got {type(scorer).__name__}.")
        for name, value in (("temperature", temperature), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}.")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 0:
            raise ValueError(f"eta must be a number >= 0, got {eta!r}.")
        self._scorer = [scorer]  # frozen teacher: not a submodule, so neither trained nor saved with the loss
        self.temperature, self.scale, self.eta = float(temperature), float(scale), float(eta)

    @property
    def scorer(self):
        return self._scorer[0]

    def compute_loss(self, outputs, targets, similarity):
        with torch.no_grad():
            scores = self.scorer(targets, targets)
        loss = score_distillation_loss(outputs, scores, self.temperature, self.scale)
        if self.own_quantization and self.eta:
            loss = loss + self.eta * (outputs.abs() - 1).pow(2).mean()
        return loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}, scale={self.scale}, eta={self.eta}"
