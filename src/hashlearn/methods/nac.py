"""Neural activation codes: which units of a frozen network are active, as a binary code.

"Neural networks behave as hash encoders" (He, Wang, Xu, 2021): the on/off
pattern of a ReLU network's units already separates the inputs, with no
training. Here the inputs ``X`` are the activations of one layer of a frozen
backbone -- e.g. cached EfficientNet-Lite0 features (its pooled head
activations) or :func:`layer_activations` of any ``torch.nn.Module`` -- and
``fit`` only chooses which ``n_bits`` units to read and where a unit counts as
"on":

* ``threshold="zero"``: on means ``> 0``, the literal ReLU activation pattern
  (for pre-activations, or sparse post-ReLU layers);
* ``threshold="median"``: on means above the unit's median over the fit set,
  so every bit is balanced (for dense layers such as pooled features, where
  almost every unit is positive).

Units are taken in order of decreasing variance, skipping a unit whose bits
agree or disagree with an already chosen bit on more than ``max_agreement`` of
the fit items (near-duplicate bits add no information); if too few are left,
the skipped units fill up the code in variance order.

>>> import numpy as np
>>> X = np.maximum(np.random.default_rng(0).normal(size=(100, 64)), 0)   # ReLU activations
>>> nac = NeuralActivationCodes(n_bits=16, threshold="zero").fit(X)
>>> nac.encode(X).shape, len(nac.units_)
((100, 2), 16)
"""

from __future__ import annotations

import numpy as np

from hashlearn.methods.base import BaseHasher

THRESHOLDS = ("zero", "median")


def layer_activations(module, X, layer: str, batch_size: int = 512) -> np.ndarray:
    """Activations ``(n, units)`` that the submodule named ``layer`` of a frozen ``module`` outputs on ``X``.

    ``layer`` is a name from ``module.named_modules()`` (e.g. ``"backbone.net.1"``
    for the ReLU of an MLP backbone). Runs in eval mode without gradients; the
    module's mode is restored.
    """
    import torch

    modules = dict(module.named_modules())
    if layer not in modules:
        raise ValueError(f"layer {layer!r} is not a submodule of {type(module).__name__}; expected one of {sorted(name for name in modules if name)}.")
    captured: list[np.ndarray] = []
    handle = modules[layer].register_forward_hook(lambda _m, _inputs, output: captured.append(output.detach().flatten(1).cpu().numpy()))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            tensor = torch.as_tensor(np.asarray(X, dtype=np.float32))
            for start in range(0, len(tensor), batch_size):
                module(tensor[start : start + batch_size])
    finally:
        handle.remove()
        module.train(was_training)
    return np.concatenate(captured).astype(np.float32) if captured else np.zeros((0, 0), dtype=np.float32)


class NeuralActivationCodes(BaseHasher):
    """Training-free codes: the on/off pattern of ``n_bits`` units of a frozen layer's activations.

    Parameters
    ----------
    n_bits : int, default 32
        At most the number of units (columns of ``X``).
    threshold : {"median", "zero"}, default "median"
    max_agreement : float in (0.5, 1], default 0.9
        A unit whose bits equal (or are the negation of) a chosen bit's on more than this share of items is skipped.
    random_state : unused (the method is deterministic); kept for the common signature.

    Fitted attributes: ``units_`` (column indices), ``thresholds_`` (per chosen unit).
    """

    def __init__(self, n_bits: int = 32, threshold: str = "median", max_agreement: float = 0.9, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.threshold = threshold
        self.max_agreement = max_agreement

    def _check_n_bits_for_features(self, n_bits, n_features):
        if n_bits > n_features:
            raise ValueError(f"NAC reads one unit per bit: n_bits must be <= the number of units (n_features), got n_bits={n_bits} for {n_features}.")

    def _fit(self, X, rng):
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {self.threshold!r}.")
        if isinstance(self.max_agreement, bool) or not isinstance(self.max_agreement, (int, float)) or not 0.5 < self.max_agreement <= 1:
            raise ValueError(f"max_agreement must be a number in (0.5, 1], got {self.max_agreement!r}.")
        thresholds = np.median(X, axis=0) if self.threshold == "median" else np.zeros(X.shape[1], dtype=np.float32)
        bits = X > thresholds
        order = np.argsort(-X.var(axis=0), kind="stable")
        chosen, skipped = [], []
        signs = np.where(bits, 1.0, -1.0).astype(np.float32)
        for unit in order:
            if len(chosen) == self.n_bits:
                break
            column = signs[:, unit]
            if column.min() == column.max():  # a unit that is always on (or off) carries no bit
                skipped.append(unit)
                continue
            if chosen:
                agreement = np.abs(signs[:, chosen].T @ column) / len(column)  # |2 * share equal - 1|
                if (agreement > 2 * self.max_agreement - 1).any():
                    skipped.append(unit)
                    continue
            chosen.append(unit)
        chosen += skipped[: self.n_bits - len(chosen)]
        self.units_ = np.asarray(chosen, dtype=np.int64)
        self.thresholds_ = thresholds[self.units_].astype(np.float32)

    def _project(self, X):
        return X[:, self.units_] - self.thresholds_
