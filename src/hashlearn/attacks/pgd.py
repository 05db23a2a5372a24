"""PGD on the code-space objective (Madry et al. 2018, applied to hash codes)."""

from __future__ import annotations

from hashlearn.attacks.base import HashAttack


class PGD(HashAttack):
    """Projected gradient descent from a random start on ``<f(x + delta), b> / m``.

    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep
    Learning Models Resistant to Adversarial Attacks", ICLR 2018 -- with the
    classification loss replaced by the inner product between the model's
    continuous codes ``f(x + delta)`` (``(n, n_bits)`` in ``[-1, 1]``) and the
    clean codes ``b``: minimising it maximises the expected Hamming distance.
    Unlike :class:`~hashlearn.attacks.hag.HAG` it works on the model's own
    ``tanh`` outputs, with no mask and no annealing.

    Norm ``linf`` (default, ``eps=8/255``) or ``l2``; ``x`` is ``(n, ...)``.

    Examples
    --------
    >>> import torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
    >>> attack = PGD(model, eps=0.05, steps=3, seed=1)
    >>> attack
    PGD(eps=0.05, norm='linf', steps=3, step_size=None, random_start=True, seed=1, clip=(0.0, 1.0))
    >>> attack.attack(torch.rand(2, 6)).x_adv.shape
    torch.Size([2, 6])
    """

    name = "pgd"

    def __init__(self, model, *, steps: int = 100, random_start: bool = True, **kwargs):
        super().__init__(model, steps=steps, random_start=random_start, **kwargs)
