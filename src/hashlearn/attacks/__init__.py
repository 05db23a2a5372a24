"""hashlearn.attacks."""
from hashlearn.attacks import backdoor  # noqa: F401
