"""Lifelong hashing loss (Xu et al., "Deep Lifelong Cross-modal Hashing", arXiv 2304.13357, 2023).

New items arrive; the database codes of the old items are stored and must not
change (re-encoding millions of items is what lifelong hashing avoids). The
loss fits the new items' relaxed codes ``u`` (``(B, K)`` in [-1, 1]) to

* the **old database codes** ``b_j`` in {-1, +1} as fixed targets (never
  re-encoded, no gradient): ``(K s_ij - <u_i, b_j>)^2`` over new items ``i``
  and old items ``j`` -- similar pairs are pulled to the old code, dissimilar
  ones pushed to orthogonal (half the bits differ);
* each other, with the same form within the batch: ``(K s_ij - <u_i, u_j>)^2``
  over pairs ``i != j``;
* ``eta * (u - sign(u))^2``, the quantization term.

``s_ij`` is the **multi-label semantic similarity**, the cosine of the label
vectors (``<y_i, y_j> / (|y_i| |y_j|)``, in [0, 1]; 0/1 for single labels).
Each term is a mean divided by ``K^2``, so the scale does not depend on the
batch, the number of old codes or the code length. Without old codes (before
:meth:`LifelongLoss.set_old_database`) only the within-batch and
quantization terms remain: a plain supervised loss, usable for the first stage.

**Center targets** (``center_weight > 0``, the workflow's default): each
class gets a fixed ±1 hash center, and ``center_weight`` x the CSQ binary
cross-entropy between ``(u + 1) / 2`` and ``(c + 1) / 2`` pulls the new items
to their centers (Yuan et al., CVPR 2020). An old class's center is the bitwise
majority of its **stored** database codes (ties: +1), so it follows the codes
that are searched, not the model that made them; each class without stored codes
gets, in class order, the candidate with the largest minimum Hamming distance to
every center fixed so far (candidates: the rows of ``[H; -H]`` for a Hadamard
matrix ``H`` when ``n_bits`` is a power of two, then seeded random ±1 vectors;
:func:`far_centers`). A multi-label item's center is the sign of the sum of its
labels' centers (ties: a fixed seeded ±1 vector), as in CSQ. Before
:meth:`LifelongLoss.set_old_database` every class is new.

The same cross term is the backward-compatibility term of a model upgrade
(BEBR-style): with the *old model's* database codes as the fixed targets, a
new model learns query codes that search the old index.

>>> import torch
>>> loss = LifelongLoss(n_bits=8, n_classes=3).set_old_database(torch.ones(4, 8), torch.tensor([0, 0, 1, 2]))
>>> outputs = torch.tanh(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
>>> float(loss(outputs, torch.tensor([0, 1, 1, 2, 0]))) > 0, loss.n_old
(True, 4)
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn._tensor_checks import as_tensor, labels_to_multi_hot
from hashlearn.losses.base import LocalityLoss, masked_mean, off_diagonal_mask
from hashlearn.losses.csq import PROBABILITY_EPS, CSQLoss
from hashlearn.losses.dpsh import sign_quantization_error

OLD_CENTERS = ("majority", "recorded")
MEMORY_TARGETS = ("centers", "codes")
#: random candidates of :func:`far_centers`, after the Hadamard rows
N_RANDOM_CANDIDATES = 2048


def majority_centers(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(centers, has_center)``: the bitwise majority (ties +1) of the ±1 ``codes`` of each class of the multi-hot ``labels``."""
    codes, labels = np.asarray(codes), np.asarray(labels) > 0
    # (C, K): per class, the sum of its items' codes -- an integer product: exact, and not a BLAS call, whose worker
    # threads would spin on the other cores for a while after it, into the training that follows
    sums = labels.T.astype(np.int64) @ np.rint(codes).astype(np.int64)
    has_center = labels.any(axis=0)
    return np.where(sums >= 0, 1, -1).astype(np.int8), has_center


def far_centers(fixed: np.ndarray, n_new: int, n_bits: int, seed: int = 0) -> np.ndarray:
    """``(n_new, n_bits)`` ±1 centers, each the candidate farthest (max min-Hamming) from ``fixed`` and the ones before it.

    Candidates are the rows of ``[H; -H]`` (Hadamard, when ``n_bits`` is a power of two),
    then ``N_RANDOM_CANDIDATES`` seeded random ±1 vectors; the first candidate wins ties.

    >>> far_centers(np.ones((1, 4), dtype=np.int8), 2, 4).tolist()
    [[-1, -1, -1, -1], [1, -1, 1, -1]]
    """
    candidates = []
    if n_bits & (n_bits - 1) == 0:
        from scipy.linalg import hadamard

        matrix = hadamard(n_bits)
        candidates += [matrix, -matrix]
    rng = np.random.default_rng(seed)
    candidates.append(np.where(rng.random((N_RANDOM_CANDIDATES, n_bits)) < 0.5, -1, 1))
    candidates = np.concatenate(candidates).astype(np.int8)
    chosen = np.asarray(fixed, dtype=np.int8).reshape(-1, n_bits)
    # Hamming distance of every candidate to its nearest chosen center: (K - <c, f>) / 2
    nearest = np.full(len(candidates), n_bits, dtype=np.int64)
    if len(chosen):
        nearest = ((n_bits - candidates.astype(np.int64) @ chosen.T.astype(np.int64)) // 2).min(axis=1)
    picked = []
    for _ in range(n_new):
        best = int(np.argmax(nearest))
        picked.append(candidates[best])
        nearest = np.minimum(nearest, (n_bits - candidates.astype(np.int64) @ candidates[best].astype(np.int64)) // 2)
    return np.asarray(picked, dtype=np.int8).reshape(n_new, n_bits)


def label_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(len(a), len(b))`` cosine similarity of multi-hot label rows; a row without labels is similar to nothing."""
    norm_a = a.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    norm_b = b.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    return (a / norm_a) @ (b / norm_b).T


def similarity_gap(codes, other_codes, targets, other_targets, n_bits: int) -> torch.Tensor:
    """``(len(codes), len(other_codes))`` values ``(K s_ij - <u_i, b_j>)^2 / K^2``, ``s_ij`` the label cosine (the pairwise term)."""
    k = float(n_bits)
    return (k * label_cosine(targets, other_targets) - codes @ other_codes.T).pow(2) / k**2


def with_stored_codes(labels, n_classes: int, codes, has_code) -> np.ndarray:
    """Training targets that carry each item's stored code: float32 ``(n, n_classes + 1 + n_bits)`` 0/1 rows.

    A row is ``[multi-hot labels | 1 if the item has a stored code | its bits]``;
    ``codes`` are ±1 ``(n, n_bits)`` (rows without a stored code are ignored), ``has_code`` is ``(n,)`` bool.
    :class:`LifelongLoss` reads them (``memory_targets="codes"``) and treats the rest as ordinary labels.

    >>> with_stored_codes(np.array([0, 1]), 2, np.array([[1, -1], [1, 1]]), np.array([True, False])).tolist()
    [[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    labels, codes, has_code = np.asarray(labels), np.asarray(codes), np.asarray(has_code, dtype=bool)
    multi_hot = np.eye(n_classes, dtype=np.float32)[labels] if labels.ndim == 1 else labels.astype(np.float32)
    if codes.ndim != 2 or len(codes) != len(multi_hot) or has_code.shape != (len(multi_hot),):
        raise ValueError(f"codes must be ±1 (n, n_bits) and has_code (n,) with n = {len(multi_hot)} labels, got {codes.shape} and {has_code.shape}.")
    bits = np.where(has_code[:, None] & (codes > 0), 1.0, 0.0).astype(np.float32)
    return np.concatenate([multi_hot, has_code[:, None].astype(np.float32), bits], axis=1)


class LifelongLoss(LocalityLoss):
    """Similarity-preserving loss against fixed old codes, within the batch, plus quantization.

    Parameters
    ----------
    n_bits, n_classes : int
    old_weight : float, default 1.0
        Weight of the term against the old database codes.
    new_weight : float, default 1.0
        Weight of the within-batch term.
    eta : float, default 0.1
        Weight of ``mean (u - sign(u))^2``.
    center_weight : float, default 0.0
        Weight of the CSQ cross-entropy toward the class centers (0: no center term,
        the pairwise loss alone).
    old_centers : {"majority", "recorded"}, default "majority"
        The old classes' centers: the bitwise majority of their stored codes, or --
        for the classes whose centers :meth:`set_old_database` is given (the targets
        an earlier stage trained them toward) -- those recorded centers.
    replay_weight : float, default 1.0
        Weight, in the center term, of an item whose labels are all old classes
        (an exemplar-memory item) relative to an item with a new class: the center
        term is the weighted mean ``sum_i w_i bce_i / sum_i w_i``. A small memory
        with a weight of (new items per class / memory items per class) counts as
        much per class as the new data.
    memory_targets : {"centers", "codes"}, default "centers"
        The center term's target of an item that comes with its stored code (an
        exemplar-memory item, see :func:`with_stored_codes`): its class's center, or
        its own stored database code -- the code the database holds for it, so the
        model learns to encode old-class queries as the stored codes were made.
        Items without a stored code always aim at their centers.
    anchors_per_step : int or None, default None
        Compare each batch with this many old codes drawn at random (seeded by
        :meth:`set_old_database`); ``None`` uses every old code at every step.
    own_quantization : bool, default True
    """

    has_own_quantization = True
    needs_similarity = False  # the cosine label similarity is computed here

    def __init__(self, n_bits: int, n_classes: int, *, old_weight: float = 1.0, new_weight: float = 1.0, eta: float = 0.1,
                 center_weight: float = 0.0, old_centers: str = "majority", replay_weight: float = 1.0, memory_targets: str = "centers",
                 anchors_per_step: int | None = None, own_quantization: bool = True):
        super().__init__(n_bits, n_classes, own_quantization=own_quantization)
        for name, value in (("old_weight", old_weight), ("new_weight", new_weight), ("eta", eta), ("center_weight", center_weight),
                            ("replay_weight", replay_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if anchors_per_step is not None and (isinstance(anchors_per_step, bool) or not isinstance(anchors_per_step, int) or anchors_per_step < 1):
            raise ValueError(f"anchors_per_step must be None or an integer >= 1, got {anchors_per_step!r}.")
        self.old_weight, self.new_weight, self.eta = float(old_weight), float(new_weight), float(eta)
        if old_centers not in OLD_CENTERS:
            raise ValueError(f"old_centers must be one of {OLD_CENTERS}, got {old_centers!r}.")
        self.center_weight, self.replay_weight, self.old_centers = float(center_weight), float(replay_weight), old_centers
        if memory_targets not in MEMORY_TARGETS:
            raise ValueError(f"memory_targets must be one of {MEMORY_TARGETS}, got {memory_targets!r}.")
        self.memory_targets = memory_targets
        self._stored_bits = None  # (has a stored code, its bits) of the batch being scored, from with_stored_codes rows
        self.anchors_per_step = anchors_per_step
        # the stored codes are data, not weights: kept out of state_dict (checkpoints stay small; the run holds them)
        self.register_buffer("old_codes", torch.zeros(0, self.n_bits), persistent=False)
        self.register_buffer("old_targets", torch.zeros(0, self.n_classes), persistent=False)
        self._generator = torch.Generator().manual_seed(0)
        # centers: every class new until the old database is set (then old classes take their stored codes' majority)
        self.register_buffer("centers", torch.as_tensor(far_centers(np.zeros((0, self.n_bits)), self.n_classes, self.n_bits), dtype=torch.float32))
        tie_breaker = np.where(np.random.default_rng(0).random(self.n_bits) < 0.5, -1, 1)
        self.register_buffer("tie_breaker", torch.as_tensor(tie_breaker, dtype=torch.float32))
        self.register_buffer("old_classes", torch.zeros(self.n_classes, dtype=torch.bool), persistent=False)

    @property
    def n_old(self) -> int:
        return int(self.old_codes.shape[0])

    def set_old_database(self, codes, labels, *, seed: int = 0, recorded_centers: dict | None = None) -> "LifelongLoss":
        """Fix the old database: ``codes`` as ±1 ``(M, n_bits)`` or packed ``uint8 (M, n_bits // 8)``, ``labels`` ids or multi-hot.

        ``recorded_centers`` (``{class id: ±1 center}``, e.g. an earlier stage's targets)
        replace the majority centers of those old classes when ``old_centers="recorded"``.
        """
        codes_array = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
        if codes_array.dtype == np.uint8 and codes_array.ndim == 2 and codes_array.shape[1] * 8 == self.n_bits:
            from hashlearn.codes import codes_to_pm1

            codes_array = codes_to_pm1(codes_array, self.n_bits)
        if codes_array.ndim != 2 or codes_array.shape[1] != self.n_bits:
            raise ValueError(f"old codes must be ±1 of shape (M, {self.n_bits}) or packed uint8 (M, {self.n_bits // 8}), got {codes_array.dtype} {codes_array.shape}.")
        if not np.isin(codes_array, (-1, 1)).all():
            raise ValueError("old codes must hold only -1 and +1 (binary codes), or be packed uint8 codes.")
        like = self.old_codes
        pm1 = torch.as_tensor(codes_array, dtype=like.dtype, device=like.device)
        targets = labels_to_multi_hot(as_tensor(labels, "labels"), self.n_classes, pm1, name="old labels")
        self.old_codes, self.old_targets = pm1, targets
        self._generator = torch.Generator().manual_seed(int(seed))
        old_centers, has_center = majority_centers(codes_array, targets.cpu().numpy())
        if self.old_centers == "recorded":
            for label, center in (recorded_centers or {}).items():
                center = np.asarray(center)
                if center.shape != (self.n_bits,) or not np.isin(center, (-1, 1)).all():
                    raise ValueError(f"recorded center of class {label} must be ±1 of shape ({self.n_bits},), got {center.dtype} {center.shape}.")
                if has_center[int(label)]:
                    old_centers[int(label)] = center
        centers = old_centers.copy()
        centers[~has_center] = far_centers(old_centers[has_center], int((~has_center).sum()), self.n_bits, seed=int(seed))
        self.centers = torch.as_tensor(centers, dtype=self.centers.dtype, device=self.centers.device)
        self.old_classes = torch.as_tensor(has_center, device=self.centers.device)
        return self

    #: ±1 center of each item: its class's, or the sign of the sum of its labels' centers (ties: the tie breaker) -- CSQ's rule,
    #: on this loss's ``centers`` and ``tie_breaker`` buffers
    item_centers = CSQLoss.item_centers

    def forward(self, outputs, labels):
        """``labels``: class ids, multi-hot labels, or :func:`with_stored_codes`'s ``(B, n_classes + 1 + n_bits)`` rows."""
        width = self.n_classes + 1 + self.n_bits
        if not (torch.is_tensor(labels) and labels.ndim == 2 and labels.shape[1] == width):
            self._stored_bits = None
            return super().forward(outputs, labels)
        labels = labels.to(outputs.device, outputs.dtype)
        # a row is [multi-hot labels | has a stored code | the stored code's bits in {0, 1}]
        has_code, bits = labels[:, self.n_classes] > 0, labels[:, self.n_classes + 1:]
        self._stored_bits = (has_code, bits)
        try:
            return super().forward(outputs, labels[:, : self.n_classes])
        finally:
            self._stored_bits = None

    def compute_loss(self, outputs, targets, similarity):
        loss = outputs.new_zeros(())
        if self.new_weight:
            within = similarity_gap(outputs, outputs, targets, targets, self.n_bits)
            loss = loss + self.new_weight * masked_mean(within, off_diagonal_mask(outputs.shape[0], outputs.device))
        if self.center_weight:
            loss = loss + self.center_weight * self._center_term(outputs, targets)
        if self.n_old and self.old_weight:
            pick = self._anchor_pick(self.n_old, outputs.device)
            old_codes, old_targets = self.old_codes.to(outputs), self.old_targets.to(outputs)
            if pick is not None:
                old_codes, old_targets = old_codes[pick], old_targets[pick]
            loss = loss + self.old_weight * similarity_gap(outputs, old_codes, targets, old_targets, self.n_bits).mean()
        if self.own_quantization and self.eta:
            loss = loss + self.eta * sign_quantization_error(outputs)
        return loss

    def _center_term(self, outputs, targets):
        """The CSQ cross-entropy toward each item's center (or its stored code), memory items weighted by ``replay_weight``."""
        target_bits = (self.item_centers(targets) + 1) / 2
        stored = self._stored_bits
        if stored is not None and self.memory_targets == "codes":
            target_bits = torch.where(stored[0][:, None], stored[1], target_bits)
        probabilities = ((outputs + 1) / 2).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        bce = -(target_bits * torch.log(probabilities) + (1 - target_bits) * torch.log1p(-probabilities)).mean(dim=1)
        if self.replay_weight != 1.0 and bool(self.old_classes.any()):
            only_old = (targets[:, ~self.old_classes.to(targets.device)] == 0).all(dim=1) & (targets > 0).any(dim=1)
            weights = torch.where(only_old, self.replay_weight, 1.0).to(bce)
            return (weights * bce).sum() / weights.sum().clamp_min(1e-12)
        return bce.mean()

    def _anchor_pick(self, n_old: int, device):
        """The seeded random subset of ``anchors_per_step`` old items compared at this step (``None``: all of them)."""
        if self.anchors_per_step is None or self.anchors_per_step >= n_old:
            return None
        return torch.randperm(n_old, generator=self._generator)[: self.anchors_per_step].to(device)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, old_weight={self.old_weight}, new_weight={self.new_weight}, center_weight={self.center_weight}, "
                f"old_centers={self.old_centers!r}, memory_targets={self.memory_targets!r}, "
                f"eta={self.eta}, n_old={self.n_old}")


class BackwardCompatibleLoss(torch.nn.Module):
    """A new model's own objective plus ``weight`` x the lifelong cross term against an old model's codes.

    BEBR-style backward compatibility: ``old_codes`` are the old model's codes of
    (a sample of) its database with their labels; the new model's query codes learn to
    find them, so an upgrade can search the old index before it is re-encoded.

    >>> import torch
    >>> from hashlearn.losses import build_objective
    >>> loss = BackwardCompatibleLoss(build_objective("csq", 8, 3), torch.ones(4, 8), torch.tensor([0, 1, 2, 0]))
    >>> float(loss(torch.zeros(2, 8), torch.tensor([0, 1]))) > 0
    True
    """

    def __init__(self, objective: torch.nn.Module, old_codes, old_labels, *, weight: float = 1.0, anchors_per_step: int | None = 1024,
                 seed: int = 0):
        super().__init__()
        n_bits = getattr(getattr(objective, "locality", objective), "n_bits", None)
        n_classes = getattr(getattr(objective, "locality", objective), "n_classes", None)
        if n_bits is None or n_classes is None:
            raise TypeError(f"objective must be a supervised hashing loss with n_bits and n_classes, got {type(objective).__name__}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"weight must be a number >= 0, got {weight!r}.")
        self.objective, self.weight = objective, float(weight)
        self.compatibility = LifelongLoss(n_bits, n_classes, new_weight=0.0, eta=0.0, anchors_per_step=anchors_per_step)
        self.compatibility.set_old_database(old_codes, old_labels, seed=seed)

    def forward(self, outputs, labels):
        return self.objective(outputs, labels) + self.weight * self.compatibility(outputs, labels)

    def on_epoch_start(self, epoch: int) -> None:
        getattr(self.objective, "on_epoch_start", lambda _: None)(epoch)

    def step(self) -> None:
        getattr(self.objective, "step", lambda: None)()


__all__ = ["BackwardCompatibleLoss", "LifelongLoss", "far_centers", "label_cosine", "majority_centers", "similarity_gap", "with_stored_codes"]
