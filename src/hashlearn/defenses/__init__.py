"""hashlearn.defenses."""

from hashlearn.defenses.adversarial_training import AdversarialTraining  # noqa: F401
