import json

import pytest

from hashlearn.losses import LOSSES
from hashlearn.runs.config import RunConfig, resolve_config


def test_defaults_round_trip_through_dict():
    config = RunConfig()
    assert RunConfig.from_dict(config.to_dict()) == config
    backdoor = RunConfig.from_dict({"backdoor": {"attack": "wb", "victim": "hash"}, "method": {"name": "csq"}})
    assert backdoor.backdoor.attack == "wb" and RunConfig.from_dict(backdoor.to_dict()) == backdoor
    assert "backdoor" not in config.to_dict()


def test_toml_and_json_files_then_overrides(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[trainer]\nlr = 0.01\nepochs = 3\n[method]\nname = "dsdh+hswd"\nn_bits = 64\n[method.loss]\nmu = 0.5\n')
    config = resolve_config(toml, overrides=["trainer.epochs=5", "model.hidden=[512,256]", "method.loss.nu=2"])
    assert config.trainer.lr == 0.01 and config.trainer.epochs == 5
    assert config.method.name == "dsdh+hswd" and config.method.n_bits == 64
    assert config.method.loss == {"classification": "ce", "mu": 0.5, "nu": 2}  # the registered dsdh setting, then the file, then the override
    assert config.model.hidden == [512, 256]
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps(config.to_dict()))
    assert resolve_config(as_json) == config


def test_registered_loss_defaults_are_a_layer_under_the_user(monkeypatch):
    import dataclasses

    import hashlearn.losses.registry as registry

    monkeypatch.setitem(registry.LOSSES, "dch", dataclasses.replace(LOSSES["dch"], lr=0.005, epochs=7, loss_kwargs={"gamma": 3.0}, by_input={}))
    config = resolve_config(overrides=["method.name=dch+hswd"])
    assert (config.trainer.lr, config.trainer.epochs, config.method.loss) == (0.005, 7, {"gamma": 3.0})
    config = resolve_config(overrides=["method.name=dch", "trainer.lr=0.1", "method.loss.gamma=1.0"])
    assert (config.trainer.lr, config.trainer.epochs, config.method.loss) == (0.1, 7, {"gamma": 1.0})
    assert resolve_config(overrides=["method.name=itq"]).trainer.lr == RunConfig().trainer.lr


@pytest.mark.parametrize(
    "override, key",
    [("trainer.learning_rate=1", "trainer.learning_rate"), ("trainr.lr=1", "trainr"), ("model.hidden.x=1", "model.hidden.x"),
     ("backdoor.nope=1", "backdoor.nope")],
)
def test_unknown_key_is_an_error_naming_valid_keys(override, key):
    with pytest.raises(ValueError) as info:
        resolve_config(overrides=[override])
    assert key in str(info.value)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"trainer": {"epoch": 3}}')
    with pytest.raises(ValueError, match="trainer.epoch'.*epochs"):
        resolve_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.scheduler=linear", "trainer.scheduler"),
        ("model.hidden=[-1]", "model.hidden"),
        ("model.hidden=3", "model.hidden"),
        ("model.dropout=1.5", "model.dropout"),
        ("model.backbone=resnet", "model.backbone"),
        ("method.n_bits=12", "method.n_bits"),
        ("method.n_bits=2048", "method.n_bits"),
        ("method.name=vgg", "method.name"),
        ("method.quantization_weight=-1", "method.quantization_weight"),
        ("data.features=rgb", "data.features"),
        ("data.n_train=0", "data.n_train"),
        ("data.seed=-3", "data.seed"),
        ("backdoor.rate=0", "backdoor.rate"),
        ("backdoor.attack=nope", "backdoor.attack"),
    ],
)
def test_every_section_is_validated(override, message):
    with pytest.raises((ValueError, TypeError), match=message.replace(".", r"\.")):
        resolve_config(overrides=[override])


def test_classifier_name_only_for_backdoor_classifier_victims():
    with pytest.raises(ValueError, match="classifier"):
        resolve_config(overrides=["method.name=classifier"])
    config = RunConfig.from_dict({"method": {"name": "classifier"}, "backdoor": {"victim": "classifier"}})
    assert config.method.name == "classifier"
