import json

import numpy as np
import pytest
import torch

from hashlearn.errors import CorruptFileError
from hashlearn.models.two_tower import TwoTowerHashModel, build_two_tower, default_tower


def small_model(n_bits=16):
    torch.manual_seed(0)
    return build_two_tower(n_bits, (3, 8, 8), (10,), hidden=(12,))


def test_towers_share_the_code_length_and_forward_takes_pairs():
    model = small_model()
    images, texts = torch.rand(5, 3, 8, 8), torch.rand(5, 10)
    image_out, text_out = model((images, texts))
    assert image_out.shape == text_out.shape == (5, 16)
    torch.testing.assert_close(image_out, model.tower("image")(images))
    assert model.tower("image").backbone_name == "small_cnn" and model.tower("text").backbone_name == "mlp"
    assert model.encode(texts.numpy(), "text").shape == (5, 2)
    with pytest.raises(TypeError, match="pair"):
        model(images)
    with pytest.raises(ValueError, match="modality"):
        model.tower("audio")


def test_save_load_round_trip_gives_identical_codes(tmp_path):
    model = small_model()
    model.save(tmp_path / "m")
    loaded = TwoTowerHashModel.load(tmp_path / "m")
    images, texts = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32), np.random.default_rng(1).random((4, 10), dtype=np.float32)
    for modality, x in (("image", images), ("text", texts)):
        np.testing.assert_array_equal(loaded.encode(x, modality), model.encode(x, modality))
    assert loaded.config == model.config and not loaded.training


def test_load_rejects_damaged_or_foreign_folders(tmp_path):
    model = small_model()
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(CorruptFileError, match="checksum"):
        TwoTowerHashModel.load(tmp_path / "m")
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    config["class"] = "HashModel"
    (tmp_path / "m" / "model.json").write_text(json.dumps(config))
    with pytest.raises(CorruptFileError, match="does not describe"):
        TwoTowerHashModel.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="model.json"):
        TwoTowerHashModel.load(tmp_path / "missing")


def test_constructor_validation():
    with pytest.raises(ValueError, match="multiple of 8"):
        TwoTowerHashModel(12, ("mlp", {"in_features": 3}), ("mlp", {"in_features": 3}))
    with pytest.raises(TypeError, match="image must be a pair"):
        TwoTowerHashModel(16, "mlp", ("mlp", {"in_features": 3}))
    with pytest.raises(ValueError, match="square"):
        default_tower((3, 8, 10))


def test_initial_weights_depend_only_on_the_seed():
    a = build_two_tower(8, (4,), (5,), seed=3)
    torch.manual_seed(123)
    b = build_two_tower(8, (4,), (5,), seed=3)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, msg=name)
