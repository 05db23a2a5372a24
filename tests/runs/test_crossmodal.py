"""The cross-modal workflows on a run trained by train_run (openmoji, tiny)."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.data import dataset_available
from hashlearn.runs import evaluate_run, load_run, resolve_config, train_run
from hashlearn.runs.crossmodal import crossmodal_index_codes, modality_inputs, query_inputs

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = resolve_config(overrides=["data.dataset=openmoji", "method.name=ssah+hswd", "method.n_bits=16", "trainer.epochs=1",
                                       "data.n_train=120", "data.n_val=30", "data.n_query=10", "model.hidden=[32]"])
    run_dir = tmp_path_factory.mktemp("xmodal-runs") / "ssah"
    train_run(config, run_dir)
    return load_run(run_dir)


def test_text_queries_search_the_image_side(run):
    from hashlearn.data import load_dataset

    dataset = load_dataset("openmoji")
    model = run.load_model()
    text = dataset.texts[run.load_split().query[0]]
    inputs = query_inputs(run, [text], "text", dataset=dataset)
    np.testing.assert_array_equal(inputs, modality_inputs(dataset, run.load_split().query[:1], "pixels", "text"))
    image_codes, ids = crossmodal_index_codes(run, "image", dataset=dataset)
    assert image_codes.shape == (len(ids), 2) and model.encode(inputs, "text").shape == (1, 2)
    with pytest.raises(TypeError, match="list of str"):
        query_inputs(run, "grinning face", "text", dataset=dataset)


def test_evaluate_matches_the_codes_it_keeps(run):
    from hashlearn.eval.crossmodal import crossmodal_map

    results = evaluate_run(run, k=50)
    codes = {name: np.load(run.codes_dir / f"{name}_codes.npy") for name in ("query_image", "query_text", "database_image", "database_text")}
    ids = np.load(run.codes_dir / "query_image_ids.npy"), np.load(run.codes_dir / "database_image_ids.npy")
    from hashlearn.data import load_dataset

    labels = load_dataset("openmoji").labels
    maps = crossmodal_map(codes["query_image"], codes["query_text"], codes["database_image"], codes["database_text"],
                          labels[ids[0]], labels[ids[1]], k=None)
    assert results["T->I mAP@all"] == pytest.approx(maps["T->I"]) and results["I->I mAP@all"] == pytest.approx(maps["I->I"])


def test_single_modal_methods_are_refused_on_pairs(tmp_path):
    config = resolve_config(overrides=["data.dataset=openmoji", "method.name=dpsh", "trainer.epochs=1"])
    with pytest.raises(ValueError, match="cross-modal method"):
        train_run(config, tmp_path / "r")
