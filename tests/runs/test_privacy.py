"""The privacy workflow on a run made by the real train path, and the two-party vertical split."""

import json

import numpy as np
import pytest

from hashlearn.runs import resolve_config, train_run
from hashlearn.runs.privacy import privacy_run, vertical_split_experiment

TINY_DECODER = {"hidden": (32,), "epochs": 2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("privacy") / "csq-16"
    config = resolve_config(overrides=["method.name=csq", "method.n_bits=16", "data.dataset=digits", "trainer.epochs=1", "model.hidden=[32]"])
    train_run(config, path)
    return path


def test_privacy_run_writes_the_report_and_the_run_page(run_dir):
    report = privacy_run(run_dir, n_auxiliary=300, n_queries=40, n_database=500, k=100, decoder=TINY_DECODER)
    assert json.loads((run_dir / "privacy" / "privacy.json").read_text())["n_queries"] == 40
    reps = report["representations"]
    assert list(reps) == ["features", "outputs", "codes"]
    assert reps["codes"]["dim"] == 16 and reps["outputs"]["dim"] == 16 and reps["features"]["dim"] == 32
    for values in reps.values():
        assert values["psnr"] > 0 and -1 <= values["ssim"] <= 1 and 0 <= values["mAP@100"] <= 1
    assert set(report["baselines"]) == {"mean input", "class mean (label known)"}
    examples = np.load(run_dir / "privacy" / "examples.npy")
    assert examples.shape == (4, 6, 64) and examples.min() >= 0 and examples.max() <= 1
    page = (run_dir / "report.html").read_text()
    assert "Privacy: reconstruction from released representations" in page and "baseline: class mean" in page
    assert "| codes | 16 bits |" in (run_dir / "report.md").read_text()


def test_privacy_run_is_deterministic(run_dir):
    first = privacy_run(run_dir, n_auxiliary=200, n_queries=20, n_database=300, k=50, decoder=TINY_DECODER, seed=3)
    second = privacy_run(run_dir, n_auxiliary=200, n_queries=20, n_database=300, k=50, decoder=TINY_DECODER, seed=3)
    for kind in ("features", "outputs", "codes"):
        assert first["representations"][kind]["psnr"] == second["representations"][kind]["psnr"]


def test_privacy_run_refuses_bad_settings(run_dir):
    with pytest.raises(ValueError, match="unknown decoder setting"):
        privacy_run(run_dir, decoder={"layers": 3})
    with pytest.raises(ValueError, match="n_auxiliary"):
        privacy_run(run_dir, n_auxiliary=5)


@pytest.fixture(scope="module")
def digit_images():
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    return (images[:900], data.target[:900]), (images[900:1100], data.target[900:1100]), (images[1100:1300], data.target[1100:1300])


@pytest.mark.parametrize("hashed", [False, True])
def test_vertical_split_experiment(digit_images, hashed):
    train, val, test = digit_images
    out = vertical_split_experiment(train, val, test, hash_embeddings=hashed, embedding_dim=8, epochs=3, n_auxiliary=500,
                                    decoder=TINY_DECODER)
    assert out["party_columns"] == [4, 8] and out["hash_embeddings"] is hashed
    assert out["test_accuracy"] > 0.3  # ten classes: well above chance after 3 epochs
    assert out["examples"].shape == (2, 6, 8, 4)
    assert out["reconstruction"]["ssim"] is not None and out["reconstruction"]["psnr"] > 0
    with pytest.raises(ValueError, match="attacked_party"):
        vertical_split_experiment(train, val, test, hash_embeddings=hashed, attacked_party=2, epochs=1)
