import json

import numpy as np
import pytest
import torch

from hashlearn.errors import CorruptFileError
from hashlearn.models import Classifier, HashModel


def _model():
    torch.manual_seed(0)
    return Classifier("small_cnn", 4, {"in_channels": 1, "image_size": 8, "width": 4, "out_features": 12})


def test_forward_features_and_head():
    model = _model().eval()
    x = torch.rand(3, 8, 8)
    logits = model(x)
    assert logits.shape == (3, 4)
    assert model.features(x).shape == (3, 12)
    assert torch.allclose(model.head(model.features(x)), logits)
    assert model.head.weight.shape == (4, 12)  # one latent direction per class


def test_predict_is_argmax_in_eval_mode_and_restores_mode():
    model = _model().train()
    x = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    predicted = model.predict(x)
    assert model.training
    model.eval()
    assert np.array_equal(predicted, model(torch.from_numpy(x)).argmax(1).numpy())
    assert model.predict_logits(np.zeros((0, 8, 8), np.float32)).shape == (0, 4)


def test_save_load_round_trip(tmp_path):
    model = _model().eval()
    model.save(tmp_path)
    loaded = Classifier.load(tmp_path).eval()
    x = torch.rand(2, 8, 8)
    assert torch.equal(model(x), loaded(x))
    assert json.loads((tmp_path / "model.json").read_text())["class"] == "Classifier"


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Classifier.load(tmp_path)
    HashModel("mlp", 8, {"in_features": 4}).save(tmp_path / "hash")
    with pytest.raises(ValueError, match="HashModel"):
        Classifier.load(tmp_path / "hash")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CorruptFileError):
        Classifier.load(tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        Classifier("mlp", 1, {"in_features": 4})
    with pytest.raises(ValueError, match="backbone"):
        Classifier("resnet999", 3)
