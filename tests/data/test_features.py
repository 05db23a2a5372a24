"""The feature cache: hits, keys, damaged entries, batching -- with a small counting encoder."""

import json
import warnings

import numpy as np
import pytest

from hashlearn.data import Dataset
from hashlearn.data.encoders import FrozenEncoder
from hashlearn.data.features import extract_features, feature_cache_key


class CountingEncoder(FrozenEncoder):
    """Deterministic 4-d features (per-image moments) that counts its calls."""

    name = "counting"
    output_dim = 4

    def __init__(self, scale=1.0):
        self.scale = scale
        self.batch_sizes = []

    def config(self):
        return {"scale": self.scale}

    def check_inputs(self, inputs):
        return np.asarray(inputs, dtype=np.float32)

    def encode_batch(self, batch):
        self.batch_sizes.append(len(batch))
        flat = batch.reshape(len(batch), -1)
        return self.scale * np.stack([flat.mean(1), flat.std(1), flat.min(1), flat.max(1)], axis=1)


class TextLengthEncoder(FrozenEncoder):
    name = "text-length"
    output_dim = 2

    def __init__(self):
        self.calls = 0

    def check_inputs(self, inputs):
        return list(inputs)

    def encode_batch(self, batch):
        self.calls += 1
        return np.array([[len(t), t.count(" ")] for t in batch], dtype=np.float32)


def images(seed=0, n=10):
    return np.random.default_rng(seed).random((n, 6, 6)).astype(np.float32)


def reference(x):
    flat = x.reshape(len(x), -1)
    return np.stack([flat.mean(1), flat.std(1), flat.min(1), flat.max(1)], axis=1)


def test_cache_hit_returns_identical_features_without_recomputing(tmp_path):
    encoder = CountingEncoder()
    first = extract_features(images(), encoder, cache_dir=tmp_path, batch_size=4)
    assert encoder.batch_sizes == [4, 4, 2]
    np.testing.assert_allclose(first, reference(images()), rtol=1e-6)
    second = extract_features(images(), encoder, cache_dir=tmp_path, batch_size=3)
    assert encoder.batch_sizes == [4, 4, 2]  # no new call
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32
    entries = sorted(p.name for p in (tmp_path / "counting").iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")


def test_key_changes_with_input_encoder_settings_and_version():
    encoder = CountingEncoder()
    base = feature_cache_key(encoder, images())
    changed = images()
    changed[3, 2, 2] += 1e-3
    assert feature_cache_key(encoder, changed) != base
    assert feature_cache_key(encoder, images()[:9]) != base
    assert feature_cache_key(encoder, images().reshape(10, 36)) != base  # same bytes, other shape
    assert feature_cache_key(encoder, images().astype(np.float64)) != base
    assert feature_cache_key(CountingEncoder(scale=2.0), images()) != base
    newer = CountingEncoder()
    newer.version = "2"
    assert feature_cache_key(newer, images()) != base
    assert feature_cache_key(CountingEncoder(), images()) == base


def test_text_keys_cannot_collide_by_concatenation(tmp_path):
    encoder = TextLengthEncoder()
    assert feature_cache_key(encoder, ["ab", "c"]) != feature_cache_key(encoder, ["a", "bc"])
    features = extract_features(["a b c", "hello"], encoder, cache_dir=tmp_path)
    np.testing.assert_array_equal(features, [[5, 2], [5, 0]])
    extract_features(["a b c", "hello"], encoder, cache_dir=tmp_path)
    assert encoder.calls == 1
    extract_features(["a b c", "hello!"], encoder, cache_dir=tmp_path)
    assert encoder.calls == 2


@pytest.mark.parametrize("damage", ["flip_npy", "truncate_npy", "garbage_json", "missing_json", "wrong_shape"])
def test_damaged_entry_is_detected_and_recomputed(tmp_path, damage):
    encoder = CountingEncoder()
    good = extract_features(images(), encoder, cache_dir=tmp_path)
    npy = next((tmp_path / "counting").glob("*.npy"))
    sidecar = npy.with_suffix(".json")
    if damage == "flip_npy":
        raw = bytearray(npy.read_bytes())
        raw[-5] ^= 0xFF
        npy.write_bytes(bytes(raw))
    elif damage == "truncate_npy":
        npy.write_bytes(npy.read_bytes()[:100])
    elif damage == "garbage_json":
        sidecar.write_text("{not json")
    elif damage == "missing_json":
        sidecar.unlink()
    else:  # a self-consistent entry of the wrong shape
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.zeros((3, 4), np.float32))
        npy.write_bytes(buffer.getvalue())
        meta = json.loads(sidecar.read_text())
        meta["npy_sha256"] = __import__("hashlib").sha256(buffer.getvalue()).hexdigest()
        sidecar.write_text(json.dumps(meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = extract_features(images(), encoder, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, good)
    assert len(encoder.batch_sizes) == 2  # recomputed once
    if damage != "missing_json":  # an entry without its sidecar is merely incomplete
        assert any("damaged" in str(w.message) for w in caught)
    extract_features(images(), encoder, cache_dir=tmp_path)
    assert len(encoder.batch_sizes) == 2  # and the rewritten entry is valid


def test_use_cache_false_writes_nothing(tmp_path):
    encoder = CountingEncoder()
    extract_features(images(), encoder, cache_dir=tmp_path, use_cache=False)
    extract_features(images(), encoder, cache_dir=tmp_path, use_cache=False)
    assert len(encoder.batch_sizes) == 2 and not any(tmp_path.iterdir())


def test_sidecar_metadata(tmp_path):
    extract_features(images(), CountingEncoder(scale=3.0), cache_dir=tmp_path)
    meta = json.loads(next((tmp_path / "counting").glob("*.json")).read_text())
    assert meta["encoder"] == "counting" and meta["config"] == {"scale": 3.0}
    assert meta["shape"] == [10, 4] and meta["dtype"] == "float32" and len(meta["npy_sha256"]) == 64


def test_default_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHLEARN_CACHE_DIR", str(tmp_path))
    extract_features(images(), CountingEncoder())
    assert len(list((tmp_path / "features" / "counting").glob("*.npy"))) == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'resnet'"):
        extract_features(images(), "resnet", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="batch_size"):
        extract_features(images(), CountingEncoder(), batch_size=2.5)
    with pytest.raises(TypeError, match=r"encoder options \['image_size'\]"):
        extract_features(images(), CountingEncoder(), image_size=96)
    with pytest.raises(ValueError, match="empty"):
        extract_features(images()[:0], CountingEncoder(), cache_dir=tmp_path)
    vectors = Dataset("v", np.zeros((3, 4), np.float32), None, "vector")
    with pytest.raises(ValueError, match="no default encoder for 'vector' data"):
        extract_features(vectors, cache_dir=tmp_path)

    class Broken(CountingEncoder):
        def encode_batch(self, batch):
            return np.zeros((len(batch), 3))

    with pytest.raises(ValueError, match=r"returned shape \(10, 3\).*expected \(10, 4\)"):
        extract_features(images(), Broken(), cache_dir=tmp_path)


def test_dataset_input_uses_its_data(tmp_path):
    dataset = Dataset("toy", images(), np.arange(10), "image")
    np.testing.assert_allclose(extract_features(dataset, CountingEncoder(), cache_dir=tmp_path), reference(images()), rtol=1e-6)


def test_interrupted_run_resumes_from_its_checkpoints(tmp_path):
    class FailsAfter(CountingEncoder):
        def encode_batch(self, batch):
            if len(self.batch_sizes) == 3:
                raise KeyboardInterrupt
            return super().encode_batch(batch)

    with pytest.raises(KeyboardInterrupt):
        extract_features(images(n=20), FailsAfter(), cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    partial = next((tmp_path / "counting").glob("*.partial"))
    assert len(list(partial.glob("*.npy"))) == 3  # rows 0-4, 4-8, 8-12
    resumed = CountingEncoder()
    features = extract_features(images(n=20), resumed, cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    assert resumed.batch_sizes == [4, 4]  # only rows 12-20 were computed
    np.testing.assert_allclose(features, reference(images(n=20)), rtol=1e-6)
    assert not partial.exists()


def test_damaged_checkpoint_chunk_is_recomputed(tmp_path):
    class FailsAfter(CountingEncoder):
        def encode_batch(self, batch):
            if len(self.batch_sizes) == 3:
                raise RuntimeError("power cut")
            return super().encode_batch(batch)

    with pytest.raises(RuntimeError):
        extract_features(images(n=20), FailsAfter(), cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    chunks = sorted(next((tmp_path / "counting").glob("*.partial")).glob("*.npy"))
    chunks[1].write_bytes(chunks[1].read_bytes()[:50])  # rows 4-8 damaged: resume after rows 0-4 only
    resumed = CountingEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = extract_features(images(n=20), resumed, cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    assert resumed.batch_sizes == [4, 4, 4, 4]
    np.testing.assert_allclose(features, reference(images(n=20)), rtol=1e-6)


# --- hostile caches (issue 12): a stray file anywhere in the cache does not crash extraction -------
def _interrupted(tmp_path):
    class FailsAfter(CountingEncoder):
        def encode_batch(self, batch):
            if len(self.batch_sizes) == 2:
                raise RuntimeError("power cut")
            return super().encode_batch(batch)

    with pytest.raises(RuntimeError):
        extract_features(images(n=20), FailsAfter(), cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    return next((tmp_path / "counting").glob("*.partial"))


@pytest.mark.parametrize("stray", ["notes.txt", "x-y.npy", "1-2-3.npy", "000000000004-000000000002.npy", "folder", "folder.npy", "link.npy"])
def test_stray_entries_in_the_progress_folder(tmp_path, stray):
    """A stray file in the feature cache crashed extraction (int() of its name, unlink of a folder)."""
    partial = _interrupted(tmp_path)
    target = partial / stray
    if stray.startswith("folder"):
        target.mkdir()
        (target / "inside").write_text("x")
    elif stray == "link.npy":
        target.symlink_to("/dev/zero")
    else:
        target.write_bytes(b"stray")
    resumed = CountingEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = extract_features(images(n=20), resumed, cache_dir=tmp_path, batch_size=4, checkpoint_s=0)
    assert sum(resumed.batch_sizes) == 12  # rows 0-8 resumed, the stray entry ignored and removed
    np.testing.assert_allclose(features, reference(images(n=20)), rtol=1e-6)
    assert not partial.exists()


@pytest.mark.parametrize("kind", ["file-as-progress-folder", "folder-as-entry", "npz-as-entry", "huge-header", "sidecar-list", "sidecar-garbage"])
def test_stray_or_forged_entries(tmp_path, kind):
    data = images(n=8)
    extract_features(data, CountingEncoder(), cache_dir=tmp_path)
    entry = next((tmp_path / "counting").glob("*.npy"))
    sidecar = entry.with_suffix(".json")
    if kind == "file-as-progress-folder":
        entry.unlink()
        entry.with_name(entry.stem + ".partial").write_text("stray")
    elif kind == "folder-as-entry":
        entry.unlink()
        entry.mkdir()
    elif kind == "npz-as-entry":  # np.load returned an NpzFile here, and .shape raised AttributeError
        import io

        buffer = io.BytesIO()
        np.savez(buffer, features=reference(data))
        entry.write_bytes(buffer.getvalue())
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "npy_sha256": __import__("hashlib").sha256(buffer.getvalue()).hexdigest()}))
    elif kind == "huge-header":
        entry.write_bytes(entry.read_bytes().replace(b"(8, 4)", b"(9**9,)".ljust(6)[:6]))
    elif kind == "sidecar-list":
        sidecar.write_text("[1, 2]")
    else:
        sidecar.write_bytes(b"\xff" * 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = extract_features(data, CountingEncoder(), cache_dir=tmp_path)
    np.testing.assert_allclose(features, reference(data), rtol=1e-6)
    assert extract_features(data, CountingEncoder(), cache_dir=tmp_path).shape == (8, 4)  # and the entry was rewritten


class _Moments(FrozenEncoder):
    """256-d features (an image's mean plus 0..255): the features outweigh the inputs 4 to 1."""

    name = "moments"
    output_dim = 256

    def check_inputs(self, inputs):
        return np.asarray(inputs, dtype=np.float32)

    def encode_batch(self, batch):
        flat = batch.reshape(len(batch), -1)
        return flat.mean(1, keepdims=True) + np.arange(self.output_dim, dtype=np.float32)


def test_a_cache_hit_costs_the_features_once(tmp_path, traced_peak):
    """A hit allocated the output array before looking, read the entry and copied it (3x)."""
    inputs = np.random.default_rng(0).random((4096, 8, 8)).astype(np.float32)
    encoder = _Moments()
    stored = extract_features(inputs, encoder, cache_dir=tmp_path)
    got, peak = traced_peak(lambda: extract_features(inputs, encoder, cache_dir=tmp_path))
    assert np.array_equal(got, stored) and got.flags.writeable
    assert peak < 1.25 * stored.nbytes, f"peak {peak / stored.nbytes:.2f}x the features"


def test_writing_an_entry_streams_the_array(tmp_path, traced_peak):
    """The entry was serialized into memory (np.save to BytesIO) before it was written: 2x."""
    from hashlearn.data.features import _write_entry

    features = np.random.default_rng(0).random((4096, 256)).astype(np.float32)
    npy_path, json_path = tmp_path / "entry.npy", tmp_path / "entry.json"
    _, peak = traced_peak(lambda: _write_entry(npy_path, json_path, features, _Moments(), "k"))
    assert peak < 0.25 * features.nbytes
    assert np.array_equal(np.load(npy_path), features)
    assert json.loads(json_path.read_text())["npy_sha256"] == __import__("hashlib").sha256(npy_path.read_bytes()).hexdigest()
