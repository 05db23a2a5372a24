"""hashlearn.losses."""
