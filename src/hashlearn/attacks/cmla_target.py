"""CMLA's target form: choose the adversarial code first, then reach it within the budget.

The instance and label forms of :class:`~hashlearn.attacks.cmla.CMLA` optimise
a relaxed cross-modal objective directly in input space; within a small budget
their gradients flip few bits and do not pick the bits that matter.
This form splits the attack in two stages, per query:

1. **Target code** (code space, no input involved). Starting from the query's
   clean code ``c``, flip bits greedily, each time the bit that most increases

       ``-AP(h; other reference codes) + same_weight * AP(h; same reference codes)``

   where ``AP`` is the average precision of Hamming ranking (ties by ascending
   reference id) with relevance "shares a label with the query". The
   references are fixed sets the attacker holds -- e.g. the clean codes of the
   training pairs in both modalities, made by the attacked model -- never the
   test database. Only bits whose first-order flip cost (:meth:`CMLATarget.flip_costs`)
   is at most ``max_cost`` are candidates, a flipped bit is not flipped back,
   and ``same_cap`` optionally caps the same-modality AP's credit at that
   fraction of the clean code's. The search stops when no flip improves the
   value or after ``max_flips`` flips; the result is the target code ``t``.
2. **Reaching it** (input space, the norm budget). Projected descent on

       ``mean_{b in F} relu(margin - t_b h_b) + intra_weight * mean_{b not in F} relu(margin - t_b h_b)``

   with ``h = tanh(beta * z(x + delta))`` (``z`` the pre-activation, ``beta``
   annealed geometrically from ``beta_start`` to ``beta_end``) and ``F`` the
   bits where ``t`` differs from ``c``: the first mean flips the planned bits,
   the second is CMLA's intra-modal term restricted to the bits the plan
   keeps (they stay at the clean code). Bits past the margin give no gradient,
   so the effort goes to the bits still missing.

   That is ``reach="tanh"``. ``reach="margin"`` (the default) is a plain
   targeted PGD on the pre-activations instead: sign (``linf``) or
   normalised (``l2``) gradient steps on

       ``sum_{b in F} relu(z_margin - t_b z_b) + intra_weight * sum_{b not in F} relu(z_margin - t_b z_b)``

   with the step size cosine-annealed from ``step_size`` (default
   ``eps / 2``) to 0 in each round. A kept bit costs nothing while its
   pre-activation stays ``z_margin`` on its side, so the intra term only acts
   on kept bits about to flip, where the tanh hinge at a small ``beta`` pulls
   on every kept bit (``tanh(0.05 z) < 0.5`` for ``|z| < 11``).

The steps are split into ``rounds`` (10 by default, 4 with the tanh reach): after each, the code the
perturbation actually reached is the new start of stage 1 (bits of the last
plan that did not flip are not planned again) and descent continues from the
current perturbation (the tanh reach's default step size is set per round,
``2.5 eps / steps_per_round``). The attack returns, per query, the input whose reached
code scores best on the stage-1 value against the references among the clean
input and the end of each round (``reach="margin"``: every iterate) -- the
attacker's own check, on its own references, so a query whose plan cannot be
reached is left unperturbed rather than made worse. ``restarts > 1`` repeats
the rounds from random points of the budget ball (the first from ``x`` unless
``random_start``) and keeps the best over all of them.

The query's labels (``attack(x, labels=...)``) define the relevance in stage
1, as in the label form; ``labels=None`` uses pseudo-labels: the union of the
labels of the ``pseudo_k`` same-modality references nearest to the clean
code, so the attacker needs no label of the query at all.

On the openmoji pixel models this form's plans (no budget) would halve
cross-modal mAP while keeping same-modality mAP, but within 8/255 on pixels
and L2 0.5 on bag-of-words it reaches only part of them, with either reach:
see table 5 of ``benchmarks/results/crossmodal.md``.

Examples
--------
>>> import numpy as np, torch
>>> from hashlearn.models import HashModel
>>> _ = torch.manual_seed(0)
>>> tower = HashModel("mlp", 16, {"in_features": 8, "hidden": (16,)})
>>> references = torch.rand(30, 8)
>>> reference = (tower.encode(references), tower.encode(torch.rand(30, 8)), np.arange(30) % 3)
>>> attack = CMLATarget(tower, reference=reference, eps=0.2, steps=10)
>>> x = torch.rand(4, 8)
>>> result = attack.attack(x, labels=[0, 1, 2, 0])
>>> bool((result.x_adv - x).abs().max() <= 0.2 + 1e-6), sorted(result.records)[:3]
(True, ['bits_flipped', 'bits_planned', 'bits_reached'])
"""

from __future__ import annotations

import numpy as np
import torch

from hashlearn.attacks.base import AttackResult, HashAttack, _check_float, _check_int, geometric_slope, pre_activation
from hashlearn.attacks.cmla import _check_labels, _check_reference, _similarity
from hashlearn.codes import codes_to_pm1

#: stage 2's ways of reaching the target code (see :class:`CMLATarget`)
REACHES = ("tanh", "margin")


def ranking_ap(distances: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Average precision of each row of integer ``distances`` ``(r, N)`` against a boolean ``relevant``: one ``(N,)``
    for every row, or one row each ``(r, N)``; ties broken by ascending column (reference id); 0 where nothing is relevant."""
    n = distances.shape[1]
    relevant = np.broadcast_to(np.asarray(relevant, bool), distances.shape)
    total = relevant.sum(axis=1)
    keys = distances.astype(np.int64) * n + np.arange(n)
    hits = np.take_along_axis(relevant, np.argsort(keys, axis=1), axis=1)
    ranks = np.arange(1, n + 1)
    return (np.cumsum(hits, axis=1) / ranks * hits).sum(axis=1) / np.maximum(total, 1)


def target_code_values(codes: np.ndarray, same: np.ndarray, other: np.ndarray, relevant: np.ndarray, same_weight: float,
                       same_caps=None) -> np.ndarray:
    """Stage 1's value ``-AP(code; other) + same_weight * min(AP(code; same), same_cap)`` of each ``{-1, +1}`` row of
    ``codes`` ``(r, n_bits)``; ``relevant`` is one ``(N,)`` for every row or one row each, ``same_caps`` ``None``, one
    cap or one per row."""
    n_bits, codes = codes.shape[1], np.asarray(codes).astype(np.int64)
    same_ap = ranking_ap((n_bits - codes @ same.T) // 2, relevant)
    if same_caps is not None:
        same_ap = np.minimum(same_ap, same_caps)
    return -ranking_ap((n_bits - codes @ other.T) // 2, relevant) + same_weight * same_ap


def target_code_value(code: np.ndarray, same: np.ndarray, other: np.ndarray, relevant: np.ndarray, same_weight: float,
                      same_cap: float | None = None) -> float:
    """:func:`target_code_values` of one ``{-1, +1}`` code."""
    return float(target_code_values(np.asarray(code)[None], same, other, relevant, same_weight, same_cap)[0])


def greedy_target_code(code: np.ndarray, same: np.ndarray, other: np.ndarray, relevant: np.ndarray, same_weight: float,
                       max_flips: int | None = None, frozen: np.ndarray | None = None, costs: np.ndarray | None = None,
                       max_cost: float | None = None, same_cap: float | None = None) -> tuple[np.ndarray, float]:
    """Stage 1 for one query: greedy bit flips of ``code`` (``{-1, +1}``, int) maximising
    :func:`target_code_value` against the reference codes ``same`` / ``other`` ``(N, n_bits)``.

    All single flips are scored at once (flipping bit ``b`` moves every distance by ``code_b * ref_jb``);
    the first best flip is taken (lowest bit on ties), bits in ``frozen`` are never flipped, a flipped bit
    is not flipped back. With ``costs`` ``(n_bits,)`` and ``max_cost``, only bits costing at most ``max_cost``
    are candidates; ``same_cap`` caps the same-modality AP in the value (no credit for raising it above the cap).
    Returns the target code and its value."""
    code = np.asarray(code, dtype=np.int64).copy()
    same, other = np.asarray(same, dtype=np.int64), np.asarray(other, dtype=np.int64)
    n_bits = len(code)
    allowed = np.ones(n_bits, bool) if frozen is None else ~np.asarray(frozen, bool)
    d_same, d_other = (n_bits - same @ code) // 2, (n_bits - other @ code) // 2
    cap = np.inf if same_cap is None else same_cap
    best = float(-ranking_ap(d_other[None], relevant)[0] + same_weight * min(ranking_ap(d_same[None], relevant)[0], cap))
    flips = 0
    while allowed.any() and (max_flips is None or flips < max_flips):
        moved_same = d_same[None] + code[:, None] * same.T  # (n_bits, N): distances after flipping each bit
        moved_other = d_other[None] + code[:, None] * other.T
        values = -ranking_ap(moved_other, relevant) + same_weight * np.minimum(ranking_ap(moved_same, relevant), cap)
        values[~allowed] = -np.inf
        if costs is not None and max_cost is not None:
            values[costs > max_cost] = -np.inf
        bit = int(np.argmax(values))
        if not values[bit] > best + 1e-12:
            break
        best, d_same, d_other = float(values[bit]), moved_same[bit], moved_other[bit]
        code[bit] *= -1
        allowed[bit] = False
        flips += 1
    return code, best


class CMLATarget(HashAttack):
    """Two-stage CMLA: a target code chosen against reference codes, then a targeted perturbation to reach it.

    Parameters
    ----------
    model : torch.nn.Module
        The tower of the query's modality.
    reference : (same_codes, other_codes, labels)
        Packed clean codes of the attacker's reference items in the query's modality and in the other one
        (e.g. the training pairs' codes) and their labels (multi-hot ``(N, c)`` or integer ``(N,)``).
    same_weight : float, default 1.0
        ``lambda`` of stage 1: weight of the same-modality AP kept against the cross-modal AP removed.
    max_flips : int or None, default None
        At most this many bits planned per round (``None``: until no flip helps).
    intra_weight : float, default 0.5
        Weight of the kept bits in stage 2 (CMLA's intra-modal term on the bits the plan keeps).
    rounds : int or None, default None
        Plan-and-reach rounds the steps are split into (see the module docstring); ``None``: 10 with the margin
        reach, 4 with the tanh reach (never more than ``steps``).
    margin : float, default 0.5
        ``reach="tanh"``: a bit counts as reached once ``t_b h_b >= margin``.
    beta_start, beta_end : float, default 0.05 and 1.0
        ``reach="tanh"``: slope of the relaxed sign at the first and last step of each round; small, because the towers'
        pre-activations are large (median ``|z|`` about 5 on the openmoji pixel models: ``tanh(z)`` is flat there).
    max_cost : float or None, default 1.0
        Budget-aware planning: only bits whose first-order flip cost (:meth:`flip_costs`, 1 = the whole budget
        for that bit alone on the linearised tower) is at most ``max_cost`` are planned; ``None`` plans without it.
    same_cap : float or None, default None
        Stage 1 gives no credit for a same-modality AP above ``same_cap`` times the clean code's (e.g. 0.95: keep
        it within 5%, spend the rest on the cross-modal drop); ``None``: no cap.
    pseudo_k : int, default 10
        Nearest same-modality references whose labels make the pseudo-labels when ``attack`` gets no labels.
    reach : {"margin", "tanh"}, default "margin"
        Stage 2's descent (see the module docstring): the margin PGD on ``z`` with ``z_margin``, or the hinge on
        ``tanh(beta z)`` with ``margin``, ``beta_start`` and ``beta_end`` (the first form's). The margin reach was
        chosen on 3 of the 4 model x modality cells of table 5's validation and cut cross-modal mAP more than the
        tanh reach at the same lambda on 3 of 4 (``benchmarks/results/crossmodal.md``).
    z_margin : float, default 0.3
        ``reach="margin"``: a bit counts as reached once ``t_b z_b >= z_margin`` (pre-activation units).
    restarts : int, default 1
        Runs of all rounds, each after the first from a random point of the budget ball; the best is kept.
    eps, norm, steps, step_size, clip, random_start, seed, ... : see :class:`~hashlearn.attacks.base.HashAttack`.
    """

    name = "cmla-target"

    def __init__(self, model, *, reference, steps: int = 100, same_weight: float = 1.0, max_flips: int | None = None,
                 intra_weight: float = 0.5, rounds: int | None = None, margin: float = 0.5, beta_start: float = 0.05,
                 beta_end: float = 1.0, pseudo_k: int = 10, max_cost: float | None = 1.0, same_cap: float | None = None,
                 reach: str = "margin", z_margin: float = 0.3, restarts: int = 1, **kwargs):
        super().__init__(model, steps=steps, **kwargs)
        self.reference = _check_reference(reference)
        self.same_weight = _check_float(same_weight, "same_weight", minimum=0.0, strict=False)
        self.max_flips = None if max_flips is None else _check_int(max_flips, "max_flips")
        self.intra_weight = _check_float(intra_weight, "intra_weight", minimum=0.0, strict=False)
        if reach not in REACHES:
            raise ValueError(f"reach must be one of {REACHES}, got {reach!r}.")
        self.rounds = min(10 if reach == "margin" else 4, self.steps) if rounds is None else _check_int(rounds, "rounds")
        if self.rounds > self.steps:
            raise ValueError(f"rounds must be at most steps ({self.steps}), got {rounds}.")
        self.margin = _check_float(margin, "margin", minimum=0.0, strict=False)
        if self.margin > 1:
            raise ValueError(f"margin must be in [0, 1] (relaxed codes lie in [-1, 1]), got {margin}.")
        self.beta_start = _check_float(beta_start, "beta_start", minimum=0.0)
        self.beta_end = _check_float(beta_end, "beta_end", minimum=0.0)
        self.pseudo_k = _check_int(pseudo_k, "pseudo_k")
        self.max_cost = None if max_cost is None else _check_float(max_cost, "max_cost", minimum=0.0)
        self.same_cap = None if same_cap is None else _check_float(same_cap, "same_cap", minimum=0.0)
        self.reach = reach
        self.z_margin = _check_float(z_margin, "z_margin", minimum=0.0, strict=False)
        self.restarts = _check_int(restarts, "restarts")
        self._caps: np.ndarray | None = None  # absolute same-AP caps of the batch in progress
        self._relevant: np.ndarray | None = None  # (n, N) relevance of the attacked queries to the references
        self._cursor = 0
        self._planned: list[np.ndarray] = []
        self._reached: list[np.ndarray] = []

    # -- stage 1 -------------------------------------------------------------------------------------

    def reference_codes(self, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
        """The references as ``{-1, +1}`` integer matrices ``(same, other)``."""
        same_codes, other_codes, _ = self.reference
        if same_codes.shape[1] * 8 != n_bits:
            raise ValueError(f"reference codes have {same_codes.shape[1] * 8} bits, the model makes {n_bits}.")
        return codes_to_pm1(same_codes, n_bits).astype(np.int64), codes_to_pm1(other_codes, n_bits).astype(np.int64)

    def relevance(self, clean_codes: np.ndarray, labels=None) -> np.ndarray:
        """``(n, N)`` boolean: query ``i`` shares a label with reference ``j``; without ``labels`` the
        query's labels are the union of those of its ``pseudo_k`` nearest same-modality references."""
        reference_labels = self.reference[2]
        if labels is not None:
            return _similarity(labels, reference_labels).numpy() > 0
        same, _ = self.reference_codes(clean_codes.shape[1])
        distances = (clean_codes.shape[1] - clean_codes.astype(np.int64) @ same.T) // 2
        keys = distances * len(same) + np.arange(len(same))
        nearest = np.argsort(keys, axis=1)[:, : self.pseudo_k]
        if reference_labels.ndim == 2:
            pseudo = (reference_labels.numpy()[nearest].sum(axis=1) > 0).astype(np.float64)
            return _similarity(torch.as_tensor(pseudo), reference_labels).numpy() > 0
        votes = reference_labels.numpy()[nearest]
        return np.stack([np.isin(reference_labels.numpy(), row) for row in votes])

    def plan(self, codes: np.ndarray, relevant: np.ndarray, frozen: np.ndarray | None = None,
             costs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Target codes ``(n, n_bits)`` from ``{-1, +1}`` ``codes`` and their stage-1 values (``costs``: ``(n, n_bits)``
        flip costs, used with ``max_cost``)."""
        same, other = self.reference_codes(codes.shape[1])
        targets, values = np.empty_like(codes, dtype=np.int64), np.empty(len(codes))
        for i in range(len(codes)):
            targets[i], values[i] = greedy_target_code(codes[i], same, other, relevant[i], self.same_weight, self.max_flips,
                                                       None if frozen is None else frozen[i], None if costs is None else costs[i],
                                                       self.max_cost, None if self._caps is None else self._caps[i])
        return targets, values

    def flip_costs(self, x: torch.Tensor, delta: torch.Tensor) -> np.ndarray:
        """``(n, n_bits)`` first-order cost of flipping each bit alone from ``x + delta``: ``|z_b|`` over the largest
        change of ``z_b`` toward the other sign that a step within the budget around ``x`` (and the clip range) gives
        to the linearised tower. ``linf``: the exact maximum over the box; ``l2``: ``eps`` times the norm of the gradient
        on the coordinates free to move its way. Above 1: out of reach for the linear model."""
        point = (x + delta).detach().requires_grad_(True)
        z = pre_activation(self.model, point)
        low = -self.eps - delta if self.norm == "linf" else torch.full_like(x, -np.inf)
        high = self.eps - delta if self.norm == "linf" else torch.full_like(x, np.inf)
        if self.clip is not None:
            low, high = torch.maximum(low, self.clip[0] - point.detach()), torch.minimum(high, self.clip[1] - point.detach())
        costs = torch.empty_like(z)
        for bit in range(z.shape[1]):
            (grad,) = torch.autograd.grad(z[:, bit].sum(), point, retain_graph=bit + 1 < z.shape[1])
            toward = -torch.sign(z[:, bit]).detach().view(-1, *([1] * (x.dim() - 1))) * grad  # d(-sign(z) z)/dx
            if self.norm == "linf":
                change = torch.where(toward > 0, toward * high, toward * low).flatten(1).sum(dim=1)
            else:
                free = torch.where(toward > 0, high > 0, low < 0)
                change = self.eps * (toward * free).flatten(1).norm(dim=1)
            costs[:, bit] = z[:, bit].detach().abs() / change.clamp_min(1e-12)
        return costs.detach().cpu().numpy()

    def values(self, codes: np.ndarray, relevant: np.ndarray) -> np.ndarray:
        """Stage-1 value of each ``{-1, +1}`` code (its own row of ``relevant``)."""
        same, other = self.reference_codes(codes.shape[1])
        return target_code_values(codes, same, other, relevant, self.same_weight, self._caps)

    def same_caps(self, clean: np.ndarray, relevant: np.ndarray) -> np.ndarray | None:
        """Absolute caps ``same_cap * AP(clean; same references)`` per query (``None`` without ``same_cap``)."""
        if self.same_cap is None:
            return None
        same, _ = self.reference_codes(clean.shape[1])
        n_bits = clean.shape[1]
        return np.array([self.same_cap * ranking_ap(((n_bits - same @ code) // 2)[None], row)[0]
                         for code, row in zip(clean.astype(np.int64), relevant)])

    # -- stage 2 -------------------------------------------------------------------------------------

    def beta(self, step: int, steps: int) -> float:
        """Slope of ``tanh`` at ``step`` of a round of ``steps``: geometric from ``beta_start`` to ``beta_end``."""
        return geometric_slope(step, steps, self.beta_start, self.beta_end)

    def reach_term(self, outputs: torch.Tensor, target: torch.Tensor, planned: torch.Tensor) -> torch.Tensor:
        """Stage 2's loss per query: hinge on the planned bits plus ``intra_weight`` x hinge on the kept bits."""
        hinge = torch.relu(self.margin - outputs * target)
        flip_count, keep_count = planned.sum(dim=1), (1 - planned).sum(dim=1)
        loss = (hinge * planned).sum(dim=1) / flip_count.clamp_min(1)
        if self.intra_weight:
            loss = loss + self.intra_weight * (hinge * (1 - planned)).sum(dim=1) / keep_count.clamp_min(1)
        return loss

    # -- the attack ----------------------------------------------------------------------------------

    def attack(self, x, target_codes=None, labels=None) -> AttackResult:
        """Perturb ``x``; ``labels`` (one row per query) define stage 1's relevance, ``None`` uses pseudo-labels.
        ``target_codes`` is not used (the attack chooses its targets) and must be ``None``."""
        if target_codes is not None:
            raise ValueError("CMLATarget chooses its own target codes: pass target_codes=None (and labels, or none for pseudo-labels).")
        if labels is not None:
            labels = _check_labels(labels, "labels")
            if len(labels) != len(x):
                raise ValueError(f"labels must have one row per query ({len(x)}), got {len(labels)}.")
            if labels.ndim != self.reference[2].ndim or (labels.ndim == 2 and labels.shape[1] != self.reference[2].shape[1]):
                raise ValueError(f"labels must be of the reference labels' kind and width, got shape {tuple(labels.shape)} "
                                 f"for reference labels {tuple(self.reference[2].shape)}.")
        self._labels, self._cursor, self._planned, self._reached = labels, 0, [], []
        try:
            result = super().attack(x, None)
            result.records["bits_planned"] = np.concatenate(self._planned)
            result.records["bits_reached"] = np.concatenate(self._reached)
            return result
        finally:
            self._labels, self._cursor, self._planned, self._reached = None, 0, [], []

    _labels = None

    def margin_term(self, z: torch.Tensor, target: torch.Tensor, planned: torch.Tensor) -> torch.Tensor:
        """``reach="margin"``'s loss per query on the pre-activations ``z``: ``sum_b relu(z_margin - t_b z_b)`` over the
        planned bits plus ``intra_weight`` x the same sum over the kept bits (a kept bit costs nothing while its
        pre-activation stays ``z_margin`` on its side)."""
        hinge = torch.relu(self.z_margin - z * target)
        return (hinge * planned).sum(dim=1) + self.intra_weight * (hinge * (1 - planned)).sum(dim=1)

    def _reach_tanh(self, x, delta, target, planned, steps, observe):
        """Descent on :meth:`reach_term` (relaxed codes, annealed slope); the perturbation at the last step."""
        step_size = self.step_size if self.step_size is not None else min(self.eps, 2.5 * self.eps / steps)  # per round
        for step in range(steps):
            delta.requires_grad_(True)
            outputs = torch.tanh(self.beta(step, steps) * pre_activation(self.model, x + delta))
            loss = self.reach_term(outputs, target, planned).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = self._clip(x, self._project(delta - step_size * self._step(grad)))
        return delta.detach()

    def _reach_margin(self, x, delta, target, planned, steps, observe):
        """Sign (``linf``) or normalised (``l2``) gradient steps on :meth:`margin_term`, the step size cosine-annealed
        from ``step_size`` (default ``eps / 2``) to 0; ``observe(delta, codes)`` sees the code of every iterate."""
        initial = self.step_size if self.step_size is not None else self.eps / 2
        for step in range(steps):
            delta.requires_grad_(True)
            z = pre_activation(self.model, x + delta)
            if step:
                observe(delta.detach(), np.where(z.detach().cpu().numpy() > 0, 1, -1).astype(np.int64))
            loss = self.margin_term(z, target, planned).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = self._clip(x, self._project(delta - initial * 0.5 * (1 + np.cos(np.pi * step / steps)) * self._step(grad)))
        return delta.detach()

    def _perturb(self, x, reference, generator):
        batch_labels = None if self._labels is None else self._labels[self._cursor : self._cursor + len(x)]
        self._cursor += len(x)
        with torch.no_grad():
            clean = np.where(self.model(x).cpu().numpy() > 0, 1, -1).astype(np.int64)
        relevant = self.relevance(clean, batch_labels)
        self._caps = self.same_caps(clean, relevant)
        best_x, best_values = x.clone(), self.values(clean, relevant)
        best_planned = np.zeros(len(x), np.int64)
        best_reached = np.zeros(len(x), np.int64)
        plan = {}  # the round in progress: its targets and planned bits

        def observe(delta, codes):  # keep, per query, the input whose code scores best on the references so far
            values = self.values(codes, relevant)
            better = values > best_values + 1e-12
            index = torch.as_tensor(np.flatnonzero(better), device=x.device)
            best_x[index] = (x + delta)[index].detach()
            best_values[better] = values[better]
            best_planned[better] = plan["mask"].sum(axis=1)[better]
            best_reached[better] = (plan["mask"] & (codes == plan["targets"])).sum(axis=1)[better]

        reach = self._reach_margin if self.reach == "margin" else self._reach_tanh
        per_round = [self.steps // self.rounds + (r < self.steps % self.rounds) for r in range(self.rounds)]
        for restart in range(self.restarts):
            delta = self._random_start(x, generator) if restart or self.random_start else torch.zeros_like(x)
            with torch.no_grad():
                current = np.where(self.model(x + delta).cpu().numpy() > 0, 1, -1).astype(np.int64) if restart or self.random_start else clean
            frozen = np.zeros_like(clean, dtype=bool)
            for steps in per_round:
                costs = self.flip_costs(x, delta) if self.max_cost is not None else None
                targets, _ = self.plan(current, relevant, frozen, costs)
                plan.update(targets=targets, mask=targets != current)
                target = torch.as_tensor(targets, dtype=x.dtype, device=x.device)
                planned = torch.as_tensor(plan["mask"], dtype=x.dtype, device=x.device)
                delta = reach(x, delta, target, planned, steps, observe)
                with torch.no_grad():
                    reached = np.where(self.model(x + delta).cpu().numpy() > 0, 1, -1).astype(np.int64)
                frozen |= plan["mask"] & (reached != targets)  # planned but not reached: not planned again
                current = reached
                observe(delta, reached)
        self._caps = None
        self._planned.append(best_planned)
        self._reached.append(best_reached)
        return best_x.detach()

    def _extra_repr(self) -> list[str]:
        return ["same_weight", "max_flips", "intra_weight", "rounds", "margin", "beta_start", "beta_end", "pseudo_k", "max_cost", "same_cap",
                "reach", "z_margin", "restarts"]

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, reference=<{len(self.reference[0])} reference pairs>)"


__all__ = ["CMLATarget", "greedy_target_code", "ranking_ap", "target_code_value", "target_code_values"]
