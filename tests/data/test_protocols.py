import json

import numpy as np
import pytest

from hashlearn.data import Dataset, load_dataset
from hashlearn.data.protocols import Protocol, Split, get_protocol, make_split
from hashlearn.errors import CorruptFileError, DataLeakageError


def toy(n_per_class=60, n_classes=4, test_from=None):
    labels = np.repeat(np.arange(n_classes), n_per_class)
    predefined = None if test_from is None else {"test": np.arange(test_from, len(labels))}
    return Dataset("toy", np.zeros((len(labels), 3), np.float32), labels, "vector", predefined_split=predefined)


def test_default_digits_split_is_stratified_disjoint_and_seeded():
    dataset = load_dataset("digits")
    split = make_split(dataset, seed=3)
    assert split.sizes() == {"query": 200, "database": 1597, "train": 500, "validation": 100}
    assert np.bincount(dataset.labels[split.query]).tolist() == [20] * 10
    assert np.bincount(dataset.labels[split.train]).tolist() == [50] * 10
    assert not np.intersect1d(split.query, split.database).size
    assert np.isin(split.train, split.database).all() and np.isin(split.validation, split.database).all()
    assert not np.intersect1d(split.train, split.validation).size
    again = make_split(dataset, seed=3)
    other = make_split(dataset, seed=4)
    np.testing.assert_array_equal(split.query, again.query)
    assert not np.array_equal(split.query, other.query)


def test_queries_come_from_the_predefined_test_split():
    dataset = toy(test_from=120)  # classes 2 and 3 are the test split
    split = make_split(dataset, Protocol("p", n_query=20, n_train=40, n_val=20, query_from="test"), seed=0)
    assert (split.query >= 120).all()
    assert len(split.database) == 240 - 20


def test_missing_predefined_split_is_an_error():
    with pytest.raises(ValueError, match="'test' split"):
        make_split(toy(), Protocol("p", 10, 10, 10, query_from="test"))


def test_leaking_split_raises():
    split = make_split(toy(), Protocol("p", 20, 40, 20))
    leaked = Split(np.append(split.query, split.database[0]), split.database, split.train, split.validation, n_items=240)
    with pytest.raises(DataLeakageError, match="query and database"):
        leaked.check()
    bad_train = Split(split.query, split.database, np.append(split.train, split.query[0]), split.validation, n_items=240)
    with pytest.raises(DataLeakageError):
        bad_train.check()
    overlap = Split(split.query, split.database, split.train, np.append(split.validation, split.train[0]), n_items=240)
    with pytest.raises(DataLeakageError, match="train and validation"):
        overlap.check()


def test_stratified_draw_with_too_few_items_explains():
    labels = np.array([0, 0] + [1] * 20 + [2] * 20)
    skewed = Dataset("skewed", np.zeros((len(labels), 2)), labels, "vector")
    with pytest.raises(ValueError, match="class 0 has only 1 items left for train.*non-stratified"):
        make_split(skewed, Protocol("p", n_query=3, n_train=6, n_val=3))


def test_unknown_protocol_and_oversized_protocol():
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("fashion-mnist", "nope")
    with pytest.raises(ValueError, match="cannot draw"):
        make_split(toy(), Protocol("p", n_query=500, n_train=1, n_val=1, stratified=False))


def test_multilabel_and_unlabelled_use_random_draws():
    rng = np.random.default_rng(0)
    multi = Dataset("multi", np.zeros((100, 2)), rng.integers(0, 2, (100, 5)).astype(np.uint8), "vector")
    split = make_split(multi, seed=0)
    assert split.meta["stratified"] is False
    unlabelled = Dataset("glove-50d", np.zeros((30000, 2)), None, "vector")
    assert make_split(unlabelled).sizes()["query"] == 1000


def test_save_load_round_trip_and_tamper_detection(tmp_path):
    split = make_split(toy(), Protocol("p", 20, 40, 20), seed=1)
    split.save(tmp_path)
    loaded = Split.load(tmp_path)
    for part in ("query", "database", "train", "validation"):
        np.testing.assert_array_equal(getattr(loaded, part), getattr(split, part))
    assert json.loads((tmp_path / "split.json").read_text())["sizes"]["query"] == 20
    data = bytearray((tmp_path / "split.npz").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "split.npz").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum"):
        Split.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        Split.load(tmp_path / "missing")
