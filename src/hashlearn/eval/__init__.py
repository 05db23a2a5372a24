"""hashlearn.eval."""
