"""hashlearn.methods."""
