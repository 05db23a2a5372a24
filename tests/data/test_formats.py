"""CIFAR-10 batches, list files and feature files, on small files written in each format."""

import os
import pickle

import numpy as np
import pytest

from hashlearn.data import load_dataset
from hashlearn.data.formats import read_cifar_batch, read_list_file
from hashlearn.errors import CorruptFileError


# --------------------------------------------------------------------------- CIFAR-10
def write_cifar_batch(path, n, seed, protocol=2, overrides=None):
    """A batch like cifar-10-batches-py's: a pickled dict with bytes keys."""
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"training batch",
        b"labels": rng.integers(0, 10, size=n).tolist(),
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }
    batch.update(overrides or {})
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return batch


@pytest.fixture()
def cifar_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [write_cifar_batch(folder / f"data_batch_{i}", n=3, seed=i) for i in range(1, 6)]
    batches.append(write_cifar_batch(folder / "test_batch", n=4, seed=9, protocol=4))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return tmp_path, batches


def test_cifar10_loads_all_batches_in_order(cifar_dir):
    root, batches = cifar_dir
    dataset = load_dataset("cifar10", data_dir=root)  # the archive's subfolder is found
    assert dataset.data.shape == (19, 3, 32, 32) and dataset.data.dtype == np.float32
    expected_images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(np.rint(dataset.data * 255).astype(np.uint8), expected_images)
    np.testing.assert_array_equal(dataset.labels, np.concatenate([b[b"labels"] for b in batches]))
    np.testing.assert_array_equal(dataset.predefined_split["train"], np.arange(15))
    np.testing.assert_array_equal(dataset.predefined_split["test"], np.arange(15, 19))
    assert dataset.meta["classes"][0] == "airplane" and len(dataset.meta["classes"]) == 10


def test_cifar10_channel_layout():
    """Row 0 of a batch holds 1024 red, then 1024 green, then 1024 blue values."""
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "data_batch_1"
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    write_cifar_batch(path, n=1, seed=0, overrides={b"data": row[None], b"labels": [3]})
    images, labels = read_cifar_batch(path)
    assert images.shape == (1, 3, 32, 32) and (images[0, 1] == 20).all() and labels.tolist() == [3]


def test_cifar10_missing_and_bad_batches(cifar_dir, tmp_path, monkeypatch):
    root, _ = cifar_dir
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=root)
    write_cifar_batch(folder / "data_batch_3", n=2, seed=3, overrides={b"labels": [1, 12]})
    with pytest.raises(CorruptFileError, match="data_batch_3: 'labels' must be 2 integers in 0..9"):
        load_dataset("cifar10", data_dir=root)
    write_cifar_batch(folder / "data_batch_3", n=2, seed=3, overrides={b"data": np.zeros((2, 100), np.uint8)})
    with pytest.raises(CorruptFileError, match=r"'data' must be a uint8 array of shape \(n, 3072\)"):
        load_dataset("cifar10", data_dir=root)
    monkeypatch.delenv("HASHLEARN_CIFAR10_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="HASHLEARN_CIFAR10_DIR"):
        load_dataset("cifar10")


def test_cifar10_refuses_a_malicious_batch(cifar_dir):
    root, _ = cifar_dir

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(CorruptFileError, match="test_batch: refusing to unpickle global"):
        load_dataset("cifar10", data_dir=root)


# --------------------------------------------------------------------------- list files
def test_list_file_paths_and_multi_hot_labels(tmp_path):
    (tmp_path / "train.txt").write_text("img/a.jpg 0 1 0 1\nimg/b.jpg 1 0 0 0\n\nimg/c.jpg 0 0 0 0\n")
    dataset = load_dataset("list-file", path=tmp_path / "train.txt")
    assert dataset.data == [str(tmp_path / "img" / name) for name in ("a.jpg", "b.jpg", "c.jpg")]
    np.testing.assert_array_equal(dataset.labels, [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert dataset.labels.dtype == np.uint8 and dataset.kind == "multi-label" and dataset.n_classes == 4
    other_root = load_dataset("list-file", path=tmp_path / "train.txt", root="/data/nus")
    assert other_root.data[0] == "/data/nus/img/a.jpg"


@pytest.mark.parametrize("content, message", [
    ("a.jpg 0 1\nb.jpg 0 1 1\n", "line 2: 3 labels, but earlier lines have 2"),
    ("a.jpg 0 2\n", "line 1: label vectors must hold only 0 and 1, found '2'"),
    ("a.jpg 0 -1\n", "found '-1'"),
    ("a.jpg 0.5 1\n", "found '0.5'"),
    ("a.jpg\n", "line 1: expected 'image_path label_1"),
    ("\n\n", "no entries"),
])
def test_list_file_rejects_wrong_label_vectors(tmp_path, content, message):
    (tmp_path / "list.txt").write_text(content)
    with pytest.raises(CorruptFileError, match=message):
        read_list_file(tmp_path / "list.txt")


def test_list_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_dataset("list-file", path=tmp_path / "nope.txt")


def test_list_file_decodes_images_with_pillow(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.fromarray(np.full((8, 6, 3), (255, 0, 0), np.uint8)).save(tmp_path / "img" / "red.png")
    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(tmp_path / "img" / "grey.png")
    (tmp_path / "list.txt").write_text("img/red.png 1 0\nimg/grey.png 0 1\n")
    dataset = load_dataset("list-file", path=tmp_path / "list.txt", decode=True, image_size=5)
    assert dataset.data.shape == (2, 3, 5, 5) and dataset.data.dtype == np.float32
    np.testing.assert_allclose(dataset.data[0, :, 2, 2], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(dataset.data[1], 128 / 255, atol=1e-6)
    with pytest.raises(ValueError, match="different sizes"):
        load_dataset("list-file", path=tmp_path / "list.txt", decode=True)
    (tmp_path / "img" / "grey.png").unlink()
    with pytest.raises(FileNotFoundError, match="grey.png"):
        load_dataset("list-file", path=tmp_path / "list.txt", decode=True, image_size=5)


# --------------------------------------------------------------------------- feature files
def test_npy_with_labels_from_array_or_file(tmp_path):
    features = np.random.default_rng(0).normal(size=(5, 3))
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "y.npy", np.array([0, 1, 1, 2, 0]))
    dataset = load_dataset("features", path=tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert dataset.data.dtype == np.float32 and dataset.data.shape == (5, 3) and dataset.modality == "vector"
    np.testing.assert_allclose(dataset.data, features, rtol=1e-6)
    assert dataset.labels.dtype == np.int64 and dataset.labels.tolist() == [0, 1, 1, 2, 0]
    assert load_dataset("features", path=tmp_path / "x.npy").labels is None
    with pytest.raises(ValueError, match="labels has 2 rows but the data has 5"):
        load_dataset("features", path=tmp_path / "x.npy", labels=[0, 1])


def test_npz_keys(tmp_path):
    np.savez(tmp_path / "f.npz", features=np.eye(4), labels=np.eye(4, 3, dtype=np.int64))
    dataset = load_dataset("features", path=tmp_path / "f.npz")
    assert dataset.labels.dtype == np.uint8 and dataset.kind == "multi-label"
    np.savez(tmp_path / "bad.npz", x=np.eye(2))
    with pytest.raises(CorruptFileError, match=r"'features' array, found keys \['x'\]"):
        load_dataset("features", path=tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="already holds labels"):
        load_dataset("features", path=tmp_path / "f.npz", labels=[0, 1, 2, 3])


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptFileError, match="array of dtype object"):
        load_dataset("features", path=tmp_path / "obj.npy")


def test_parquet_columns_and_list_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"f0": [0.0, 1.0, 2.0], "f1": [3.0, 4.0, 5.0], "label": [2, 0, 1]}), tmp_path / "cols.parquet")
    dataset = load_dataset("features", path=tmp_path / "cols.parquet")
    np.testing.assert_array_equal(dataset.data, [[0, 3], [1, 4], [2, 5]])
    assert dataset.labels.tolist() == [2, 0, 1]
    pq.write_table(pa.table({"vec": [[1.0, 2.0], [3.0, 4.0]], "tags": [[0, 1, 1], [1, 0, 0]]}), tmp_path / "list.parquet")
    dataset = load_dataset("features", path=tmp_path / "list.parquet", label_column="tags")
    np.testing.assert_array_equal(dataset.data, [[1, 2], [3, 4]])
    assert dataset.labels.dtype == np.uint8 and dataset.labels.tolist() == [[0, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="label_column='target' is not a column"):
        load_dataset("features", path=tmp_path / "cols.parquet", label_column="target")
    pq.write_table(pa.table({"name": ["a", "b"], "label": [0, 1]}), tmp_path / "text.parquet")
    with pytest.raises(CorruptFileError, match="numeric"):
        load_dataset("features", path=tmp_path / "text.parquet")


def test_features_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_dataset("features", path=tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"must end in .npy, .npz or .parquet, got 'x.csv'"):
        load_dataset("features", path=tmp_path / "x.csv")
    np.save(tmp_path / "one_d.npy", np.arange(3.0))
    with pytest.raises(ValueError, match=r"2-D array \(n, d\)"):
        load_dataset("features", path=tmp_path / "one_d.npy")


# --- hostile list files and feature files (issue 12) ------------------------------------------------
@pytest.mark.parametrize("entry", ["../secret.jpg", "img/../../etc/passwd", "/etc/passwd", "~/x.jpg"])
def test_list_file_entries_outside_the_root_are_refused(tmp_path, entry):
    """List-file entries could point outside their root folder."""
    (tmp_path / "list.txt").write_text(f"img/ok.jpg 0 1\n{entry} 1 0\n")
    with pytest.raises(CorruptFileError, match="entry 2: .* points outside the root folder"):
        load_dataset("list-file", path=tmp_path / "list.txt")


def test_list_file_binary_garbage_and_devices(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"img/a.jpg 0 1\n\xff\xfe 1 0\n")
    with pytest.raises(CorruptFileError, match="line 2: not UTF-8"):
        read_list_file(tmp_path / "list.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        read_list_file(tmp_path / "zero.txt")


def test_undecodable_image_is_a_corrupt_file_error(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "list.txt").write_text("img/bad.png 1 0\n")
    with pytest.raises(CorruptFileError, match="bad.png. cannot be decoded"):
        load_dataset("list-file", path=tmp_path / "list.txt", decode=True)


def test_npy_header_larger_than_the_file_allocates_nothing(tmp_path):
    """np.load allocated what the .npy header declared before reading the data."""
    import tracemalloc

    path = tmp_path / "huge.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**5)})
        handle.write(bytes(64))
    tracemalloc.start()
    with pytest.raises(CorruptFileError, match="truncated"):
        load_dataset("features", path=path)
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
    tracemalloc.stop()


def test_npy_header_of_binary_junk_is_refused_before_numpy_tokenizes_it(tmp_path, monkeypatch):
    """A flipped bit in a split's length field made its header run into the data: numpy's Python-2
    fallback tokenized 8 KB of binary junk (1.4 MB resident, a one-off that doubled a split's peak)."""
    from numpy.lib import _format_impl

    def no_fallback(header):
        raise AssertionError("numpy's tokenizing header fallback ran")

    monkeypatch.setattr(_format_impl, "_filter_header", no_fallback)
    good = tmp_path / "good.npy"
    array = np.arange(2000, dtype=np.float32).reshape(1000, 2)
    np.save(good, array)
    data = bytearray(good.read_bytes())
    header_nbytes = int.from_bytes(data[8:10], "little")
    data[8:10] = (header_nbytes + 4000).to_bytes(2, "little")  # the header now swallows 4,000 bytes of data
    (tmp_path / "junk.npy").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="printable ASCII"):
        load_dataset("features", path=tmp_path / "junk.npy")
    data[8:10] = (40_000).to_bytes(2, "little")  # over numpy's 10,000-byte limit: refused unread
    (tmp_path / "long.npy").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="declares 40,000 bytes"):
        load_dataset("features", path=tmp_path / "long.npy")
    np.testing.assert_array_equal(load_dataset("features", path=good).data, array)


def test_damaged_npz_and_parquet_features(tmp_path):
    np.savez(tmp_path / "f.npz", features=np.ones((4, 3), np.float32))
    data = (tmp_path / "f.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="not a valid .npz"):
        load_dataset("features", path=tmp_path / "cut.npz")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really PAR1")
    with pytest.raises(CorruptFileError, match="not a readable parquet"):
        load_dataset("features", path=tmp_path / "bad.parquet")
    np.savez(tmp_path / "labels.npz", features=np.ones((4, 3), np.float32), labels=np.ones((2,), np.int64))
    with pytest.raises(CorruptFileError, match="stored labels"):
        load_dataset("features", path=tmp_path / "labels.npz")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_features_file_costs_its_array_once(tmp_path, suffix, traced_peak):
    """float32 features were copied by astype(np.float32) (2x); an .npz was read whole, its member
    read again and then copied (3x)."""
    from hashlearn.data.formats import load_features_file

    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(8192, 128)).astype(np.float32), rng.integers(0, 10, 8192)
    path = tmp_path / f"features{suffix}"
    if suffix == ".npy":
        np.save(path, features)
    else:
        np.savez(path, features=features, labels=labels)
    dataset, peak = traced_peak(lambda: load_features_file(path))
    assert np.array_equal(dataset.data, features) and dataset.data.flags.aligned
    assert suffix == ".npy" or np.array_equal(dataset.labels, labels)
    extra = labels.nbytes if suffix == ".npz" else 0
    assert peak < 1.15 * features.nbytes + extra, f"peak {peak / features.nbytes:.2f}x the features"


def test_npz_members_are_checked_when_read_in_place(tmp_path):
    """Stored members are read straight into their arrays: their CRC is still checked."""
    from hashlearn.data.formats import load_features_file

    path = tmp_path / "features.npz"
    np.savez(path, features=np.ones((64, 8), np.float32))
    data = bytearray(path.read_bytes())
    data[data.find(b"\x00\x00\x80\x3f") + 2] ^= 0x01  # one weight's bit: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="CRC"):
        load_features_file(path)
