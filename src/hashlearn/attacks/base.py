"""Base class of adversarial query attacks on Hamming retrieval.

An attack perturbs query inputs ``x`` within a norm budget so that the hash
model maps them to codes far from their clean codes (untargeted) or close to a
target code (targeted). The base class owns the bookkeeping -- validation,
batching, eval mode and its restoration, the projected-descent loop, records --
and a subclass fills in the objective, its reference codes and, if needed, a
per-step schedule.

The objective is pluggable: any callable ``objective(outputs, reference)`` on
continuous outputs ``(B, n_bits)`` and reference codes ``(B, n_bits)`` in
``{-1, +1}`` returning a per-sample loss ``(B,)`` that the attack *minimises*.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from hashlearn._progress import progress
from hashlearn._validation import check_real as _check_float
from hashlearn.codes import codes_to_pm1, validate_codes

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NORMS = ("linf", "l2")


@dataclass
class AttackResult:
    """Adversarial inputs and per-query records.

    ``x_adv`` has the shape and dtype of the attacked ``x`` (a tensor on the
    model's device). ``records`` maps a name to a ``(n,)`` array:
    ``linf``, ``l2`` and ``rmse`` (the perturbation ``x_adv - x`` measured over
    all input dimensions), ``bits_flipped`` (Hamming distance between the clean
    and the adversarial code), and ``bits_to_target`` for targeted attacks.
    ``seconds`` is the wall time of the whole attack.
    """

    x_adv: torch.Tensor
    records: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def seconds_per_query(self) -> float:
        return self.seconds / max(len(self.x_adv), 1)


def inner_product_objective(outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``<outputs, reference> / n_bits`` per sample: minimising it pushes codes away from ``reference``."""
    return (outputs * reference).sum(dim=1) / outputs.shape[1]


def geometric_slope(step: int, steps: int, start: float, end: float) -> float:
    """Slope of ``tanh`` at ``step`` of ``steps``: geometric from ``start`` to ``end`` (``end`` for one step)."""
    if steps == 1:
        return end
    return start * (end / start) ** (step / (steps - 1))


def pre_activation(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's hash outputs *before* ``tanh``.

    A :class:`~hashlearn.models.HashModel` (anything with ``backbone`` and
    ``head.linear``) gives them exactly; for any other module they are recovered
    as ``atanh`` of its outputs clamped to ``[-1 + 1e-6, 1 - 1e-6]`` (exact for a
    tanh head away from saturation, a monotone surrogate otherwise).
    """
    head = getattr(model, "head", None)
    if hasattr(model, "backbone") and isinstance(getattr(head, "linear", None), nn.Module):
        return head.linear(model.backbone(x))
    outputs = model(x)
    return torch.atanh(outputs.clamp(-1 + 1e-6, 1 - 1e-6))


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class _EvalMode:
    """Put every submodule in eval mode; restore each one's own flag on exit (also on errors)."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for module, training in self.modes:
            module.training = training
        return False


class HashAttack:
    """Projected gradient descent in input space on a code-space objective.

    Parameters
    ----------
    model : torch.nn.Module
        A trained hash model mapping inputs to continuous codes in ``[-1, 1]``
        of shape ``(B, n_bits)``.
    eps : float
        Budget: the largest allowed ``||x_adv - x||_inf`` (``norm="linf"``,
        default ``8/255`` for images in ``[0, 1]``) or ``||x_adv - x||_2`` per
        query (``norm="l2"``).
    norm : {"linf", "l2"}
        Norm of the budget; steps follow the gradient's sign (``linf``) or its
        normalised direction (``l2``).
    steps : int
        Number of gradient steps.
    step_size : float or None
        Size of one step; ``None`` uses ``min(eps, 2.5 * eps / steps)``.
    random_start : bool
        Start from a uniform random point of the budget ball instead of ``x``.
    seed : int
        Seed of the random start (results are identical for the same seed).
    clip : (float, float) or None
        Range adversarial inputs are clipped into; ``(0, 1)`` for images,
        ``None`` for feature vectors (embeddings) whose budget is in feature
        space with no range constraint.
    objective : callable or None
        ``objective(outputs, reference) -> (B,)`` loss to minimise; ``None``
        uses the attack's default.
    batch_size : int
        Queries attacked at once (memory bound, results do not depend on it
        unless ``random_start`` is set).

    Examples
    --------
    With the default objective the base class is a plain code-space PGD; a
    custom objective (here: pull toward the all-ones code) plugs in directly.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
    >>> pull = lambda outputs, reference: -outputs.sum(dim=1)
    >>> attack = HashAttack(model, eps=0.1, norm="l2", steps=3, objective=pull)
    >>> result = attack.attack(torch.full((2, 4), 0.5))
    >>> result.x_adv.shape, bool(result.records["l2"].max() <= 0.1 + 1e-6)
    (torch.Size([2, 4]), True)
    """

    #: name used in ``repr``, reports and the CLI
    name = "hash_attack"
    #: whether ``attack`` needs ``target_codes``
    targeted = False

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = False,
        seed: int = 0,
        clip: tuple[float, float] | None = (0.0, 1.0),
        objective: Objective | None = None,
        batch_size: int = 256,
    ):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.eps = _check_float(eps, "eps", minimum=0.0)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
        self.norm = norm
        self.steps = _check_int(steps, "steps")
        if step_size is not None:
            step_size = _check_float(step_size, "step_size", minimum=0.0)
        self.step_size = step_size
        if not isinstance(random_start, bool):
            raise ValueError(f"random_start must be True or False, got {random_start!r}.")
        self.random_start = random_start
        self.seed = _check_int(seed, "seed", minimum=0)
        if clip is not None:
            if not (isinstance(clip, (tuple, list)) and len(clip) == 2):
                raise ValueError(f"clip must be None or a pair (low, high), got {clip!r}.")
            low, high = (_check_float(c, "clip", minimum=None) for c in clip)
            if not low < high:
                raise ValueError(f"clip must satisfy low < high, got {clip!r}.")
            clip = (low, high)
        self.clip = clip
        if objective is not None and not callable(objective):
            raise ValueError(f"objective must be callable(outputs, reference) -> per-sample loss, got {objective!r}.")
        self.objective = objective
        self.batch_size = _check_int(batch_size, "batch_size")

    @classmethod
    def from_options(cls, model: nn.Module, *, database_codes=None, database_labels=None, **options) -> "HashAttack":
        """Build from the options every attack shares (``eps``, ``norm``, ``steps``, ``seed``, ``clip``),
        plus the clean labelled database that targeted attacks take their targets from.

        The one way a workflow or the CLI builds an attack by name; a subclass
        with other needs (a fixed step count, a database) overrides it.
        """
        return cls(model, **options)

    # -- hooks for subclasses ------------------------------------------------

    def default_objective(self, outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Per-sample loss to minimise; pushes codes away from ``reference`` by default."""
        return inner_product_objective(outputs, reference)

    def outputs(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Continuous codes the objective sees at ``step`` (the model's own outputs by default)."""
        return self.model(x)

    def loss(self, outputs: torch.Tensor, reference: torch.Tensor, step: int) -> torch.Tensor:
        objective = self.objective or self.default_objective
        loss = objective(outputs, reference)
        if loss.shape != (outputs.shape[0],):
            raise ValueError(f"objective must return a per-sample loss of shape ({outputs.shape[0]},), got {tuple(loss.shape)}.")
        return loss

    # -- public API -------------------------------------------------------------

    def attack(self, x, target_codes=None) -> AttackResult:
        """Perturb ``x`` ``(n, ...)``; targeted attacks need packed ``target_codes`` ``(n, n_bits // 8)``."""
        started = time.perf_counter()
        with _EvalMode(self.model):
            device = self._device()
            x = self._check_inputs(x, device)
            with torch.no_grad():
                clean_outputs = self._forward_batches(x)
            n_bits = clean_outputs.shape[1]
            clean_sign = torch.where(clean_outputs > 0, 1.0, -1.0)
            target = self._check_targets(target_codes, len(x), n_bits, device)
            reference = target if target is not None else clean_sign
            generator = torch.Generator(device=device).manual_seed(self.seed)
            x_adv = torch.empty_like(x)
            batches = range(0, len(x), self.batch_size)
            for start in progress(batches, desc=f"{self.name} attack", unit="batch", total=len(batches)) if len(batches) > 1 else batches:
                end = start + self.batch_size
                x_adv[start:end] = self._perturb(x[start:end], reference[start:end], generator)
            with torch.no_grad():
                adv_outputs = self._forward_batches(x_adv)
        seconds = time.perf_counter() - started
        return AttackResult(x_adv, self._records(x, x_adv, clean_sign, adv_outputs, target), seconds)

    def __call__(self, x, target_codes=None) -> torch.Tensor:
        return self.attack(x, target_codes).x_adv

    def __repr__(self) -> str:
        params = ["eps", "norm", "steps", "step_size", "random_start", "seed", "clip"] + self._extra_repr()
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in params)
        return f"{type(self).__name__}({args})"

    def _extra_repr(self) -> list[str]:
        return []

    # -- internals ----------------------------------------------------------------

    @property
    def resolved_step_size(self) -> float:
        return self.step_size if self.step_size is not None else min(self.eps, 2.5 * self.eps / self.steps)

    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def _check_inputs(self, x, device) -> torch.Tensor:
        if not torch.is_tensor(x):
            x = np.asarray(x)
            if not np.issubdtype(x.dtype, np.number):
                raise ValueError(f"x must be a numeric array or tensor, got dtype {x.dtype}.")
            x = torch.as_tensor(x, dtype=torch.float32)
        if not x.is_floating_point():
            x = x.float()
        if x.dim() < 2 or len(x) == 0:
            raise ValueError(f"x must be a batch (n, ...) with n >= 1, got shape {tuple(x.shape)}.")
        x = x.detach().to(device)
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values.")
        if self.clip is not None:
            low, high = self.clip
            if x.min() < low or x.max() > high:
                raise ValueError(
                    f"x must lie in the clip range {self.clip}, got values in [{x.min().item():.4g}, {x.max().item():.4g}]; "
                    "rescale the inputs or pass clip=None (feature vectors)."
                )
        return x

    def _check_targets(self, target_codes, n: int, n_bits: int, device) -> torch.Tensor | None:
        if target_codes is None:
            if self.targeted:
                raise ValueError(f"{type(self).__name__} is targeted: pass target_codes (packed uint8, shape ({n}, {n_bits // 8})).")
            return None
        codes = validate_codes(target_codes, n_bits=n_bits, name="target_codes")
        if len(codes) != n:
            raise ValueError(f"target_codes must have one row per query ({n}), got {len(codes)}.")
        return torch.as_tensor(codes_to_pm1(codes, n_bits), device=device)

    def _forward_batches(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return delta.clamp(-self.eps, self.eps)
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        factor = (self.eps / norms).clamp(max=1.0)
        return delta * factor.view(-1, *([1] * (delta.dim() - 1)))

    def _clip(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Delta such that ``x + delta`` is in the clip range (never enlarges ``|delta|``)."""
        if self.clip is None:
            return delta
        return (x + delta).clamp(*self.clip) - x

    def _random_start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.norm == "linf":
            delta = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * self.eps
        else:  # uniform in the L2 ball: random direction, radius eps * u^(1/d)
            direction = torch.randn(x.shape, generator=generator, device=x.device)
            direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
            radius = torch.rand(len(x), generator=generator, device=x.device) ** (1.0 / x[0].numel())
            delta = direction * (self.eps * radius).view(-1, *([1] * (x.dim() - 1)))
        return self._clip(x, self._project(delta))

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
        return grad / norms.view(-1, *([1] * (grad.dim() - 1)))

    def _perturb(self, x: torch.Tensor, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        delta = self._random_start(x, generator) if self.random_start else torch.zeros_like(x)
        step_size = self.resolved_step_size
        for step in range(self.steps):
            delta.requires_grad_(True)
            loss = self.loss(self.outputs(x + delta, step), reference, step).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = self._clip(x, self._project(delta - step_size * self._step(grad)))
        return (x + delta).detach()

    def _records(self, x, x_adv, clean_sign, adv_outputs, target) -> dict[str, np.ndarray]:
        delta = (x_adv - x).flatten(1).double()
        adv_sign = torch.where(adv_outputs > 0, 1.0, -1.0)
        records = {
            "linf": delta.abs().amax(dim=1),
            "l2": delta.norm(dim=1),
            "rmse": delta.pow(2).mean(dim=1).sqrt(),
            "bits_flipped": (adv_sign != clean_sign).sum(dim=1),
        }
        if target is not None:
            records["bits_to_target"] = (adv_sign != target).sum(dim=1)
        return {name: value.detach().cpu().numpy() for name, value in records.items()}
