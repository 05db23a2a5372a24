import json

import pytest

from hashlearn.train.config import RunConfig, TrainConfig, load_config_file, parse_override, resolve_config


def test_defaults_round_trip_through_dict():
    config = RunConfig()
    assert RunConfig.from_dict(config.to_dict()) == config


def test_toml_and_json_files_then_overrides(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[trainer]\nlr = 0.01\nepochs = 3\n[method]\nname = "dsdh+hswd"\nn_bits = 64\n[method.loss]\nmu = 0.5\n')
    config = resolve_config(toml, overrides=["trainer.epochs=5", "model.hidden=[512,256]", "method.loss.nu=2"])
    assert config.trainer.lr == 0.01 and config.trainer.epochs == 5
    assert config.method.name == "dsdh+hswd" and config.method.n_bits == 64
    assert config.method.loss == {"mu": 0.5, "nu": 2}
    assert config.model.hidden == [512, 256]
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps(config.to_dict()))
    assert resolve_config(as_json) == config


@pytest.mark.parametrize(
    "override, key",
    [("trainer.learning_rate=1", "trainer.learning_rate"), ("trainr.lr=1", "trainr"), ("model.hidden.x=1", "model.hidden.x")],
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


def test_override_values_are_parsed():
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)
    assert parse_override("a.b=cosine") == (["a", "b"], "cosine")
    assert parse_override("a.b=none") == (["a", "b"], None)
    assert parse_override('a.b={"x": 1}') == (["a", "b"], {"x": 1})
    for bad in ("a.b", "=3", "a..b=1"):
        with pytest.raises(ValueError, match="section.key=value"):
            parse_override(bad)


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError, match="trainer.scheduler"):
        resolve_config(overrides=["trainer.scheduler=linear"])
    with pytest.raises(ValueError, match="trainer.lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(TypeError, match="trainer.epochs"):
        TrainConfig(epochs=2.5)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "missing.toml")
    (tmp_path / "c.yaml").write_text("a: 1")
    with pytest.raises(ValueError, match=".json or .toml"):
        load_config_file(tmp_path / "c.yaml")
    (tmp_path / "c.toml").write_text("a = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config_file(tmp_path / "c.toml")
