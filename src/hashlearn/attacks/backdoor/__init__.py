"""Backdoor poisoning of classifiers and hash models.

>>> sorted(ATTACKS)
['badnets', 'blended', 'lira', 'wanet', 'wb']
"""

from hashlearn.attacks.backdoor.badnets import BadNets
from hashlearn.attacks.backdoor.base import BackdoorAttack, BackdoorResult, PoisonedSet, TargetMapping, select_poison_indices
from hashlearn.attacks.backdoor.blended import Blended
from hashlearn.attacks.backdoor.lira import LIRA, TriggerGenerator
from hashlearn.attacks.backdoor.wanet import WaNet, WarpedPoisonedSet
from hashlearn.attacks.backdoor.wb import WassersteinBackdoor, discriminative_swd

#: attack name -> class; ``make_attack`` builds one by name
ATTACKS = {"badnets": BadNets, "blended": Blended, "lira": LIRA, "wanet": WaNet, "wb": WassersteinBackdoor}


def make_attack(name: str, **kwargs) -> BackdoorAttack:
    """Build a registered backdoor attack by name (``ValueError`` for an unknown one)."""
    if name not in ATTACKS:
        raise ValueError(f"attack must be one of {sorted(ATTACKS)}, got {name!r}.")
    return ATTACKS[name](**kwargs)


__all__ = [
    "ATTACKS", "BackdoorAttack", "BackdoorResult", "BadNets", "Blended", "LIRA", "PoisonedSet", "TargetMapping",
    "TriggerGenerator", "WaNet", "WarpedPoisonedSet", "WassersteinBackdoor", "discriminative_swd", "make_attack", "select_poison_indices",
]
