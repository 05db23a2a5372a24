import numpy as np
import pytest
import torch

from hashlearn.data import load_dataset
from hashlearn.losses import LOSSES, LossSpec, parse_method_name
from hashlearn.runs.deep import build_deep_method, default_backbone, train_deep_method


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(ds.data))
    return ds.data[order[:500]], ds.labels[order[:500]], ds.data[order[500:600]], ds.labels[order[500:600]]


def test_every_registered_loss_carries_its_training_defaults():
    for name, spec in LOSSES.items():
        assert isinstance(spec, LossSpec) and spec.description, name
        assert spec.supervised == (spec.cls.label_kind == "class"), name
        assert spec.lr > 0 and spec.epochs >= 1, name


def test_registered_defaults_reach_training(digits, monkeypatch):
    """A spec's lr, epochs and loss arguments are what train_deep_method uses when none are given."""
    import dataclasses

    import hashlearn.losses.registry as registry

    spec = dataclasses.replace(LOSSES["dsdh"], lr=0.02, epochs=2, loss_kwargs={"mu": 0.25})
    monkeypatch.setitem(registry.LOSSES, "dsdh", spec)
    X, y, Xv, yv = digits
    model, result = train_deep_method("dsdh", 8, X[:100], y[:100], Xv[:50], yv[:50], batch_size=50)
    assert len(result.history) == 2 and result.history[0]["lr"] == pytest.approx(0.02)
    _, objective = build_deep_method("dsdh", 8, 10, (64,))
    assert objective.locality.mu == 0.25


@pytest.mark.parametrize("method", ["dpsh", "dsdh+hswd", "hashnet+reg", "dch+swd", "csq", "greedyhash+none"])
def test_build_for_images_and_vectors(method):
    model, objective = build_deep_method(method, 16, 10, (28, 28))
    assert model.backbone_name == "small_cnn"
    outputs = model(torch.rand(4, 28, 28))
    loss = objective(outputs, torch.tensor([0, 1, 0, 2]))
    assert outputs.shape == (4, 16) and torch.isfinite(loss)
    model, _ = build_deep_method(method, 16, 10, (1280,))
    assert model.backbone_name == "mlp" and model.backbone_kwargs["in_features"] == 1280


def test_seed_fixes_initial_weights_without_touching_global_rng():
    state = torch.get_rng_state()
    a, _ = build_deep_method("dpsh", 8, 10, (64,), seed=1)
    b, _ = build_deep_method("dpsh", 8, 10, (64,), seed=1)
    c, _ = build_deep_method("dpsh", 8, 10, (64,), seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.head.linear.weight, c.head.linear.weight)


def test_loss_kwargs_and_quantization_weight_reach_the_objective():
    _, objective = build_deep_method("dsdh+hswd", 16, 10, (64,), quantization_weight=0.5, mu=2.0)
    assert objective.weight == 0.5 and objective.locality.mu == 2.0


def test_bad_names_and_shapes():
    with pytest.raises(ValueError, match="unknown loss"):
        parse_method_name("vgg+hswd")
    with pytest.raises(ValueError, match="quantizer"):
        build_deep_method("dpsh+pq", 16, 10, (64,))
    with pytest.raises(ValueError, match="input_shape"):
        default_backbone((2, 3, 4, 5))
    with pytest.raises(ValueError, match="square"):
        default_backbone((28, 30))


def test_train_supervised_and_unsupervised(digits):
    X, y, Xv, yv = digits
    model, result = train_deep_method("csq", 16, X, y, Xv, yv, epochs=3, batch_size=64)
    assert result.best_metric > 0.4  # chance level (random ranking) is about 0.1
    model, result = train_deep_method("unsupervised", 16, X, None, Xv, None, epochs=2, batch_size=128)
    # unsupervised selection uses recall 10@10 against the float 10-NN of the inputs: recompute it on
    # the kept model; random 16-bit codes score about 0.02 here, LSH 0.28, the trained model 0.34
    from hashlearn.eval.metrics import float_knn, recall_at_k

    truth = float_knn(Xv.reshape(len(Xv), -1), X.reshape(len(X), -1), 10)
    assert result.best_metric == pytest.approx(recall_at_k(model.encode(Xv), model.encode(X), truth, 10))
    assert result.best_metric > 0.15
    with pytest.raises(ValueError, match="supervised"):
        train_deep_method("dpsh", 16, X, None)
