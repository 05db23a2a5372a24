"""hashlearn.serve."""
