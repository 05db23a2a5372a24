"""FGSM on the code-space objective (Goodfellow et al. 2015, applied to hash codes)."""

from __future__ import annotations

from hashlearn.attacks.base import HashAttack


class FGSM(HashAttack):
    """One step of size ``eps`` along the sign (``linf``) or direction (``l2``) of the gradient.

    I. Goodfellow, J. Shlens, C. Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015 -- on the code-space objective
    ``<f(x + delta), b> / m`` with ``b`` the clean code (or, with
    ``target_codes``, any reference the objective pushes away from).
    ``x`` is ``(n, ...)``; there is no ``steps`` parameter (always 1).

    Examples
    --------
    >>> import torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
    >>> x = torch.rand(3, 6)
    >>> delta = FGSM(model, eps=0.03).attack(x).x_adv - x
    >>> bool(delta.abs().max() <= 0.03 + 1e-6)
    True
    """

    name = "fgsm"

    def __init__(self, model, **kwargs):
        if kwargs.get("steps", 1) != 1:
            raise ValueError(f"steps must be 1 for FGSM (a single step), got {kwargs['steps']!r}; use PGD for more.")
        kwargs.pop("steps", None)
        super().__init__(model, steps=1, **kwargs)

    @classmethod
    def from_options(cls, model, *, database_codes=None, database_labels=None, steps=None, **options) -> "FGSM":
        """Like :meth:`HashAttack.from_options`; ``steps`` is ignored (FGSM takes one step)."""
        return cls(model, **options)
