"""Model-backed serving: ``hashlearn serve --model R --index db.hlx`` with a model made by
``hashlearn train`` on digits and an index made by the CLI from that model's codes."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from hashlearn.codes import reference_search


@pytest.fixture(scope="module")
def trained(tmp_path_factory, helpers):
    """A CSQ run (32 bits, 1 epoch) on digits, and an index of every digits row built from its codes."""
    from hashlearn.data import load_dataset

    folder = tmp_path_factory.mktemp("model_serving")
    run = folder / "run"
    result = helpers.cli("train", "--method", "csq", "--bits", "32", "--dataset", "digits", "--epochs", "1",
                         "--run-dir", str(run), "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    dataset = load_dataset("digits")
    index = folder / "db.hlx"
    built = helpers.cli("index", "build", "--model", str(run), "--dataset", "digits", "--part", "all", "-o", str(index), "-q",
                        timeout=300)
    if built.returncode != 0:  # a hashlearn whose `index build` takes no --model: encode, then build from codes
        np.save(folder / "X.npy", dataset.data)
        encoded = helpers.cli("encode", "--model", str(run), "--input", str(folder / "X.npy"), "-o", str(folder / "codes.npy"))
        assert encoded.returncode == 0, encoded.stderr
        built = helpers.cli("index", "build", "--codes", str(folder / "codes.npy"), "-o", str(index), "-q")
        assert built.returncode == 0, built.stderr
    from hashlearn.index.io import load_index
    from hashlearn.runs import load_run

    model = load_run(run).load_model()
    served = load_index(index, mmap=False)
    return {"run": run, "index": index, "X": dataset.data, "y": dataset.labels, "model": model,
            "codes": served.codes.copy(), "ids": served.ids.copy()}


@pytest.fixture(scope="module")
def model_server(trained, start_server):
    return start_server("--index", str(trained["index"]), "--model", str(trained["run"]))


def png(pixels: np.ndarray, format: str = "PNG") -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format)
    return base64.b64encode(buffer.getvalue()).decode()


def test_info_names_the_model(model_server, trained):
    info = model_server.get("/info").json()
    assert info["accepts"] == ["queries", "inputs", "images"]
    assert info["model"]["method"] == "csq" and info["model"]["dataset"] == "digits" and info["model"]["n_bits"] == 32
    assert "with the model of" in model_server.first_line


def test_raw_inputs_are_encoded_then_searched(model_server, trained):
    X = trained["X"][[3, 400, 1700]]
    response = model_server.post("/search", {"inputs": X.tolist(), "k": 5})
    assert response.status_code == 200
    want = reference_search(trained["model"].encode(X), trained["codes"], 5, ids=trained["ids"])
    assert response.json()["ids"] == want.ids.tolist() and response.json()["distances"] == want.distances.tolist()
    assert 3 in response.json()["ids"][0]  # the item itself is at distance 0


def test_encode_returns_the_models_codes(model_server, trained):
    X = trained["X"][:6]
    response = model_server.post("/encode", {"inputs": X.tolist()})
    assert response.status_code == 200
    assert response.json() == {"codes": [row.tobytes().hex() for row in trained["model"].encode(X)], "n_bits": 32}


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_images_are_preprocessed_like_the_training_data(model_server, trained, format):
    X = trained["X"][[7, 8]]
    pixels = [np.round(row.reshape(8, 8) * 255).astype(np.uint8) for row in X]
    response = model_server.post("/search", {"images": [png(p, format) for p in pixels], "k": 4})
    assert response.status_code == 200
    decoded = [np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(io.BytesIO(base64.b64decode(png(p, format)))))
               for p in pixels]
    want_inputs = np.stack(decoded).reshape(2, 64).astype(np.float32) / 255
    want = reference_search(trained["model"].encode(want_inputs), trained["codes"], 4, ids=trained["ids"])
    assert response.json()["ids"] == want.ids.tolist()
    if format == "PNG":  # lossless: the same codes as the training rows themselves
        assert model_server.post("/encode", {"images": [png(p) for p in pixels]}).json()["codes"] == \
            [row.tobytes().hex() for row in trained["model"].encode(X)]


def test_codes_still_work_next_to_the_model(model_server, trained):
    code = trained["codes"][10].tobytes().hex()
    response = model_server.post("/search", {"queries": [code], "k": 3})
    assert response.status_code == 200 and response.json()["distances"][0][0] == 0


def test_labels_come_with_results_when_the_index_is_of_a_dataset(model_server, trained, helpers):
    from hashlearn.index.io import read_header

    info = read_header(trained["index"]).get("info") or {}
    response = model_server.post("/search", {"inputs": trained["X"][:2].tolist(), "k": 3}).json()
    if info.get("ids") != "dataset row indices":
        pytest.skip("this hashlearn's `index build` records no dataset in the index")
    assert response["labels"] == trained["y"][np.array(response["ids"])].tolist()


@pytest.mark.parametrize(
    "body, message, loc",
    [
        ({"inputs": [[0.5] * 63]}, "64", ["inputs"]),
        ({"inputs": [[0.5] * 64, [0.5] * 10]}, "equally shaped", ["inputs"]),
        ({"inputs": [["a"] * 64]}, "numbers", ["inputs"]),
        ({"inputs": [0.5] * 64}, "one per query", ["inputs"]),
        ({"inputs": [[float("nan")] * 64]}, "NaN or infinite", ["inputs"]),  # NaN as Python's json writes it
        ({"inputs": [[255.0] * 64]}, "but the model was trained on inputs in [0, 1]", ["inputs"]),  # the recorded input spec
        ({"texts": ["a seven"]}, "does not take texts; it takes inputs, images", ["texts"]),
        ({"images": ["%%%"]}, "is not valid base64", ["images", 0]),
        ({"images": [base64.b64encode(b"GIF89a not really").decode()]}, "cannot be read as PNG or JPEG", ["images", 0]),
        ({"images": [png(np.zeros((9, 8), np.uint8))]}, "is 8x9 pixels; the model was trained on 8x8", ["images", 0]),
    ],
)
def test_bad_inputs_are_refused_with_the_field(model_server, body, message, loc):
    import json

    raw = json.dumps(body, allow_nan=True).encode()
    response = model_server.client.post("/search", content=raw)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"] and response.json()["detail"][0]["loc"] == loc


def test_model_and_index_of_different_widths_are_refused(trained, tmp_path, helpers):
    np.save(tmp_path / "wide.npy", np.random.default_rng(0).integers(0, 256, size=(50, 8), dtype=np.uint8))
    assert helpers.cli("index", "build", "--codes", str(tmp_path / "wide.npy"), "-o", str(tmp_path / "wide.hlx"), "-q").returncode == 0
    result = helpers.cli("serve", "--index", str(tmp_path / "wide.hlx"), "--model", str(trained["run"]), "--port", "0", "-q",
                         timeout=120)
    assert result.returncode != 0 and "the model makes 32-bit codes but the index holds 64-bit codes" in result.stderr
