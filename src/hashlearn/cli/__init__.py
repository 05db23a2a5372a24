"""hashlearn.cli."""
