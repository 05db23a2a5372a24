import numpy as np
import pytest

from hashlearn.data.paired import (PairedDataset, bag_of_words, build_vocabulary, check_pair_leakage, duplicate_groups,
                                   make_paired_split, tokenize)
from hashlearn.data.protocols import Split, make_split
from hashlearn.errors import DataLeakageError


def toy(n=60, duplicates=()):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8)
    texts = [f"item {i} word{i % 7}" for i in range(n)]
    for a, b, what in duplicates:
        if what == "image":
            images[b] = images[a]
        else:
            texts[b] = texts[a].upper()  # the same text up to case and spacing
    labels = np.eye(5, dtype=np.uint8)[np.arange(n) % 5]
    return PairedDataset("toy", images, labels, texts=texts)


def test_dataset_sides_and_conversions():
    ds = toy()
    assert len(ds) == 60 and ds.modality == "paired" and ds.kind == "multi-label" and ds.n_classes == 5
    assert ds.image_kind == "pixels" and ds.image_shape == (3, 4, 4)
    x = ds.image_inputs([0, 2])
    assert x.dtype == np.float32 and x.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(x, ds.images[[0, 2]] / 255.0, rtol=1e-6)
    assert ds.text_items([1]) == ["item 1 word1"]
    with pytest.raises(ValueError, match="no text_vectors"):
        ds.text_inputs()


def test_single_labels_become_one_hot_and_bad_inputs_are_rejected():
    ds = PairedDataset("t", np.zeros((3, 2), np.float32), np.array([0, 2, 1]), text_vectors=np.eye(3))
    np.testing.assert_array_equal(ds.labels, np.eye(3, dtype=np.uint8)[[0, 2, 1]])
    with pytest.raises(ValueError, match="needs texts"):
        PairedDataset("t", np.zeros((3, 2), np.float32), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="every image needs its text"):
        PairedDataset("t", np.zeros((3, 2), np.float32), np.array([0, 1, 1]), texts=["a", "b"])
    with pytest.raises(ValueError, match="text_vectors must have shape"):
        PairedDataset("t", np.zeros((3, 2), np.float32), np.array([0, 1, 1]), text_vectors=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="images must be"):
        PairedDataset("t", np.zeros((3,), np.float32), np.array([0, 1, 1]), texts=["a", "b", "c"])


def test_bag_of_words_against_a_manual_count():
    texts = ["Red apple, green apple", "green tea", "tea: red"]
    assert tokenize("flag: Côte d’Ivoire") == ["flag", "c", "te", "d", "ivoire"]
    vocabulary = build_vocabulary(texts, min_count=2)
    assert vocabulary == ["green", "red", "tea"]  # 'apple' is in one text only
    bow = bag_of_words(texts, vocabulary)
    np.testing.assert_array_equal(bow, [[1, 1, 0], [1, 0, 1], [0, 1, 1]])


def test_duplicate_groups_are_transitive():
    ds = toy(duplicates=[(0, 1, "image"), (1, 2, "text"), (5, 9, "image")])
    groups = duplicate_groups(ds)
    assert groups[0] == groups[1] == groups[2] and groups[5] == groups[9]
    assert len(np.unique(groups)) == 60 - 3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_keeps_duplicates_on_one_side(seed):
    ds = toy(duplicates=[(i, i + 1, "image" if i % 4 else "text") for i in range(0, 40, 2)])
    split = make_paired_split(ds, n_query=11, n_train=30, n_val=5, seed=seed)
    groups = duplicate_groups(ds)
    assert not set(groups[split.query]) & set(groups[split.database])
    assert len(split.query) == 11 and set(split.train) <= set(split.database)
    check_pair_leakage(split, ds)  # passes by construction


def test_leakage_check_finds_duplicate_content_across_parts():
    ds = toy(duplicates=[(0, 1, "text")])
    database = np.arange(1, 60)
    split = Split(np.array([0]), database, database[:20], database[20:25], dataset="toy", n_items=60)
    with pytest.raises(DataLeakageError, match="same text as a query"):
        check_pair_leakage(split, ds)
    ds = toy(duplicates=[(0, 1, "image")])
    with pytest.raises(DataLeakageError, match="same image as a query"):
        check_pair_leakage(split, ds)


def test_make_split_dispatches_paired_sets_and_is_seeded():
    ds = toy()
    from hashlearn.data.protocols import Protocol

    protocol = Protocol("p", n_query=10, n_train=30, n_val=5, stratified=False)
    first, again = make_split(ds, protocol, seed=4), make_split(ds, protocol, seed=4)
    np.testing.assert_array_equal(first.query, again.query)
    assert first.meta["paired"] is True and first.sizes() == {"query": 10, "database": 50, "train": 30, "validation": 5}
    with pytest.raises(ValueError, match="lower the sizes"):
        make_paired_split(ds, n_query=50, n_train=30, n_val=5)
