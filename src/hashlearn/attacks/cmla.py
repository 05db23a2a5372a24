"""CMLA: the cross-modal adversarial query of "Cross-Modal Learning with Adversarial Samples".

C. Li, S. Gao, C. Deng, D. Xie, W. Liu, "Cross-Modal Learning with
Adversarial Samples", NeurIPS 2019. A query of one modality (an image, or a
text in its feature space) is perturbed within a norm budget so that its code
moves away from the codes of its *paired* item in the other modality -- the
cross-modal retrieval fails -- while it stays close to its own clean code,
so that its same-modality retrieval looks untouched.

With ``h = tanh(alpha * z(x + delta))`` the relaxed code from the tower's
pre-activation ``z`` (``alpha`` annealed geometrically from ``alpha_start`` to
``alpha_end``, as in HAG), ``b_p`` the paired other-modality code and ``b_c``
the query's clean code (both ``{-1, +1}^m``), CMLA minimises per query

    ``inter_weight * (<h, b_p> / m + 1)^2  +  intra_weight * (1 - <h, b_c> / m)^2``

The inter-modal term is 0 when the code is the opposite of the paired code,
the intra-modal term is 0 when the code equals the clean code. On bits where
``b_p`` and ``b_c`` agree the two terms pull in opposite directions
(``intra_weight`` sets the trade-off); on bits where they differ both agree.

Norms: images in pixel space (``linf`` or ``l2``, ``clip=(0, 1)``); texts in
their feature space -- binary bag-of-words with ``clip=(0, 1)``, or sentence
embeddings with ``clip=None`` -- usually with an ``l2`` budget, which the
caller states relative to the features' typical norm.

``attack(x, target_codes)`` takes the paired codes (packed ``uint8``, one row
per query) as ``target_codes``; records add ``bits_from_paired`` (Hamming
distance of the adversarial code to the paired code; the attack raises it)
next to ``bits_flipped`` (distance to the clean code; the attack keeps it low).

The paper's label form (``attack(x, target_codes, labels=y)``)
---------------------------------------------------------------
The objective above is the *instance* form: one paired code, one clean code.
The paper's objective is written over label similarities instead. With
``Theta_ij = <h_i, o_j> / 2`` against other-modality reference codes ``o_j``,
``Phi_ij = <h_i, s_j> / 2`` against same-modality reference codes ``s_j`` and
``S_ij = 1`` when query ``i`` and reference ``j`` share a label (else 0),
CMLA minimises per query

    ``inter_weight * mean_j (S_ij Theta_ij + softplus(-Theta_ij))``
    ``+ intra_weight * mean_j (softplus(Phi_ij) - S_ij Phi_ij)``

The inter-modal term is the cross-modal pairwise likelihood with the
similarities inverted (pushed away from the other modality's codes of the
query's classes, toward the others); the intra-modal term is the plain
likelihood in the query's own modality (kept near the codes of its classes,
away from the others) -- the same network in both terms, as in the paper,
where each modality has its own hash network. The references are the clean
codes of the attacked batch itself, as in the authors' code (the batch's
paired codes for ``o``, its clean codes for ``s``; results then depend on
``batch_size``), or fixed sets given as ``reference=(same_codes,
other_codes, reference_labels)`` -- e.g. the training pairs' codes, which an
attacker with the model has. The ``Theta / 2`` scale is DCMH's likelihood's
(``theta_scale``); ``balanced=True`` gives similar and dissimilar references
equal total weight; the paper's L1 distortion penalty is replaced by the norm
budget. ``benchmarks/results/crossmodal.md`` (table 4) compares both forms.

Examples
--------
>>> import torch
>>> from hashlearn.codes import sign_to_codes
>>> from hashlearn.models import HashModel
>>> _ = torch.manual_seed(0)
>>> tower = HashModel("mlp", 16, {"in_features": 8, "hidden": (16,)})
>>> x, paired = torch.rand(4, 8), sign_to_codes(torch.randn(4, 16).numpy())
>>> result = CMLA(tower, eps=0.1, steps=5).attack(x, paired)
>>> bool((result.x_adv - x).abs().max() <= 0.1 + 1e-6), sorted(result.records)[:2]
(True, ['bits_flipped', 'bits_from_paired'])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hashlearn.attacks.base import AttackResult, HashAttack, _check_float, geometric_slope, pre_activation
from hashlearn.codes import codes_to_pm1, validate_codes


class CMLA(HashAttack):
    """Cross-modal adversarial queries: away from the paired code, close to the clean code.

    Parameters
    ----------
    model : torch.nn.Module
        The tower of the query's modality (e.g. ``two_tower.tower("image")``).
    inter_weight : float, default 1.0
        Weight of the inter-modal term (away from the paired other-modality code).
    intra_weight : float, default 0.5
        Weight of the intra-modal term (close to the query's clean code); 0 gives
        a purely cross-modal targeted-away attack.
    alpha_start, alpha_end : float
        Slope of the relaxed sign at the first and last step.
    reference : (same_codes, other_codes, labels) or None
        Packed clean codes of reference items in the query's own modality and in
        the other one, and the labels of those items (multi-hot ``(N, c)`` or
        integer ``(N,)``); used by the label form (``attack(..., labels=...)``)
        instead of the attacked batch. Both code sets share the one ``labels``.
    theta_scale : float, default 0.5
        ``Theta = theta_scale <h, b>`` in the label form (0.5: DCMH's likelihood; small values keep the
        terms in their linear regime, where they act on class centroids of the reference codes).
    balanced : bool, default False
        Label form: average the mean over a query's similar references and the mean over its dissimilar
        ones (each half the weight), instead of one mean over all references, in which the far more
        numerous dissimilar references dominate.
    eps, norm, steps, step_size, clip, ... : see :class:`~hashlearn.attacks.base.HashAttack`.
    """

    name = "cmla"
    targeted = True  # target_codes are the paired other-modality codes

    def __init__(self, model, *, steps: int = 100, inter_weight: float = 1.0, intra_weight: float = 0.5,
                 alpha_start: float = 1.0, alpha_end: float = 10.0, reference=None, theta_scale: float = 0.5, balanced: bool = False, **kwargs):
        super().__init__(model, steps=steps, **kwargs)
        self.inter_weight = _check_float(inter_weight, "inter_weight", minimum=0.0)
        self.intra_weight = _check_float(intra_weight, "intra_weight", minimum=0.0, strict=False)
        self.alpha_start = _check_float(alpha_start, "alpha_start", minimum=0.0)
        self.alpha_end = _check_float(alpha_end, "alpha_end", minimum=0.0)
        self._clean: torch.Tensor | None = None
        self.reference = None if reference is None else _check_reference(reference)
        self.theta_scale = _check_float(theta_scale, "theta_scale", minimum=0.0)
        if not isinstance(balanced, bool):
            raise ValueError(f"balanced must be True or False, got {balanced!r}.")
        self.balanced = balanced
        self._labels: torch.Tensor | None = None  # the label form's query labels, consumed batch by batch
        self._cursor = 0

    def alpha(self, step: int) -> float:
        """Slope of ``tanh`` at ``step``: geometric from ``alpha_start`` to ``alpha_end``."""
        return geometric_slope(step, self.steps, self.alpha_start, self.alpha_end)

    def outputs(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return torch.tanh(self.alpha(step) * pre_activation(self.model, x))

    def inter_term(self, outputs: torch.Tensor, paired: torch.Tensor) -> torch.Tensor:
        """``(<h, b_p> / m + 1)^2`` per query."""
        return ((outputs * paired).sum(dim=1) / outputs.shape[1] + 1) ** 2

    def intra_term(self, outputs: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """``(1 - <h, b_c> / m)^2`` per query."""
        return (1 - (outputs * clean).sum(dim=1) / outputs.shape[1]) ** 2

    def inter_label_term(self, outputs: torch.Tensor, other: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
        """``mean_j (S_ij Theta_ij + softplus(-Theta_ij))``, ``Theta = theta_scale <h, o>``, per query (label form)."""
        theta = self.theta_scale * (outputs @ other.T)
        return self._reduce(similarity * theta + F.softplus(-theta), similarity)

    def intra_label_term(self, outputs: torch.Tensor, same: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
        """``mean_j (softplus(Phi_ij) - S_ij Phi_ij)``, ``Phi = theta_scale <h, s>``, per query (label form)."""
        phi = self.theta_scale * (outputs @ same.T)
        return self._reduce(F.softplus(phi) - similarity * phi, similarity)

    def _reduce(self, terms: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
        """Mean over references; ``balanced``: the mean over the query's similar references and the mean over
        its dissimilar ones, averaged (each side half the weight, whatever their counts)."""
        if not self.balanced:
            return terms.mean(dim=1)
        positives = similarity.sum(dim=1, keepdim=True)
        negatives = similarity.shape[1] - positives
        weights = similarity / (2 * positives.clamp_min(1)) + (1 - similarity) / (2 * negatives.clamp_min(1))
        return (weights * terms).sum(dim=1)

    def default_objective(self, outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if self._batch_references is not None:  # the paper's label form
            same, other, similarity = self._batch_references
            loss = self.inter_weight * self.inter_label_term(outputs, other, similarity)
            if self.intra_weight:
                loss = loss + self.intra_weight * self.intra_label_term(outputs, same, similarity)
            return loss
        loss = self.inter_weight * self.inter_term(outputs, reference)
        if self.intra_weight:
            loss = loss + self.intra_weight * self.intra_term(outputs, self._clean)
        return loss

    _batch_references: tuple | None = None

    def attack(self, x, target_codes=None, labels=None) -> AttackResult:
        """Perturb ``x`` away from ``target_codes`` (its paired codes); with ``labels`` (one row per query) the
        paper's label form of the objective (see the module docstring)."""
        if labels is None:
            if self.reference is not None:
                raise ValueError("CMLA was given reference codes: pass the queries' labels (attack(x, target_codes, labels=...)).")
            return super().attack(x, target_codes)
        n = len(x)
        labels = _check_labels(labels, "labels")
        if len(labels) != n:
            raise ValueError(f"labels must have one row per query ({n}), got {len(labels)}.")
        if self.reference is not None and labels.ndim != self.reference[2].ndim:
            raise ValueError(f"labels must be of the reference labels' kind ({'multi-hot (n, c)' if self.reference[2].ndim == 2 else 'integer (n,)'}), "
                             f"got shape {tuple(labels.shape)}.")
        if self.reference is not None and labels.ndim == 2 and labels.shape[1] != self.reference[2].shape[1]:
            raise ValueError(f"labels have {labels.shape[1]} classes, the reference labels {self.reference[2].shape[1]}.")
        self._labels, self._cursor = labels, 0
        try:
            return super().attack(x, target_codes)
        finally:
            self._labels, self._cursor, self._batch_references = None, 0, None

    def _perturb(self, x, reference, generator):
        with torch.no_grad():  # the batch's clean codes anchor the intra-modal term
            self._clean = torch.where(self.model(x) > 0, 1.0, -1.0).to(x.dtype)
        if self._labels is not None:  # batches come in order: this batch's labels are the next len(x) rows
            batch_labels = self._labels[self._cursor : self._cursor + len(x)]
            self._cursor += len(x)
            if self.reference is None:  # the authors' form: the batch's own pairs are the references
                same, other, reference_labels = self._clean, reference, batch_labels
            else:
                same_codes, other_codes, reference_labels = self.reference
                n_bits = self._clean.shape[1]
                if same_codes.shape[1] * 8 != n_bits:
                    raise ValueError(f"reference codes have {same_codes.shape[1] * 8} bits, the model makes {n_bits}.")
                same = torch.as_tensor(codes_to_pm1(same_codes, n_bits), dtype=x.dtype, device=x.device)
                other = torch.as_tensor(codes_to_pm1(other_codes, n_bits), dtype=x.dtype, device=x.device)
            similarity = _similarity(batch_labels, reference_labels).to(device=x.device, dtype=x.dtype)
            self._batch_references = (same.to(x.dtype), other.to(x.dtype), similarity)
        try:
            return super()._perturb(x, reference, generator)
        finally:
            self._clean, self._batch_references = None, None

    def _records(self, x, x_adv, clean_sign, adv_outputs, target) -> dict[str, np.ndarray]:
        records = super()._records(x, x_adv, clean_sign, adv_outputs, target)
        records["bits_from_paired"] = records.pop("bits_to_target")
        return records

    def _extra_repr(self) -> list[str]:
        return ["inter_weight", "intra_weight", "alpha_start", "alpha_end"]

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.reference is None:
            return text
        return (f"{text[:-1]}, reference=<{len(self.reference[0])} reference pairs>, "  # not the arrays themselves
                f"theta_scale={self.theta_scale!r}, balanced={self.balanced!r})")


def _check_labels(labels, name: str) -> torch.Tensor:
    array = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if array.ndim not in (1, 2) or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool
                                        or (np.issubdtype(array.dtype, np.floating) and np.isin(array, (0, 1)).all())):
        raise ValueError(f"{name} must be integer class ids (n,) or multi-hot 0/1 rows (n, c), "
                         f"got dtype {array.dtype} and shape {array.shape}.")
    return torch.as_tensor(array.astype(np.float64 if array.ndim == 2 else np.int64))


def _similarity(query_labels: torch.Tensor, reference_labels: torch.Tensor) -> torch.Tensor:
    """``S_ij = 1`` when query ``i`` and reference ``j`` share a label (multi-hot) or have the same class (integer)."""
    if query_labels.ndim == 2:
        return ((query_labels @ reference_labels.T) > 0).double()
    return (query_labels[:, None] == reference_labels[None, :]).double()


def _check_reference(reference):
    if not (isinstance(reference, (tuple, list)) and len(reference) == 3):
        raise ValueError("reference must be a triple (same_codes, other_codes, labels) of packed codes and their labels, "
                         f"got {type(reference).__name__}.")
    same, other, labels = reference
    same = validate_codes(same, name="reference same_codes")
    other = validate_codes(other, name="reference other_codes")
    labels = _check_labels(labels, "reference labels")
    if not (len(same) == len(other) == len(labels)) or same.shape[1] != other.shape[1]:
        raise ValueError(f"reference same_codes {same.shape}, other_codes {other.shape} and labels {tuple(labels.shape)} "
                         "must have one row per reference item and equal code widths.")
    return same, other, labels


__all__ = ["CMLA"]
