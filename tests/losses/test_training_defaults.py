"""The registered training defaults: what ``hashlearn train`` uses, and that it beats ITQ."""

import time

import pytest

from hashlearn.losses import DEFAULT_METHOD, INPUT_KINDS, LOSSES, training_defaults
from hashlearn.runs.config import MethodConfig, resolve_config
from hashlearn.runs.presets import PRESETS


def test_every_supervised_single_modal_loss_has_defaults_for_every_input_kind():
    for name, spec in LOSSES.items():
        if spec.supervised and not getattr(spec.cls, "cross_modal", False):  # dcmh, ssah, lifelong-crossmodal: paired
            assert set(spec.by_input) == set(INPUT_KINDS), name
            for kind in INPUT_KINDS:
                values = training_defaults(name, kind)
                assert values["lr"] > 0 and values["epochs"] >= 1 and values["quantization_weight"] > 0


def test_config_takes_the_defaults_of_its_input_kind_and_user_values_win():
    assert MethodConfig().name == DEFAULT_METHOD
    config = resolve_config(overrides=["data.features=minilm", "method.name=dsdh+hswd"])
    expected = training_defaults("dsdh+hswd", "minilm")
    assert (config.trainer.lr, config.trainer.epochs, config.method.quantization_weight) == (expected["lr"], expected["epochs"], expected["quantization_weight"])
    config = resolve_config(overrides=["data.features=minilm", "method.name=dsdh+hswd", "trainer.lr=0.5", "method.quantization_weight=2.0"])
    assert (config.trainer.lr, config.method.quantization_weight) == (0.5, 2.0)
    assert resolve_config(overrides=["method.name=csq"]).method.quantization_weight is None  # no quantizer, no weight


def test_paper_preset_sets_the_official_settings_under_user_overrides():
    config = resolve_config(overrides=["method.name=dpsh+swd"], preset="paper")
    assert (config.trainer.optimizer, config.trainer.lr, config.trainer.epochs, config.trainer.batch_size) == ("adam", 1e-5, 200, 64)
    assert config.method.quantization_weight == 0.1 and config.method.quantizer["swd"] == {"n_projections": 10000}
    assert resolve_config(overrides=["trainer.epochs=3"], preset="paper").trainer.epochs == 3
    assert resolve_config(preset="hashlearn") == resolve_config()
    assert set(PRESETS) == {"hashlearn", "paper"}
    with pytest.raises(ValueError, match="preset"):
        resolve_config(preset="fast")


def test_paper_preset_builds_the_sampled_target_and_10000_projections(tmp_path):
    from hashlearn.runs.train import quantizer_arguments

    config = resolve_config(overrides=["method.name=dpsh+hswd"], preset="paper")
    assert quantizer_arguments(config) == {"target": "sample"}
    config = resolve_config(overrides=["method.name=dpsh+swd"], preset="paper")
    assert quantizer_arguments(config) == {"n_projections": 10000}
    assert quantizer_arguments(resolve_config(overrides=["method.name=dpsh"], preset="paper")) is None


def test_default_train_beats_itq_by_a_clear_margin_on_fashion_mnist(tmp_path):
    """The default ``hashlearn train --dataset fashion-mnist`` (csq, 32 bits) vs ITQ-32 on the same split.

    Small size: 2,000 training images, 2 epochs (the default trains 8), 500 queries,
    5,000 database items; ITQ through the same run workflow. Full size (5,000 /
    69,000 / 1,000, 8 epochs) is measured in benchmarks/results/hashing.md.
    """
    from hashlearn.runs import evaluate_run, train_run

    sizes = ["data.dataset=fashion-mnist", "data.n_train=2000", "data.n_val=500", "data.n_query=500", "data.n_database=5000"]
    started = time.process_time()
    deep = resolve_config(overrides=sizes + ["trainer.epochs=2"])
    assert deep.method.name == DEFAULT_METHOD and deep.method.n_bits == 32
    train_run(deep, tmp_path / "deep")
    deep_map = evaluate_run(tmp_path / "deep")["mAP@1000"]
    train_run(resolve_config(overrides=sizes + ["method.name=itq"]), tmp_path / "itq")
    itq_map = evaluate_run(tmp_path / "itq")["mAP@1000"]
    assert deep_map >= itq_map + 0.10, (deep_map, itq_map)
    assert time.process_time() - started < 60  # about 15 CPU seconds on an idle core


def test_loss_settings_are_the_ones_their_validation_sweep_chose():
    """The registered eta of ``triplet`` and classifier of ``dsdh`` come from ``benchmarks/loss_settings_sweep.py``'s recorded cells."""
    import json
    import sys
    from pathlib import Path

    from hashlearn.losses import build_objective

    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        from loss_settings_sweep import choose
    finally:
        sys.path.remove(str(benchmarks))
    cells = json.loads((benchmarks / "results" / "loss_settings_sweep.json").read_text())["cells"]
    chosen = choose(cells, "triplet", "fmnist-efficientnet")
    assert LOSSES["triplet"].loss_kwargs["eta"] == chosen
    assert build_objective("triplet", 16, 10).locality.eta == chosen  # what `hashlearn train --method triplet` builds
    assert build_objective("triplet", 16, 10, eta=0.5).locality.eta == 0.5  # a user's value wins
    for dataset in ("fmnist-efficientnet", "openmoji-efficientnet"):  # dsdh's classifier: the same choice on both
        assert choose(cells, "dsdh", dataset) == LOSSES["dsdh"].loss_kwargs["classification"]
    assert build_objective("dsdh+hswd", 16, 10).locality.classification == "ce"
