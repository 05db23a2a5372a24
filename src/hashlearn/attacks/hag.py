"""HAG: the untargeted Hamming-space attack of Yang, Liu, Deng and Tao (2018)."""

from __future__ import annotations

import torch

from hashlearn.attacks.base import HashAttack, _check_float, geometric_slope, pre_activation


class HAG(HashAttack):
    """Push a query's code away from its clean code, bit by bit.

    E. Yang, T. Liu, C. Deng, D. Tao, "Adversarial Examples for Hamming Space
    Search", IEEE Transactions on Cybernetics, 2018. With ``b`` the clean code
    in ``{-1, +1}^m`` and ``h = tanh(alpha * z(x + delta))`` the relaxed code
    computed from the model's pre-activation ``z`` (see
    :func:`~hashlearn.attacks.base.pre_activation`), HAG minimises

        ``(<mask * h, b> / m + 1) ** 2``

    where ``mask_j = 0`` for bits already flipped beyond the margin
    ``h_j * b_j < -margin`` (they need no more effort, so the budget goes to the
    bits still left) and ``alpha`` grows geometrically from ``alpha_start`` to
    ``alpha_end`` over the steps, so ``tanh(alpha z)`` tends to ``sign(z)``.

    Norm: ``linf`` (sign steps) or ``l2`` (normalised steps). Input ``x`` is
    ``(n, ...)`` in the clip range, output ``AttackResult.x_adv`` has the same
    shape.

    Examples
    --------
    >>> import torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 16, {"in_features": 8, "hidden": (16,)})
    >>> x = torch.rand(4, 8)
    >>> result = HAG(model, eps=0.1, steps=5).attack(x)
    >>> bool((result.x_adv - x).abs().max() <= 0.1 + 1e-6), result.records["bits_flipped"].shape
    (True, (4,))
    """

    name = "hag"

    def __init__(self, model, *, steps: int = 100, alpha_start: float = 1.0, alpha_end: float = 10.0, margin: float = 0.5, **kwargs):
        super().__init__(model, steps=steps, **kwargs)
        self.alpha_start = _check_float(alpha_start, "alpha_start", minimum=0.0)
        self.alpha_end = _check_float(alpha_end, "alpha_end", minimum=0.0)
        self.margin = _check_float(margin, "margin", minimum=0.0, strict=False)
        if self.margin > 1:
            raise ValueError(f"margin must be in [0, 1] (relaxed codes lie in [-1, 1]), got {margin}.")

    def alpha(self, step: int) -> float:
        """Slope of ``tanh`` at ``step``: geometric from ``alpha_start`` to ``alpha_end``."""
        return geometric_slope(step, self.steps, self.alpha_start, self.alpha_end)

    def outputs(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return torch.tanh(self.alpha(step) * pre_activation(self.model, x))

    def default_objective(self, outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        agreement = outputs * reference
        mask = (agreement.detach() >= -self.margin).to(outputs.dtype)
        return ((mask * agreement).sum(dim=1) / outputs.shape[1] + 1) ** 2

    def _extra_repr(self) -> list[str]:
        return ["alpha_start", "alpha_end", "margin"]
