"""Cross-modal serving: ``hashlearn serve --model R`` with a two-tower run on openmoji (made by ``hashlearn
train``) answers texts with images and images with texts, from indexes made by ``hashlearn index build
--modality``; each answer is checked against the run's own towers and an exact reference search."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from hashlearn.codes import reference_search
from hashlearn.data import dataset_available

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")


@pytest.fixture(scope="module")
def xmodal(tmp_path_factory, helpers):
    """A DCMH run (32 bits, 1 epoch, 200 training pairs) and one index per side of its database pairs."""
    from hashlearn.cli.main import main

    folder = tmp_path_factory.mktemp("xmodal_serving")
    run = folder / "run"
    # the commands a user runs (in this process: the servers below are the subprocesses)
    assert main(["train", "--dataset", "openmoji", "--method", "dcmh", "--bits", "32", "--epochs", "1", "-q",
                 "--set", "data.n_train=200", "--set", "data.n_val=40", "--set", "data.n_query=20",
                 "--set", "model.hidden=[64]", "--run-dir", str(run)]) == 0
    indexes = {}
    for modality in ("image", "text"):
        indexes[modality] = folder / f"{modality}s.hlx"
        assert main(["index", "build", "--model", str(run), "--dataset", "openmoji", "--modality", modality,
                     "-o", str(indexes[modality]), "-q"]) == 0
    from hashlearn.data import load_dataset
    from hashlearn.index.io import load_index
    from hashlearn.runs import load_run

    loaded = load_run(run)
    served = {m: load_index(path, mmap=False) for m, path in indexes.items()}
    return {"run": run, "indexes": indexes, "model": loaded.load_model(), "dataset": load_dataset("openmoji"),
            "codes": {m: (i.codes.copy(), i.ids.copy()) for m, i in served.items()}}


@pytest.fixture(scope="module")
def image_server(xmodal, start_server):
    return start_server("--index", str(xmodal["indexes"]["image"]), "--model", str(xmodal["run"]))


@pytest.fixture(scope="module")
def text_server(xmodal, start_server):
    return start_server("--index", str(xmodal["indexes"]["text"]), "--model", str(xmodal["run"]))


def png(pixels_chw: np.ndarray, mode: str = "RGB") -> str:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels_chw.transpose(1, 2, 0)))
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def expected(xmodal, codes, modality_of_index, k):
    db_codes, db_ids = xmodal["codes"][modality_of_index]
    result = reference_search(codes, db_codes, k)
    return db_ids[result.ids].tolist(), result.distances.tolist()


def test_info_names_the_directions(image_server, text_server):
    info = image_server.get("/info").json()
    assert info["accepts"] == ["queries", "texts", "images"]
    assert info["model"]["cross_modal"] is True and info["model"]["index_modality"] == "image"
    assert info["model"]["directions"] == {"texts": "T->I", "images": "I->I"}
    assert text_server.get("/info").json()["model"]["directions"] == {"texts": "T->T", "images": "I->T"}


def test_text_query_returns_images(image_server, xmodal):
    """T->I: a text never seen in training, through the bag-of-words of the data set's vocabulary and the text tower."""
    from hashlearn.data.paired import bag_of_words

    texts = ["red apple fruit", "smiling face with hearts"]
    response = image_server.post("/search", {"texts": texts, "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    vocabulary = xmodal["dataset"].meta["vocabulary"]
    codes = xmodal["model"].encode(bag_of_words(texts, vocabulary), "text")
    ids, distances = expected(xmodal, codes, "image", 7)
    assert body["ids"] == ids and body["distances"] == distances
    labels = xmodal["dataset"].labels
    assert body["labels"][0][0] == np.flatnonzero(labels[ids[0][0]]).tolist()  # labels of the returned images
    encoded = image_server.post("/encode", {"texts": texts}).json()
    assert encoded["codes"] == [row.tobytes().hex() for row in codes]


def test_image_query_returns_texts(text_server, xmodal):
    """I->T: a rendered emoji sent as PNG, through the image tower, against the index of database texts."""
    dataset = xmodal["dataset"]
    pixels = dataset.images[[3, 100]]  # (2, 3, 32, 32) uint8
    response = text_server.post("/search", {"images": [png(p) for p in pixels], "k": 5})
    assert response.status_code == 200, response.text
    codes = xmodal["model"].encode(pixels.astype(np.float32) / 255, "image")
    ids, distances = expected(xmodal, codes, "text", 5)
    assert response.json()["ids"] == ids and response.json()["distances"] == distances


def test_transparent_pngs_are_put_on_white_like_the_renders(text_server, xmodal):
    pixels = xmodal["dataset"].images[7]
    rgba = np.concatenate([pixels, np.full((1, *pixels.shape[1:]), 255, np.uint8)])
    white = (pixels == 255).all(axis=0)
    rgba[3][white] = 0  # the white background made transparent (its colour channels set to black)
    rgba[:3, white] = 0
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba.transpose(1, 2, 0), "RGBA").save(buffer, "PNG")
    sent = base64.b64encode(buffer.getvalue()).decode()
    got = text_server.post("/encode", {"images": [sent]}).json()["codes"]
    want = xmodal["model"].encode(pixels[None].astype(np.float32) / 255, "image")
    assert got == [want[0].tobytes().hex()]


@pytest.mark.parametrize("body, message", [
    ({"images": [None]}, "images"),
    ({"texts": ["   "], "k": 3}, "texts[0]: is empty"),
    ({"inputs": [[0.0] * 974], "k": 3}, "does not take inputs"),
])
def test_bad_queries_are_refused_with_the_field(image_server, body, message):
    response = image_server.post("/search", body)
    assert response.status_code == 422 and message in response.json()["error"]


def test_wrong_image_size_is_refused(image_server, xmodal):
    big = np.repeat(np.repeat(xmodal["dataset"].images[0], 2, axis=1), 2, axis=2)  # 64x64
    response = image_server.post("/search", {"images": [png(big)], "k": 3})
    assert response.status_code == 422
    assert "images[0]: is 64x64 pixels; the image tower was trained on 32x32 RGB images" in response.json()["error"]
