"""Defenses: adversarial training against adversarial queries, poison detection against backdoors."""

from hashlearn.defenses.adversarial_training import AdversarialTraining
from hashlearn.defenses.detection import ActivationClustering, SpectralSignature, detection_rates, latent_features

__all__ = ["AdversarialTraining", "ActivationClustering", "SpectralSignature", "detection_rates", "latent_features"]
