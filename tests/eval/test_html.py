"""HTML reports: self-contained pages (inline PNGs only), escaping, sections built from what
the real code paths record (evaluate_codes, the Trainer, evaluate_attack)."""

import base64
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hashlearn.attacks import PGD
from hashlearn.attacks.evaluation import evaluate_attack, model_codes
from hashlearn.eval import evaluate_codes
from hashlearn.eval.html import (
    HtmlReport,
    add_attack,
    add_backdoor,
    add_detection,
    add_retrieval,
    add_training,
    comparison_report,
    format_value,
    main_metric,
    scalar_items,
)
from hashlearn.eval.plots import as_image, image_grid_figure
from hashlearn.methods import build_shallow
from hashlearn.models import HashModel
from hashlearn.train import Trainer, TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"


def images_of(page_html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page_html)]


def assert_self_contained(page_html: str) -> None:
    """No external asset: every src is an inline PNG, no scripts, links or remote URLs."""
    assert page_html.startswith("<!DOCTYPE html>") and page_html.rstrip().endswith("</html>")
    assert "<script" not in page_html and "<link" not in page_html and "@import" not in page_html
    assert not re.search(r"""(src|href)=["'](?!data:image/png;base64,)""", page_html)
    assert not re.search(r"url\(", page_html)
    assert all(image.startswith(PNG) for image in images_of(page_html))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    X, y = (data.data / 16).astype(np.float32), data.target
    order = np.random.default_rng(0).permutation(len(X))
    return X, y, order[:150], order[150:]


@pytest.fixture(scope="module")
def itq_metrics(digits):
    X, y, q, db = digits
    itq = build_shallow("itq", n_bits=16, random_state=0).fit(X[db])
    return evaluate_codes(itq.encode(X[q]), itq.encode(X[db]), y[q], y[db], k=100, with_pr_curve=True)


def test_page_is_self_contained_and_escapes_text(tmp_path):
    page = HtmlReport("<script>alert(1)</script> & co", subtitle="a < b")
    page.heading("<h1>")
    page.paragraph("uses `x<y` code")
    page.table([{"name": "<b>", "value": 0.123456}], caption="t & u")
    html = page.render()
    assert_self_contained(html)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<code>x&lt;y</code>" in html and "<td>&lt;b&gt;</td>" in html and '<td class="num">0.1235</td>' in html
    path = page.write(tmp_path / "r.html")
    assert path.read_text() == html or path.read_text().split("<footer>")[0] == html.split("<footer>")[0]
    with pytest.raises(IsADirectoryError, match="is a folder"):
        page.write(tmp_path)
    with pytest.raises(ValueError, match="level"):
        page.heading("x", level=1)
    with pytest.raises(ValueError, match="not a PNG"):
        page.figure(b"GIF89a...")


def test_format_and_flatten():
    assert [format_value(v) for v in (3, 0.5, 1e-7, 2.5e7, None, True, float("nan"), [1, 0.25])] == [
        "3", "0.5000", "1.000e-07", "2.500e+07", "–", "True", "nan", "1, 0.2500",
    ]
    items = dict(scalar_items({"a": 1, "b": {"c": 2.0, "d": [1, 2]}, "curve": {"k": list(range(20))}}))
    assert items == {"a": 1, "b.c": 2.0, "b.d": [1, 2]}
    assert main_metric({"P@10": 0.2, "mAP@100": 0.5}) == "mAP@100"
    assert main_metric({"recall10@10": 0.4}) == "recall10@10" and main_metric({"n": 3}) is None


def test_highlight_marks_the_best_value():
    page = HtmlReport("t")
    page.table([{"m": "a", "s": 0.2}, {"m": "b", "s": 0.7}], highlight_max=["s"])
    assert '<td class="num best">0.7000</td>' in page.render() and '<td class="num">0.2000</td>' in page.render()


def test_retrieval_section_plots_the_recorded_curves(itq_metrics):
    assert set(itq_metrics["pk_curve"]) == {"k", "precision"} and itq_metrics["pk_curve"]["k"][-1] == 100
    page = HtmlReport("run")
    add_retrieval(page, itq_metrics)
    html = page.render()
    assert_self_contained(html)
    assert page.n_figures == 2 and len(images_of(html)) == 2
    assert f"{itq_metrics['mAP@100']:.4f}" in html and "pr_curve" not in html
    bare = HtmlReport("old run")
    add_retrieval(bare, {"mAP@100": 0.5})
    assert bare.n_figures == 0 and "No PR or P@k curve" in bare.render()


def test_training_section_from_a_real_training_history(digits):
    X, y, q, db = digits
    torch.manual_seed(0)
    model = HashModel("mlp", 16, {"in_features": 64, "hidden": (32,)})
    objective = _PairwiseLoss()
    result = Trainer(TrainConfig(epochs=3, batch_size=200, lr=3e-3)).fit(model, objective, train=(X[db[:600]], y[db[:600]]), val=(X[q], y[q]))
    page = HtmlReport("train")
    add_training(page, result.history, result.to_dict())
    html = page.render()
    assert page.n_figures == 1 and html.count("<tr>") >= 3 + 1 + 4  # per-epoch rows + summary
    assert f"{result.history[-1]['train_loss']:.4f}" in html and f"{result.best_metric:.4f}" in html
    empty = HtmlReport("shallow")
    add_training(empty, [])
    assert empty.n_figures == 0 and "no training history" in empty.render()


class _PairwiseLoss(torch.nn.Module):
    def forward(self, codes, labels):
        similar = (labels[:, None] == labels[None, :]).float()
        theta = codes @ codes.T / 2
        return (torch.nn.functional.softplus(theta) - similar * theta).mean()


def test_attack_section_shows_clean_vs_attacked_and_examples(digits):
    X, y, q, db = digits
    torch.manual_seed(0)
    model = HashModel("mlp", 16, {"in_features": 64, "hidden": (32,)}).eval()
    queries = torch.from_numpy(X[q[:12]])
    attack = PGD(model, eps=0.1, steps=3)
    result = attack.attack(queries)
    report = evaluate_attack(attack, queries, y[q[:12]], model_codes(model, torch.from_numpy(X[db])), y[db], k=50, result=result)
    page = HtmlReport("attack")
    add_attack(page, "pgd", {**report, "attack_repr": repr(attack)}, (queries.numpy(), result.x_adv.numpy()))
    html = page.render()
    assert_self_contained(html)
    assert page.n_figures == 2  # bars + the 8x8 example grid
    assert f"{report['clean_map']:.4f}" in html and f"{report['adv_map']:.4f}" in html and "PGD(eps=0.1" in html
    vectors = HtmlReport("vectors")
    add_attack(vectors, "pgd", report, (np.zeros((3, 50)), np.ones((3, 50))))  # 50-d: not an image
    assert vectors.n_figures == 1 and "not images" in vectors.render()


def test_image_helpers():
    assert as_image(np.zeros(64))[0].shape == (8, 8)
    assert as_image(np.zeros((1, 28, 28)))[0].shape == (28, 28)
    assert as_image(np.zeros((3, 4, 4)))[0].shape == (4, 4, 3)
    assert as_image(np.zeros(50))[0] is None and as_image(np.zeros(9))[0] is None
    assert image_grid_figure([[np.zeros(50)]], ["x"]) is None
    assert image_grid_figure([[np.zeros(16), np.ones(16)]], ["x"], ["a", "b"]) is not None


def test_backdoor_and_detection_sections():
    page = HtmlReport("backdoor")
    record = {"metrics": {"clean_map": 0.61, "asr": 0.93}, "attack": {"attack": "badnets", "rate": 0.1}, "visibility": {"linf": 0.9}}
    add_backdoor(page, record, np.random.default_rng(0).random((4, 1, 8, 8)), ["a", "b", "c", "d"])
    add_detection(page, {"spectral": {"tpr": 0.8, "fpr": 0.05, "n_flagged": 40, "after_retraining": {"asr": 0.1}, "settings": {"expected_rate": 0.1}}})
    html = page.render()
    assert_self_contained(html)
    assert page.n_figures == 3 and "0.9300" in html and "badnets" in html and "after retraining" in html


def test_comparison_report_overlays_runs(digits):
    X, y, q, db = digits
    runs = []
    for method in ("lsh", "itq"):
        for n_bits in (8, 16, 32):
            est = build_shallow(method, n_bits=n_bits, random_state=0).fit(X[db])
            metrics = evaluate_codes(est.encode(X[q]), est.encode(X[db]), y[q], y[db], k=100, with_pr_curve=True)
            runs.append({"label": f"{method}-{n_bits}", "method": method, "n_bits": n_bits, "dataset": "digits", "metrics": metrics})
    runs.append({"label": "old", "method": "sh", "n_bits": 16, "dataset": "digits", "metrics": {"mAP@100": 0.3}})
    page = comparison_report(runs)
    html = page.render()
    assert_self_contained(html)
    assert page.n_figures == 3  # mAP vs bits, PR overlay, P@k overlay
    assert html.count("<tr>") == len(runs) + 1
    best = max(r["metrics"]["mAP@100"] for r in runs)
    assert f'<td class="num best">{best:.4f}</td>' in html
    assert "No curves recorded for: old" in html
    with pytest.raises(ValueError, match="at least one run"):
        comparison_report([])
    mixed = comparison_report([runs[0], {**runs[1], "dataset": "mnist5k"}])
    assert "not comparable" in mixed.render()
