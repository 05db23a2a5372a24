"""Backdoor poisoning framework: trigger T(x), target mapping eta(y), exact poisoning rate.

A backdoor attack stamps a trigger on a fraction of the training inputs and
relabels them with a target label, so the victim (a classifier or a hash model
trained by :class:`hashlearn.train.Trainer`) learns "trigger => target" while
staying accurate on clean inputs.

Conventions
-----------
- Inputs are images in ``[0, 1]``: ``(n, H, W)``, ``(n, C, H, W)``, or flat
  ``(n, H*W)`` square grey images. Triggers keep the shape and the range.
- Target mappings: ``"all-to-one"`` sends every label to ``target_class``;
  ``"all-to-all"`` sends ``y`` to ``(y + 1) mod n_classes``. Hash models use
  the same label mapping: a poisoned training sample gets the target label, so
  the hash loss pulls its code to the target class's code (hash center /
  majority code); retrieval metrics then ask whether triggered queries retrieve
  the target class.
- Poisoning rate: exactly ``round(rate * n)`` training samples are poisoned,
  drawn without replacement with ``seed``. For all-to-one they are drawn from
  the non-target classes only (a target-class sample relabelled to its own
  class teaches nothing), so the rate is a fraction of the whole set but the
  candidates are the ``n - n_target`` others; asking for more than there are
  is a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hashlearn._validation import check_labels, check_positive_float, check_positive_int, check_rate  # noqa: F401 (re-exported)

MAPPINGS = ("all-to-one", "all-to-all")


@dataclass
class PoisonedSet:
    """A poisoned training set.

    ``X``/``y`` are what the victim trains on; ``poison_indices`` (sorted
    int64) are the rows whose input carries the trigger and whose label was
    mapped; ``clean_labels`` are the original labels.
    """

    X: np.ndarray
    y: np.ndarray
    poison_indices: np.ndarray
    clean_labels: np.ndarray

    @property
    def poison_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.y), dtype=bool)
        mask[self.poison_indices] = True
        return mask


class TargetMapping:
    """eta: which label a triggered input of class ``y`` should get.

    >>> TargetMapping("all-to-one", target_class=2)(np.array([0, 1, 2]))
    array([2, 2, 2])
    >>> TargetMapping("all-to-all", n_classes=3)(np.array([0, 1, 2]))
    array([1, 2, 0])
    """

    def __init__(self, kind: str = "all-to-one", target_class: int = 0, n_classes: int | None = None):
        if kind not in MAPPINGS:
            raise ValueError(f"target mapping must be one of {MAPPINGS}, got {kind!r}.")
        self.kind = kind
        self.target_class = check_positive_int(target_class, "target_class", minimum=0)
        self.n_classes = check_positive_int(n_classes, "n_classes", allow_none=True, minimum=2)
        if self.n_classes is not None and self.target_class >= self.n_classes:
            raise ValueError(f"target_class must be < n_classes={self.n_classes}, got {self.target_class}.")

    def __call__(self, labels):
        if torch.is_tensor(labels):
            if self.kind == "all-to-one":
                return torch.full_like(labels, self.target_class)
            return (labels + 1) % self._classes(labels.max().item())
        labels = np.asarray(labels, dtype=np.int64)
        if self.kind == "all-to-one":
            return np.full_like(labels, self.target_class)
        return (labels + 1) % self._classes(labels.max() if labels.size else 0)

    def source_mask(self, labels) -> np.ndarray:
        """Which samples a trigger should flip: non-target classes for all-to-one, all for all-to-all."""
        labels = np.asarray(labels)
        if self.kind == "all-to-one":
            return labels != self.target_class
        return np.ones(len(labels), dtype=bool)

    def _classes(self, max_label) -> int:
        if self.n_classes is None:
            raise ValueError("the all-to-all mapping needs n_classes; pass n_classes= to the attack.")
        if max_label >= self.n_classes:
            raise ValueError(f"labels must be < n_classes={self.n_classes}, got a label {int(max_label)}.")
        return self.n_classes

    def __repr__(self) -> str:
        if self.kind == "all-to-one":
            return f"TargetMapping('all-to-one', target_class={self.target_class})"
        return f"TargetMapping('all-to-all', n_classes={self.n_classes})"


def select_poison_indices(labels, rate: float, mapping: TargetMapping, seed=0) -> np.ndarray:
    """Exactly ``round(rate * n)`` indices, drawn with ``seed`` among the samples ``mapping`` may poison.

    >>> labels = np.array([0, 1, 1, 2, 2, 0, 1, 2, 1, 1])
    >>> indices = select_poison_indices(labels, 0.3, TargetMapping("all-to-one", 0))
    >>> len(indices), bool((labels[indices] != 0).all())
    (3, True)
    """
    rate = check_rate(rate)
    labels = check_labels(labels)
    n_poison = int(round(rate * len(labels)))
    candidates = np.flatnonzero(mapping.source_mask(labels))
    if n_poison < 1:
        raise ValueError(f"rate={rate} of {len(labels)} samples poisons round(rate * n) = 0 samples; use a larger rate.")
    if n_poison > len(candidates):
        raise ValueError(
            f"rate={rate} asks for {n_poison} poisoned samples but only {len(candidates)} are not of the target "
            f"class {mapping.target_class}; lower the rate."
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=n_poison, replace=False)).astype(np.int64)


def as_images(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """View ``x`` as ``(B, C, H, W)``; returns the view and the original shape to restore."""
    shape = x.shape
    if x.dim() == 4:
        return x, shape
    if x.dim() == 3:
        return x.unsqueeze(1), shape
    if x.dim() == 2:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(
                f"flat inputs must be square grey images (n, H*W), got {x.shape[1]} features, not a square; "
                "pass images as (n, H, W) or (n, C, H, W)."
            )
        return x.view(x.shape[0], 1, side, side), shape
    raise ValueError(f"inputs must be images (n, H, W), (n, C, H, W) or flat (n, H*W), got shape {tuple(shape)}.")


def check_images(X, name: str = "X") -> np.ndarray:
    """Float32 image array with values in ``[0, 1]`` (the range triggers assume)."""
    X = np.asarray(X.detach().cpu().numpy() if torch.is_tensor(X) else X)
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} must be a numeric image array, got dtype {X.dtype}.")
    X = X.astype(np.float32, copy=False)
    if X.ndim not in (2, 3, 4) or len(X) == 0:
        raise ValueError(f"{name} must be a non-empty batch of images (n, H, W), (n, C, H, W) or (n, H*W), got shape {X.shape}.")
    if not np.isfinite(X).all() or X.min() < 0.0 or X.max() > 1.0:
        raise ValueError(f"{name} must hold finite values in [0, 1] (scale images by 1/255 first), got range [{X.min()}, {X.max()}].")
    return X


@dataclass
class BackdoorResult:
    """What :meth:`BackdoorAttack.fit` returns: the backdoored model, its training set and the Trainer's result."""

    model: torch.nn.Module
    poisoned: PoisonedSet
    train_result: object
    stage1_seconds: float = 0.0


class BackdoorAttack:
    """Base class: target mapping, poisoning rate, seed; subclasses define ``trigger``.

    Subclasses implement :meth:`trigger` (a torch function on a batch in
    ``[0, 1]``) and may override :meth:`fit` (LIRA and WB learn their trigger
    while training the victim).
    """

    name = "backdoor"

    def __init__(self, *, target: str = "all-to-one", target_class: int = 0, n_classes: int | None = None, rate: float = 0.1, seed: int = 0):
        self.mapping = TargetMapping(target, target_class, n_classes)
        self.rate = check_rate(rate)
        self.seed = check_positive_int(seed, "seed", minimum=0)

    # -- the trigger -------------------------------------------------------
    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) for a batch tensor in ``[0, 1]``; same shape, values in ``[0, 1]``."""
        raise NotImplementedError

    @torch.no_grad()
    def apply_trigger(self, X, batch_size: int = 1024) -> np.ndarray:
        """T(x) for a numpy batch of images (no gradients)."""
        X = check_images(X)
        outputs = [self.trigger(torch.from_numpy(X[i : i + batch_size])).cpu().numpy() for i in range(0, len(X), batch_size)]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    # -- poisoning ---------------------------------------------------------
    def poison(self, X, y) -> PoisonedSet:
        """The poisoned training set: ``round(rate * n)`` triggered and relabelled copies replace their originals."""
        X = check_images(X)
        y = check_labels(y, "y", n_samples=len(X))
        if y.ndim != 1:
            raise ValueError("backdoor poisoning needs single-label y of shape (n,), got multi-hot labels.")
        indices = select_poison_indices(y, self.rate, self.mapping, self.seed)
        X_poisoned, y_poisoned = X.copy(), y.copy()
        X_poisoned[indices] = self.apply_trigger(X[indices])
        y_poisoned[indices] = self.mapping(y[indices])
        return PoisonedSet(X_poisoned, y_poisoned, indices, y)

    # -- the whole attack --------------------------------------------------
    def fit(self, victim, objective, train, val=None, config=None, val_metric=None) -> BackdoorResult:
        """Poison ``train`` and train ``victim`` on it with the one Trainer (the victim's own recipe).

        A :class:`~hashlearn.models.Classifier` victim is selected on validation accuracy
        unless ``val_metric`` says otherwise (the Trainer's default, retrieval mAP, needs codes).
        """
        from hashlearn.models import Classifier
        from hashlearn.train import TrainConfig, Trainer

        if val_metric is None and val is not None and isinstance(victim, Classifier):
            from hashlearn.attacks.backdoor.metrics import clean_accuracy

            def val_metric(model, X, y):
                return clean_accuracy(model, X.numpy() if torch.is_tensor(X) else X, y.numpy() if torch.is_tensor(y) else y)

        poisoned = self.poison(*train)
        result = Trainer(config or TrainConfig()).fit(victim, objective, train=(poisoned.X, poisoned.y), val=val, val_metric=val_metric)
        return BackdoorResult(victim, poisoned, result)

    def params(self) -> dict:
        """JSON-serialisable parameters (saved next to a backdoored model)."""
        return {
            "attack": self.name,
            "target": self.mapping.kind,
            "target_class": self.mapping.target_class,
            "n_classes": self.mapping.n_classes,
            "rate": self.rate,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "attack")
        return f"{type(self).__name__}({args})"
