"""hashlearn.defenses."""
