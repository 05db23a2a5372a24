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


# --- hostile split files (issue 12): KeyError, BadZipFile, NotImplementedError never escape ------
def _resign(directory, payload: bytes, **changes):
    """Write ``payload`` as split.npz with a matching checksum (what a forger can do)."""
    from hashlearn._io import sha256_bytes

    (directory / "split.npz").write_bytes(payload)
    info = json.loads((directory / "split.json").read_text())
    info.update(sha256=sha256_bytes(payload), **changes)
    (directory / "split.json").write_text(json.dumps(info))


def _npz(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def saved_split(tmp_path):
    split = make_split(toy(), Protocol("p", 20, 40, 20), seed=1)
    split.save(tmp_path)
    return split, tmp_path


@pytest.mark.parametrize("key", ["dataset", "protocol", "seed", "n_items", "train_in_database", "sha256"])
def test_missing_split_field_is_corrupt_not_key_error(saved_split, key):
    _, directory = saved_split
    info = json.loads((directory / "split.json").read_text())
    info.pop(key)
    (directory / "split.json").write_text(json.dumps(info))
    with pytest.raises(CorruptFileError, match=key if key != "sha256" else "sha256"):
        Split.load(directory)


@pytest.mark.parametrize("changes", [{"seed": "1"}, {"n_items": -1}, {"n_items": True}, {"train_in_database": 1}, {"meta": []}])
def test_split_field_types(saved_split, changes):
    _, directory = saved_split
    _resign(directory, (directory / "split.npz").read_bytes(), **changes)
    with pytest.raises(CorruptFileError):
        Split.load(directory)


def test_re_signed_garbage_is_corrupt_not_bad_zip_file(saved_split):
    _, directory = saved_split
    _resign(directory, b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(CorruptFileError, match="not a valid .npz"):
        Split.load(directory)


def test_unknown_compression_method_is_corrupt_not_not_implemented(saved_split):
    """A zip member with compression method 99 raised NotImplementedError from zipfile."""
    split, directory = saved_split
    payload = bytearray(_npz(**{part: getattr(split, part) for part in ("query", "database", "train", "validation")}))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # method field of local and central headers
        start = 0
        while (start := payload.find(signature, start)) >= 0:
            payload[start + offset : start + offset + 2] = (99).to_bytes(2, "little")
            start += 4
    _resign(directory, bytes(payload))
    with pytest.raises(CorruptFileError):
        Split.load(directory)


def test_declared_shape_larger_than_the_data_allocates_nothing(saved_split):
    """An .npy header declaring 10**12 items made np.load allocate before it read the data."""
    import io
    import tracemalloc
    import zipfile

    split, directory = saved_split
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in ("query", "database", "train", "validation"):
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
            archive.writestr(f"{part}.npy", member.getvalue() + getattr(split, part).astype("<i8").tobytes())
    _resign(directory, buffer.getvalue())
    tracemalloc.start()
    with pytest.raises(CorruptFileError, match="declares shape"):
        Split.load(directory)
    assert tracemalloc.get_traced_memory()[1] < 10 << 20
    tracemalloc.stop()


def test_object_arrays_and_leaking_splits_are_corrupt(saved_split):
    split, directory = saved_split
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in ("query", "database", "train", "validation"):
            member = io.BytesIO()
            np.lib.format.write_array(member, getattr(split, part).astype(object), allow_pickle=True)
            archive.writestr(f"{part}.npy", member.getvalue())
    _resign(directory, buffer.getvalue())
    with pytest.raises(CorruptFileError, match="object|plain"):
        Split.load(directory)
    leaking = _npz(query=split.query, database=np.concatenate([split.database, split.query[:1]]), train=split.train, validation=split.validation)
    _resign(directory, leaking)
    with pytest.raises(CorruptFileError, match="query and database"):
        Split.load(directory)
    _resign(directory, _npz(query=split.query))
    with pytest.raises(CorruptFileError, match="lacks the part"):
        Split.load(directory)


def test_loading_and_checking_a_split_costs_little_besides_its_arrays(tmp_path, traced_peak):
    """The checks sorted copies of every part (np.unique, intersect1d, isin): the load of a
    Fashion-MNIST-sized split peaked at 4.3x its database array; a table of one byte per item
    records which part holds an item instead."""
    n = 400_000
    split = make_split(Dataset("big", np.zeros((n, 1), np.float32), np.arange(n) % 10, "vector", {}), Protocol("p", 1000, 5000, 1000), seed=0)
    split.save(tmp_path)
    arrays = sum(getattr(split, part).nbytes for part in ("query", "database", "train", "validation"))
    _, peak = traced_peak(split.check)
    assert peak < 0.3 * split.database.nbytes  # the table and one temporary of one byte per item
    loaded, peak = traced_peak(lambda: Split.load(tmp_path))
    assert all(np.array_equal(getattr(loaded, part), getattr(split, part)) for part in ("query", "database", "train", "validation"))
    assert peak < 1.3 * arrays  # the arrays it holds (hashed in a small buffer, read straight into them)


def test_a_sparse_split_is_checked_against_one_sorted_copy(traced_peak):
    """Parts that cover few of n_items (a damaged n_items of 2**32) are compared by sorting:
    np.unique, intersect1d and isin made several copies; now the database is sorted once."""
    rng = np.random.default_rng(0)
    items = rng.choice(2**40, size=406_000, replace=False)
    split = Split(query=items[:1000], database=items[6000:], train=items[6000:11000], validation=items[1000:2000], n_items=2**40)
    _, peak = traced_peak(split.check)
    assert peak < 1.3 * split.database.nbytes


@pytest.mark.parametrize("parts, message", [
    ({"query": [1, 1]}, "query' contains duplicate"),
    ({"query": [3], "database": [3, 4]}, "1 item\\(s\\) are in both query and database \\(e.g. index 3\\)"),
    ({"train": [5], "validation": [5]}, "train and validation"),
    ({"train": [7]}, "train must be a subset of database"),
])
def test_dense_and_sparse_checks_agree(parts, message):
    """The byte table (parts cover most items) and the sorted comparison (sparse parts) find the same leaks."""
    base = {"query": [0], "database": [1, 2, 5, 9], "train": [2], "validation": [6]}
    for n_items in (10, 10**7):  # dense, then sparse
        split = Split(**{name: np.asarray(values) for name, values in {**base, **parts}.items()}, n_items=n_items)
        with pytest.raises(DataLeakageError, match=message):
            split.check()
    Split(**{name: np.asarray(values) for name, values in base.items()}, n_items=10).check()
