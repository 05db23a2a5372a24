"""hashlearn.attacks."""
