"""Class-incremental protocols: stage splits grow the database, train on new classes only, and are leakage-checked."""

import dataclasses

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset
from hashlearn.data.incremental import (INCREMENTAL_PROTOCOLS, IncrementalProtocol, Stage, check_stages, get_incremental_protocol,
                                        item_stages, make_stage_split, make_stage_splits)
from hashlearn.errors import DataLeakageError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_stages_grow_the_database_and_train_on_new_classes_only(digits):
    splits = make_stage_splits(digits, "class-incremental", seed=3)
    protocol = get_incremental_protocol("digits", "class-incremental")
    seen = set()
    for number, (split, stage) in enumerate(zip(splits, protocol.stages), start=1):
        seen |= set(stage.classes)
        assert set(np.unique(digits.labels[split.train])) == set(stage.classes)
        assert set(np.unique(digits.labels[split.validation])) == set(stage.classes)
        assert set(np.unique(digits.labels[split.database])) == seen == set(np.unique(digits.labels[split.query]))
        assert len(split.query) == 10 * len(seen) and len(split.train) == 50 * len(stage.classes)
        if number > 1:  # the old database is kept exactly; only new-class items are added
            previous = splits[number - 2].database
            assert np.isin(previous, split.database).all()
            assert set(np.unique(digits.labels[np.setdiff1d(split.database, previous)])) == set(stage.classes)
        assert split.meta["incremental"]["stage"] == number
    assert len(splits[-1].database) + len(splits[-1].query) == len(digits)  # every item arrives in some stage


def test_seeded_and_one_stage_equals_its_place_in_the_sequence(digits):
    a, b = make_stage_splits(digits, "class-incremental", seed=1), make_stage_splits(digits, "class-incremental", seed=1)
    assert all(np.array_equal(x.database, y.database) and np.array_equal(x.train, y.train) for x, y in zip(a, b))
    assert not np.array_equal(a[0].train, make_stage_splits(digits, "class-incremental", seed=2)[0].train)
    assert np.array_equal(make_stage_split(digits, "class-incremental", "5-7", seed=1).train, a[1].train)
    assert np.array_equal(make_stage_split(digits, "class-incremental", 3, seed=1).query, a[2].query)


def test_leaks_are_refused(digits):
    protocol = get_incremental_protocol("digits", "class-incremental")
    splits = make_stage_splits(digits, protocol, seed=0)
    old_item = splits[0].train[:1]
    bad = [splits[0], dataclasses.replace(splits[1], train=np.sort(np.concatenate([splits[1].train, old_item])))]
    with pytest.raises(DataLeakageError, match="not items of that stage"):
        check_stages(bad, digits.labels, protocol)
    shrunk = dataclasses.replace(splits[1], database=splits[1].database[1:], train=splits[1].train[splits[1].train != splits[1].database[0]])
    with pytest.raises(DataLeakageError, match="dropped items"):
        check_stages([splits[0], shrunk], digits.labels, protocol)
    query = splits[1].query[:1]
    later = dataclasses.replace(splits[2], query=np.setdiff1d(splits[2].query, query), database=np.sort(np.concatenate([splits[2].database, query])))
    with pytest.raises(DataLeakageError):
        check_stages([splits[0], splits[1], later], digits.labels, protocol)


def test_multi_label_items_arrive_with_their_latest_label():
    protocol = IncrementalProtocol("x", (Stage("a", (0, 1)), Stage("b", (2,))), 1, 1, 1)
    labels = np.array([[1, 0, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=np.uint8)
    assert item_stages(labels, protocol).tolist() == [1, 2, 2, 0, 0]  # label 3 is in no stage: that item never arrives


def test_bad_names_raise_typed_errors(digits):
    with pytest.raises(ValueError, match="no incremental protocol"):
        get_incremental_protocol("yeast", "class-incremental")
    with pytest.raises(ValueError, match="expected one of"):
        get_incremental_protocol("digits", "topics")
    protocol = get_incremental_protocol("digits", "class-incremental")
    with pytest.raises(ValueError, match="1-3"):
        protocol.stage_number(4)
    with pytest.raises(ValueError, match="stages are"):
        protocol.stage_number("9-10")


def test_registered_protocols_name_real_classes():
    assert {"fashion-mnist", "digits", "20newsgroups"} <= set(INCREMENTAL_PROTOCOLS)
    for protocols in INCREMENTAL_PROTOCOLS.values():
        for protocol in protocols.values():
            classes = [c for stage in protocol.stages for c in stage.classes]
            assert len(classes) == len(set(classes))


# --- paired data: openmoji by emoji group ------------------------------------------------------------
def _toy_pairs():
    """12 image-text pairs, 2 groups each with 2 subgroups (columns: g0, g1, s0a, s0b, s1a, s1b); pairs 0 and 1 share an image."""
    from hashlearn.data.paired import PairedDataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 3, 8, 8), dtype=np.uint8)
    images[1] = images[0]
    labels = np.zeros((12, 6), dtype=np.uint8)
    for i in range(12):
        group, sub = i % 2, (i // 2) % 2
        labels[i, group] = labels[i, 2 + 2 * group + sub] = 1
    return PairedDataset("toy", images, labels, texts=[f"pair number {i}" for i in range(12)],
                         meta={"classes": ["g0", "g1", "s0a", "s0b", "s1a", "s1b"]})


def test_named_stages_own_their_groups_subgroups():
    protocol = IncrementalProtocol("by-group", (Stage("first", groups=("g0",)), Stage("second", groups=("g1",))), 1, 2, 1)
    resolved = protocol.for_dataset(_toy_pairs())
    assert [stage.classes for stage in resolved.stages] == [(0, 2, 3), (1, 4, 5)]
    with pytest.raises(ValueError, match="does not have"):
        IncrementalProtocol("bad", (Stage("x", groups=("g9",)),), 1, 1, 1).for_dataset(_toy_pairs())


def test_paired_stage_splits_check_contents_over_pairs():
    dataset = _toy_pairs()
    protocol = IncrementalProtocol("by-group", (Stage("first", groups=("g0",)), Stage("second", groups=("g1",))), 1, 2, 1)
    splits = make_stage_splits(dataset, protocol, seed=0)
    assert not np.isin([0, 1], np.concatenate([s.query for s in splits])).any()  # a pair sharing its image never queries
    assert all(s.meta.get("paired") for s in splits)
    # a query whose image is also a database pair's image is a leak, even at other indices
    query = splits[1].query[:1]
    leaky = dataset.images.copy()
    leaky[splits[0].database[0]] = leaky[query[0]]
    from hashlearn.data.paired import PairedDataset

    copy = PairedDataset("toy", leaky, dataset.labels, texts=dataset.texts, meta=dataset.meta)
    with pytest.raises(DataLeakageError, match="over pairs"):
        check_stages(splits, dataset.labels, protocol, dataset=copy)


@pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")
def test_openmoji_groups_arrive_in_three_stages_of_pairs():
    from hashlearn.data.paired import duplicate_groups

    dataset = load_dataset("openmoji")
    n_groups = dataset.meta["n_groups"]
    splits = make_stage_splits(dataset, "groups", seed=0)
    protocol = get_incremental_protocol("openmoji", "groups").for_dataset(dataset)
    assert [s.meta["incremental"]["stage_name"] for s in splits] == protocol.stage_names == [
        "smileys-people-nature-food", "travel-activities-objects", "symbols-flags"]
    # every class -- group or subgroup -- is in exactly one stage, and a pair's stage is its group's
    assert sorted(c for stage in protocol.stages for c in stage.classes) == list(range(dataset.n_classes))
    group_of = np.argmax(dataset.labels[:, :n_groups], axis=1)
    for number, (split, stage) in enumerate(zip(splits, protocol.stages), start=1):
        groups = [dataset.meta["classes"].index(name) for name in stage.groups]
        assert set(np.unique(group_of[split.train])) == set(groups) == set(np.unique(group_of[split.validation]))
        assert len(split.validation) == 10 * len(groups)
        new_queries = np.setdiff1d(split.query, splits[number - 2].query) if number > 1 else split.query
        assert len(new_queries) == 25 * len(groups)
        # every new database pair trains, except the validation pairs
        new = np.setdiff1d(split.database, splits[number - 2].database) if number > 1 else split.database
        assert np.array_equal(np.sort(np.concatenate([split.train, split.validation])), new)
    assert len(splits[-1].database) + len(splits[-1].query) == len(dataset)
    # queries share neither image nor text with any other pair
    sizes = np.bincount(duplicate_groups(dataset))
    assert (sizes[duplicate_groups(dataset)[splits[-1].query]] == 1).all()
    small = make_stage_splits(dataset, "groups-small", seed=0)
    assert [len(s.train) for s in small] == [80, 60, 40]
