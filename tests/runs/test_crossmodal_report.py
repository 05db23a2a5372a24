"""report.html / report.md of a cross-modal run written by the real workflows (train, evaluate, attack cmla / hag)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from hashlearn.data import dataset_available
from hashlearn.runs import attack_run, evaluate_run, load_run, resolve_config, train_run

pytestmark = pytest.mark.skipif(not dataset_available("openmoji"), reason="the openmoji packages are missing")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = resolve_config(overrides=["data.dataset=openmoji", "method.name=dcmh", "method.n_bits=16", "trainer.epochs=1",
                                       "data.n_train=120", "data.n_val=30", "data.n_query=12", "model.hidden=[32]"])
    run_dir = tmp_path_factory.mktemp("xmodal-report") / "dcmh"
    train_run(config, run_dir)
    evaluate_run(run_dir, k=50)
    attack_run(run_dir, "cmla", modality="image", steps=3, n_queries=6)
    attack_run(run_dir, "cmla", modality="text", steps=3, n_queries=6)
    attack_run(run_dir, "hag", modality="image", steps=3, n_queries=6)
    return load_run(run_dir)


def inline_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def table_row(html: str, first_cell: str) -> list[str]:
    """The cells of the first table row whose first cell is ``first_cell``."""
    match = re.search(rf"<tr><td>{re.escape(first_cell)}</td>(.*?)</tr>", html)
    assert match, f"no table row starting with {first_cell!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))


def test_retrieval_section_has_every_direction_and_the_pr_curves(run):
    html = run.report_html_path.read_text()
    metrics = json.loads(run.metrics_path.read_text())
    assert "Cross-modal retrieval" in html and "r = 0, 1, 2, ... for each direction" in html
    for direction in ("I->T", "T->I", "I->I", "T->T"):
        cells = table_row(html, direction.replace(">", "&gt;"))
        assert f"{metrics[f'{direction} mAP@all']:.4f}" in cells and f"{metrics[f'{direction} mAP@50']:.4f}" in cells
    assert all(png.startswith(b"\x89PNG") for png in inline_pngs(html))
    assert "<script" not in html


def test_attack_section_compares_cmla_and_hag(run):
    html = run.report_html_path.read_text()
    assert "Cross-modal attacks" in html
    for name, modality, cross, same in (("cmla-image", "image", "I->T", "I->I"), ("cmla-text", "text", "T->I", "T->T"),
                                        ("hag-image", "image", "I->T", "I->I")):
        report = json.loads((run.attack_dir / f"{name}.json").read_text())
        cells = table_row(html, name)
        ratio = report[f"attacked {cross} mAP"] / report[f"clean {cross} mAP"]
        same_ratio = report[f"attacked {same} mAP"] / report[f"clean {same} mAP"]
        assert cells[0] == modality and f"{ratio:.4f}" in cells and f"{same_ratio:.4f}" in cells
        assert f"{report['mean distortion']:.4f}" in cells
    md = run.report_md_path.read_text()
    assert "## Cross-modal retrieval" in md and "## Cross-modal attacks" in md and "| cmla-text | text |" in md
