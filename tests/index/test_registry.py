"""One registry of index kinds: a kind registered once is built by the factory, saved and
loaded by the file format and listed by the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.errors import CorruptFileError
from hashlearn.index import FlatIndex, index_factory, registry
from hashlearn.index.io import index_class, load_index, save_index


class ReversedFlat(FlatIndex):
    """A plug-in kind: a flat index that takes a (pointless) number from its description."""

    kind = "reversed_flat"

    def __init__(self, n_bits, n_passes=1):
        super().__init__(n_bits)
        self.n_passes = n_passes


@pytest.fixture
def plugin():
    entry = registry.register(
        registry.IndexKind("reversed_flat", ReversedFlat, name="Reversed", number="n_passes", summary="a test kind")
    )
    yield entry
    registry.KINDS.pop("reversed_flat")


def test_a_kind_registered_once_reaches_factory_file_format_and_cli(plugin, tmp_path, rng):
    from hashlearn.cli.index import factory_help

    index = index_factory("Reversed3", 32)
    assert type(index) is ReversedFlat and index.n_passes == 3
    codes = rng.integers(0, 256, size=(50, 4), dtype=np.uint8)
    index.add(codes)
    path = save_index(index, tmp_path / "plugin.hlx")
    loaded = load_index(path)
    assert type(loaded) is ReversedFlat and index_class("reversed_flat") is ReversedFlat
    np.testing.assert_array_equal(loaded.search(codes[:5], 3).ids, index.search(codes[:5], 3).ids)
    assert "Reversed<n_passes> (a test kind)" in factory_help()
    with pytest.raises(ValueError, match="accepted: .*Reversed<n_passes>"):
        index_factory("Nope", 32)


def test_every_builtin_kind_is_registered_with_its_class():
    for kind, entry in registry.KINDS.items():
        assert entry.cls.kind == kind
    assert [spelling.split("<")[0].split("(")[0] for spelling, _, _ in registry.describe()] == [
        "Flat", "MIH", "Table", "TwoStage", "Shard"
    ]  # fmt: skip


def test_registry_refuses_bad_entries():
    with pytest.raises(TypeError, match="IndexKind"):
        registry.register("flat")
    with pytest.raises(TypeError, match="kind must be a non-empty string"):
        registry.IndexKind("", FlatIndex)
    with pytest.raises(ValueError, match="letters only"):
        registry.IndexKind("x", FlatIndex, name="Flat2")
    with pytest.raises(ValueError, match="already taken by index kind 'flat'"):
        registry.register(registry.IndexKind("other_flat", FlatIndex, name="Flat"))
    with pytest.raises(CorruptFileError, match="unknown index kind 'bogus'"):
        registry.get_kind("bogus")
