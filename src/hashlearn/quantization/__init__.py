"""hashlearn.quantization."""
