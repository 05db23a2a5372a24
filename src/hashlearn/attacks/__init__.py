"""Adversarial query attacks on Hamming retrieval.

Untargeted attacks push a query's code away from its clean code (HAG, PGD,
FGSM); targeted attacks pull it toward a code of a chosen class (DHTA, P2P,
prototype; ProS-GAN: a generator trained once, then one forward pass per query).
All share :class:`HashAttack`; :data:`ATTACKS` maps names to classes.
:class:`ReconstructionAttack` rebuilds inputs from released features or codes (privacy).
Backdoor poisoning lives in :mod:`hashlearn.attacks.backdoor`.
"""

from hashlearn.attacks import backdoor  # noqa: F401
from hashlearn.attacks.base import AttackResult, HashAttack, inner_product_objective, pre_activation
from hashlearn.attacks.cmla import CMLA
from hashlearn.attacks.cmla_target import CMLATarget
from hashlearn.attacks.dhta import DHTA, P2P, TargetedHashAttack, target_objective
from hashlearn.attacks.fgsm import FGSM
from hashlearn.attacks.hag import HAG
from hashlearn.attacks.pgd import PGD
from hashlearn.attacks.prosgan import ProSGAN
from hashlearn.attacks.prototype import PrototypeAttack
from hashlearn.attacks.reconstruction import ReconstructionAttack

#: attack name -> class (one line per attack)
ATTACKS = {
    "hag": HAG,
    "pgd": PGD,
    "fgsm": FGSM,
    "dhta": DHTA,
    "p2p": P2P,
    "prototype": PrototypeAttack,
    "prosgan": ProSGAN,  # generative: trained on the training split first (from_options(train_inputs=...))
    "cmla": CMLA,  # cross-modal: target_codes are the paired other-modality codes
}

__all__ = [
    "ATTACKS",
    "AttackResult",
    "HashAttack",
    "TargetedHashAttack",
    "CMLA",
    "CMLATarget",  # cross-modal, two stages (target code, then reach it); not in ATTACKS: --attack cmla --cmla-form target
    "HAG",
    "PGD",
    "FGSM",
    "DHTA",
    "P2P",
    "PrototypeAttack",
    "ProSGAN",
    "ReconstructionAttack",  # not a query attack (not in ATTACKS): a decoder from released representations to inputs
    "inner_product_objective",
    "target_objective",
    "pre_activation",
]
