import json

import numpy as np
import pytest
import torch

from hashlearn.codes import sign_to_codes
from hashlearn.errors import CorruptFileError
from hashlearn.models import FEATURE_WIDTHS, HashModel, feature_backbone_kwargs


@pytest.fixture
def model():
    torch.manual_seed(0)
    return HashModel("mlp", 16, {"in_features": 12, "hidden": [8]})


def test_outputs_in_range_and_codes_follow_signs(model):
    X = np.random.default_rng(0).normal(size=(30, 12)).astype(np.float32)
    outputs = model.transform(X)
    assert outputs.shape == (30, 16) and np.all(np.abs(outputs) <= 1)
    np.testing.assert_array_equal(model.encode(X), sign_to_codes(outputs))
    assert model.training  # transform restores the mode


def test_small_cnn_on_flat_and_image_inputs():
    torch.manual_seed(0)
    cnn = HashModel("small_cnn", 8, {"width": 4, "out_features": 16})
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(cnn.transform(images), cnn.transform(images.reshape(5, -1)), atol=1e-6)


def test_save_load_round_trip(model, tmp_path):
    X = np.random.default_rng(1).normal(size=(20, 12)).astype(np.float32)
    model.save(tmp_path / "m")
    loaded = HashModel.load(tmp_path / "m")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    assert "pickle" not in (tmp_path / "m" / "model.json").read_text()


def test_feature_head_for_cached_encoder_features(tmp_path):
    kwargs = feature_backbone_kwargs("efficientnet", hidden=(32,))
    head = HashModel("mlp", 32, kwargs)
    features = np.random.default_rng(0).normal(size=(4, FEATURE_WIDTHS["efficientnet"])).astype(np.float32)
    assert head.encode(features).shape == (4, 4)
    head.save(tmp_path / "h")
    assert HashModel.load(tmp_path / "h").backbone_kwargs["in_features"] == 1280
    with pytest.raises(ValueError, match="encoder"):
        feature_backbone_kwargs("resnet")


def test_load_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        HashModel.load(tmp_path / "nothing")
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CorruptFileError, match="truncated"):
        HashModel.load(tmp_path / "m")

    model.save(tmp_path / "m2")
    meta_path = tmp_path / "m2" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "n_bits": 24}))
    with pytest.raises(CorruptFileError, match="do not fit"):
        HashModel.load(tmp_path / "m2")
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CorruptFileError, match="newer"):
        HashModel.load(tmp_path / "m2")
    meta_path.write_text(json.dumps({**meta, "backbone": "transformer"}))
    with pytest.raises(CorruptFileError, match="invalid model configuration"):
        HashModel.load(tmp_path / "m2")
    meta_path.write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        HashModel.load(tmp_path / "m2")
    meta_path.write_text(json.dumps({**meta, "class": "Other"}))
    with pytest.raises(CorruptFileError, match="HashModel"):
        HashModel.load(tmp_path / "m2")


def test_bad_n_bits():
    with pytest.raises(ValueError, match="multiple of 8"):
        HashModel("mlp", 12, {"in_features": 4})
    with pytest.raises(ValueError, match="backbone"):
        HashModel("resnet", 8)
