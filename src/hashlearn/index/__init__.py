"""hashlearn.index."""
