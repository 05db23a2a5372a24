"""WB, the Wasserstein backdoor (Doan et al., NeurIPS 2021): LIRA + latent indistinguishability.

Stage I of :class:`~hashlearn.attacks.backdoor.lira.LIRA` gains a term
``lambda_latent * DSWD(features(T(x_source)), features(x_target_class))`` in
both the victim and the trigger step, so the penultimate features of poisoned
inputs look like clean features of the target class -- the signal that
latent-space defenses (spectral signatures, activation clustering) rely on.

The discriminative sliced Wasserstein distance (DSWD) projects the features on
the rows of the victim's final linear layer -- one direction per class for a
classifier (one per bit for a hash model) -- instead of random directions:
these are the directions the model actually separates classes along.
"""

from __future__ import annotations

import torch

from hashlearn.attacks.backdoor.base import check_positive_float
from hashlearn.attacks.backdoor.lira import LIRA


def _quantiles(sorted_values: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Values of the empirical quantile function at ``(i + 0.5) / n_levels`` (linear interpolation; differentiable)."""
    n = sorted_values.shape[0]
    if n == n_levels:
        return sorted_values
    position = (torch.arange(n_levels, dtype=sorted_values.dtype, device=sorted_values.device) + 0.5) / n_levels * n - 0.5
    position = position.clamp(0, n - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=n - 1)
    weight = (position - low.to(position.dtype)).unsqueeze(1)
    return (1 - weight) * sorted_values[low] + weight * sorted_values[high]


def discriminative_swd(features_a: torch.Tensor, features_b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Mean over ``directions`` of the squared 1-D 2-Wasserstein distance of the projected samples.

    ``features_a (n_a, d)``, ``features_b (n_b, d)``, ``directions (k, d)`` (each
    row normalised to unit length). 1-D Wasserstein distances come from sorting;
    with unequal sample sizes both quantile functions are evaluated at
    ``min(n_a, n_b)`` levels. Zero for identical samples, positive otherwise.

    >>> import torch
    >>> a = torch.tensor([[0.0], [1.0]])
    >>> float(discriminative_swd(a, a + 2.0, torch.ones(1, 1)))
    4.0
    """
    if features_a.dim() != 2 or features_b.dim() != 2 or directions.dim() != 2:
        raise ValueError("features_a, features_b and directions must be 2-D (n, d) tensors.")
    if not (features_a.shape[1] == features_b.shape[1] == directions.shape[1]):
        raise ValueError(
            f"feature widths differ: features_a {features_a.shape[1]}, features_b {features_b.shape[1]}, "
            f"directions {directions.shape[1]}."
        )
    if len(features_a) == 0 or len(features_b) == 0:
        raise ValueError("features_a and features_b need at least one sample each.")
    unit = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    proj_a = torch.sort(features_a @ unit.T, dim=0).values
    proj_b = torch.sort(features_b @ unit.T, dim=0).values
    n_levels = min(len(proj_a), len(proj_b))
    return ((_quantiles(proj_a, n_levels) - _quantiles(proj_b, n_levels)) ** 2).mean()


class WassersteinBackdoor(LIRA):
    """LIRA plus the discriminative sliced Wasserstein latent term (all-to-one targets).

    Parameters
    ----------
    lambda_latent : float
        Weight of the DSWD term in stage I.
    **kwargs
        Everything :class:`~hashlearn.attacks.backdoor.lira.LIRA` takes.
    """

    name = "wb"
    uses_latent_loss = True

    def __init__(self, *, lambda_latent: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if self.mapping.kind != "all-to-one":
            raise ValueError(
                f"WassersteinBackdoor matches poisoned features to one target class: target must be 'all-to-one', got {self.mapping.kind!r}."
            )
        self.lambda_latent = check_positive_float(lambda_latent, "lambda_latent")

    def latent_loss(self, features_poisoned, features_target, directions) -> torch.Tensor:
        return self.lambda_latent * discriminative_swd(features_poisoned, features_target, directions)

    def params(self) -> dict:
        return {**super().params(), "lambda_latent": self.lambda_latent}
