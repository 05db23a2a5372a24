"""Typed errors of hashlearn.

Each subclasses the builtin a caller would expect (``ValueError``,
``ImportError``), so ``except ValueError`` keeps working.
"""


class MissingDependencyError(ImportError):
    """An optional package is needed; the message names it and how to install it."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        self.package = package
        hint = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed. Install it with: {hint}")


class DataLeakageError(ValueError):
    """A split puts the same item in two parts that must stay disjoint."""


class CorruptFileError(ValueError):
    """A file is truncated, tampered with, or of an unsupported format version."""


class NotFittedError(ValueError, AttributeError):
    """An estimator or index was used before ``fit``."""
