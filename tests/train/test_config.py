import pytest

from hashlearn.train.config import TrainConfig, load_config_file, parse_override


def test_override_values_are_parsed():
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)
    assert parse_override("a.b=cosine") == (["a", "b"], "cosine")
    assert parse_override("a.b=none") == (["a", "b"], None)
    assert parse_override('a.b={"x": 1}') == (["a", "b"], {"x": 1})
    for bad in ("a.b", "=3", "a..b=1"):
        with pytest.raises(ValueError, match="section.key=value"):
            parse_override(bad)


def test_invalid_values_are_rejected():
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
