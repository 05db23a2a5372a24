import numpy as np
import pytest
import torch

from hashlearn.attacks import ATTACKS, ProSGAN
from hashlearn.attacks.prosgan import Generator, model_fingerprint
from hashlearn.codes import hamming_distances
from hashlearn.errors import CorruptFileError, NotFittedError
from hashlearn.models import HashModel

FAST = dict(epochs=2, prototype_steps=30, train_batch_size=64)


@pytest.fixture(scope="module")
def fitted(trained_model, digits):
    x, y = digits
    options = {**FAST, "epochs": 8, "lr": 3e-3}
    return ProSGAN(trained_model, eps=0.2, seed=0, **options).fit(x[:600], y[:600].numpy(), x[1200:1300], y[1200:1300].numpy())


@pytest.fixture(scope="module")
def image_victim():
    """A small CNN on 8x8 images: the convolutional generator and discriminator."""
    torch.manual_seed(0)
    return HashModel("small_cnn", 16, {"in_channels": 1, "image_size": 8, "width": 4, "out_features": 16}).eval()


def test_registered_under_its_name():
    assert ATTACKS["prosgan"] is ProSGAN and ProSGAN.targeted and ProSGAN.needs_training


def test_budget_range_and_records(fitted, queries):
    x, y = queries
    result = fitted.attack(x, target_labels=(y + 1) % 10)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert (result.x_adv - x).abs().max() <= 0.2 + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert torch.equal(fitted.generate(x, (y + 1) % 10), result.x_adv)
    assert sorted(result.records) == ["bits_flipped", "bits_to_target", "l2", "linf", "rmse"]
    np.testing.assert_allclose(result.records["linf"], (result.x_adv - x).abs().amax(dim=1).numpy(), atol=1e-7)


def test_image_generator_keeps_budget_and_range(image_victim, digits):
    x, y = digits
    images = x[:200].reshape(-1, 8, 8)
    attack = ProSGAN(image_victim, eps=8 / 255, width=4, semantic_dim=8, **FAST).fit(images, y[:200].numpy())
    assert attack.generator_.geometry == (1, 8, 8)  # the convolutional path, not the MLP
    result = attack.attack(images[:20], target_labels=np.arange(20) % 10)
    assert result.x_adv.shape == (20, 8, 8)
    assert (result.x_adv - images[:20]).abs().max() <= 8 / 255 + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_l2_budget(trained_model, digits):
    x, y = digits
    attack = ProSGAN(trained_model, eps=0.5, norm="l2", **FAST).fit(x[:300], y[:300].numpy())
    result = attack.attack(x[1500:1520], target_labels=np.zeros(20, int))
    assert result.records["l2"].max() <= 0.5 + 1e-5


def test_codes_move_toward_the_target_prototypes(fitted, trained_model, queries):
    x, y = queries
    targets = (y + 3) % 10
    prototypes = fitted.target_codes_for(targets)
    before = hamming_distances(trained_model.encode(x), prototypes).diagonal().mean()
    after = fitted.attack(x, target_labels=targets).records["bits_to_target"].mean()
    assert after < 0.9 * before


def test_prototypes_are_the_learned_class_codes(fitted, trained_model, digits):
    """The PrototypeNet's code of a class is closer to that class's training codes than to the others'."""
    x, y = digits
    codes, labels = trained_model.encode(x[:600]), y[:600].numpy()
    prototypes = fitted.target_codes_for(np.arange(10))
    distances = hamming_distances(prototypes, codes)  # (10, 600)
    own = np.array([distances[c, labels == c].mean() for c in range(10)])
    other = np.array([distances[c, labels != c].mean() for c in range(10)])
    assert (own < other).mean() >= 0.8


def test_victim_modes_weights_and_grads_left_alone(digits):
    x, y = digits
    torch.manual_seed(1)
    victim = HashModel("mlp", 16, {"in_features": 64, "hidden": (32,), "dropout": 0.1})
    victim.train()
    victim.backbone.eval()  # a mixed state, restored module by module
    modes = [m.training for m in victim.modules()]
    weights = {k: v.clone() for k, v in victim.state_dict().items()}
    attack = ProSGAN(victim, eps=0.1, **FAST).fit(x[:300], y[:300].numpy())
    assert [m.training for m in victim.modules()] == modes
    attack.attack(x[1500:1510], target_labels=np.ones(10, int))
    assert [m.training for m in victim.modules()] == modes
    assert all(p.grad is None and p.requires_grad for p in victim.parameters())
    assert all(torch.equal(weights[k], v) for k, v in victim.state_dict().items())


def test_fixed_seed_gives_the_same_attack(trained_model, digits):
    x, y = digits
    runs = [ProSGAN(trained_model, eps=0.1, seed=seed, **FAST).fit(x[:300], y[:300].numpy()) for seed in (3, 3, 4)]
    outputs = [a.attack(x[1500:1530], target_labels=np.arange(30) % 10).x_adv for a in runs]
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])
    assert all(torch.equal(a, b) for a, b in zip(runs[0].generator_.state_dict().values(), runs[1].generator_.state_dict().values()))


def test_save_load_round_trip(fitted, trained_model, queries, tmp_path):
    x, y = queries
    fitted.save(tmp_path / "gen")
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["prosgan.json", "prosgan.safetensors"]
    loaded = ProSGAN.load(tmp_path / "gen", trained_model)
    targets = (y + 5) % 10
    assert torch.equal(loaded.attack(x, target_labels=targets).x_adv, fitted.attack(x, target_labels=targets).x_adv)
    assert loaded.eps == fitted.eps and loaded.training_["selected_epoch"] == fitted.training_["selected_epoch"]


def test_load_refuses_damaged_files_and_other_victims(fitted, train_model, digits, tmp_path):
    x, y = digits
    fitted.save(tmp_path / "gen")
    other = train_model(x[:300], y[:300], epochs=1, seed=7)
    with pytest.raises(ValueError, match="another model"):
        ProSGAN.load(tmp_path / "gen", other)
    weights = tmp_path / "gen" / "prosgan.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum"):
        ProSGAN.load(tmp_path / "gen", fitted.model)
    weights.write_bytes(bytes(data[:-8]))
    with pytest.raises(CorruptFileError):
        ProSGAN.load(tmp_path / "gen", fitted.model)
    (tmp_path / "gen" / "prosgan.json").write_text("{not json")
    with pytest.raises(CorruptFileError):
        ProSGAN.load(tmp_path / "gen", fitted.model)
    with pytest.raises(FileNotFoundError):
        ProSGAN.load(tmp_path / "nothing", fitted.model)


def test_from_options_trains_once_then_reuses(trained_model, digits, tmp_path):
    x, y = digits
    train = dict(train_inputs=x[:300], train_labels=y[:300].numpy(), save_dir=tmp_path / "gen")
    first = ProSGAN.from_options(trained_model, eps=0.1, steps=100, seed=0, **FAST, **train)
    again = ProSGAN.from_options(trained_model, eps=0.1, steps=100, seed=0, **FAST, **train)
    assert not first.reused_ and again.reused_
    q = x[1500:1510]
    assert torch.equal(first.attack(q, target_labels=np.zeros(10, int)).x_adv, again.attack(q, target_labels=np.zeros(10, int)).x_adv)
    other_budget = ProSGAN.from_options(trained_model, eps=0.2, seed=0, **FAST, **train)  # another budget: trained anew
    assert not other_budget.reused_ and ProSGAN.load(tmp_path / "gen", trained_model).eps == 0.2
    with pytest.raises(ValueError, match="train_inputs"):
        ProSGAN.from_options(trained_model, eps=0.1)


def test_one_forward_pass_is_fast(fitted, queries):
    x, y = queries
    result = fitted.attack(x, target_labels=(y + 1) % 10)
    assert result.seconds_per_query < 0.01  # no per-query optimisation


def test_invalid_use_raises_typed_errors(trained_model, fitted, queries):
    x, y = queries
    with pytest.raises(NotFittedError):
        ProSGAN(trained_model).attack(x, target_labels=y)
    with pytest.raises(ValueError, match="target_labels"):
        fitted.attack(x)
    with pytest.raises(ValueError, match="not target_codes"):
        fitted.attack(x, target_codes=trained_model.encode(x))
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\)"):
        fitted.attack(x, target_labels=np.full(len(x), 10))
    with pytest.raises(ValueError, match="one class id per query"):
        fitted.attack(x, target_labels=[1, 2])
    with pytest.raises(ValueError, match="shape"):
        fitted.attack(x[:, :32], target_labels=y)
    with pytest.raises(ValueError, match="steps must be 1"):
        ProSGAN(trained_model, steps=10)
    for bad in (dict(epochs=0), dict(lr=-1.0), dict(hash_weight=-1.0), dict(n_classes=1), dict(eps=-0.1)):
        with pytest.raises(ValueError):
            ProSGAN(trained_model, **bad)


def test_generator_output_is_bounded_before_scaling():
    torch.manual_seed(0)
    for shape in ((1, 8, 8), (12,), (3, 6, 6)):  # conv path; MLP path; sides not divisible by 4 -> MLP
        generator = Generator(shape, semantic_dim=4, width=4)
        raw = generator(torch.rand(5, *shape) * 10, torch.randn(5, 4))
        assert raw.shape == (5, *shape) and raw.abs().max() <= 1


def test_fingerprint_tracks_the_weights(trained_model):
    import copy

    twin = copy.deepcopy(trained_model)
    assert model_fingerprint(twin) == model_fingerprint(trained_model)
    with torch.no_grad():
        twin.head.linear.bias[0] += 1e-3
    assert model_fingerprint(twin) != model_fingerprint(trained_model)
