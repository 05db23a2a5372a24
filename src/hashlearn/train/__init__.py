"""hashlearn.train."""
