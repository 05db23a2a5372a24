"""index_factory strings build the right (working) indexes; unknown strings are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.codes import reference_search
from hashlearn.index.factory import index_factory
from hashlearn.index.two_stage import TwoStageIndex


@pytest.mark.parametrize(
    "description, kind",
    [("Flat", "flat"), ("MIH", "mih"), ("MIH4", "mih"), ("TwoStage(MIH,Flat)", "two_stage"),
     (" TwoStage16( Flat , Flat ) ", "two_stage"), ("TwoStage16(Table,Flat)", "two_stage")],
)
def test_builds_working_indexes(description, kind, make_codes):
    codes, queries = make_codes(300, 64, seed=61, clustered=True), make_codes(10, 64, seed=62, clustered=True)
    index = index_factory(description, 64)
    assert type(index).kind == kind and index.n_bits == 64 and index.ntotal == 0
    index.add(codes)
    got = index.search(queries, 5)
    want = reference_search(queries, codes, 5)
    if kind in ("flat", "mih"):  # exact indexes
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.distances, want.distances)
    else:  # approximate: the distances reported are the true ones
        full = np.array([[np.unpackbits(q ^ codes[i]).sum() if i >= 0 else -1 for i in row] for q, row in zip(queries, got.ids)])
        assert ((full == got.distances) | (got.ids == -1)).all()


def test_mih_substrings_and_two_stage_parameters():
    assert index_factory("MIH4", 64).n_tables == 4
    assert type(index_factory("Table", 32)).kind == "table"
    with pytest.raises(ValueError, match="at most 32 bits"):
        index_factory("Table", 64)
    two = index_factory("TwoStage(MIH,Flat)", 128, n_candidates=33)
    assert isinstance(two, TwoStageIndex) and two.n_first_bits == 64 and two.n_candidates == 33
    assert type(two.first_stage).kind == "mih" and two.rerank == "hamming"
    assert index_factory("TwoStage(Flat,Cosine)", 24).n_first_bits == 16  # half of 24 rounded up to bytes
    assert index_factory("TwoStage8(Table,L2)", 64).first_stage.n_bits == 8


def test_shard_description(make_codes):
    pytest.importorskip("distributed")
    codes, queries = make_codes(200, 32, seed=63), make_codes(5, 32, seed=64)
    with index_factory("Shard3(Flat)", 32) as index:
        assert type(index).kind == "sharded" and index.n_shards == 3
        index.add(codes)
        np.testing.assert_array_equal(index.search(queries, 4).ids, reference_search(queries, codes, 4).ids)


@pytest.mark.parametrize(
    "description, message",
    [
        ("Bogus", "unknown index description 'Bogus'; accepted: Flat, MIH"),
        ("flat", "unknown index description 'flat'"),
        ("Flat4", "'Flat' takes no number"),
        ("TwoStage(MIH)", "TwoStage needs"),
        ("TwoStage(MIH,Dot)", "TwoStage needs"),
        ("TwoStage(Nope,Flat)", "unknown index description 'Nope' \\(in 'TwoStage\\(Nope,Flat\\)'\\)"),
        ("Shard(Flat)", "Shard needs a shard count"),
        ("Shard2(Shard2(Flat))", "cannot themselves be sharded"),
        ("Shard2(Nope)", "unknown index description 'Nope'"),
        ("TwoStage12(Flat,Flat)", "multiple of 8"),
        ("", "unknown index description ''"),
    ],
)
def test_rejects_unknown_descriptions(description, message):
    with pytest.raises(ValueError, match=message):
        index_factory(description, 64)


def test_argument_types():
    with pytest.raises(TypeError, match="description must be a string"):
        index_factory(None, 64)
    with pytest.raises(ValueError, match="multiple of 8"):
        index_factory("Flat", 12)
