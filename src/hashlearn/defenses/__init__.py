"""hashlearn.defenses."""
from hashlearn.defenses.detection import ActivationClustering, SpectralSignature, detection_rates, latent_features  # noqa: F401
