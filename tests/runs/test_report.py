"""report.html / report.md of runs written by the real workflows, and runs compared on one page."""

import base64
import re
import shutil

import numpy as np
import pytest
import torch

from hashlearn.runs import attack_run, evaluate_run, load_run, resolve_config, train_run
from hashlearn.runs.report import N_EXAMPLES, attack_examples_path, compare_runs, run_markdown, write_run_report

DEEP = ["method.name=csq", "method.n_bits=16", "data.dataset=digits", "trainer.epochs=2", "model.hidden=[32]",
        "trainer.lr=0.01", "data.n_train=300", "data.n_database=400", "data.n_query=60"]


def shallow(name, n_bits):
    return [f"method.name={name}", f"method.n_bits={n_bits}", "data.dataset=digits", "data.n_database=500", "data.n_query=80"]


def inline_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def self_contained(html: str) -> bool:
    return "<script" not in html and "<link" not in html and not re.search(r"""(src|href)=["'](?!data:image/png;base64,)""", html)


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("runs") / "csq-16"
    train_run(resolve_config(overrides=DEEP), run_dir)
    return run_dir


def test_train_writes_both_reports_with_training_curves(deep_run):
    run = load_run(deep_run)
    html, md = run.report_html_path.read_text(), run.report_md_path.read_text()
    assert self_contained(html) and "Training loss and validation mAP per epoch" in html
    assert len(inline_pngs(html)) == 1 and inline_pngs(html)[0].startswith(b"\x89PNG")
    history = run.load_history()
    assert len(history) == 2 and f"{history[-1]['train_loss']:.4f}" in html and f"{history[-1]['train_loss']:.4f}" in md
    assert "Not evaluated yet" in html


def test_evaluate_then_attack_extend_the_report(deep_run, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(deep_run, run_dir)
    metrics = evaluate_run(run_dir, k=100)
    assert set(metrics["pk_curve"]) == {"k", "precision"} and len(metrics["pr_curve"]["precision"]) == 17
    html = (run_dir / "report.html").read_text()
    assert len(inline_pngs(html)) == 3 and f"{metrics['mAP@100']:.4f}" in html  # training, PR, P@k
    report = attack_run(run_dir, "pgd", eps=0.1, steps=3, n_queries=10, k=100)
    examples = np.load(attack_examples_path(load_run(run_dir), "pgd"))
    assert examples.shape == (2, min(10, N_EXAMPLES), 64)
    assert np.abs(examples[1] - examples[0]).max() <= 0.1 + 1e-6  # clean and adversarial rows of the same queries
    html = (run_dir / "report.html").read_text()
    assert self_contained(html) and "Attack: pgd" in html and f"{report['adv_map']:.4f}" in html
    assert len(inline_pngs(html)) == 5  # + clean-vs-attacked bars + example grid
    assert "## Attack: pgd" in (run_dir / "report.md").read_text()


def test_shallow_runs_compare_on_one_page(tmp_path):
    dirs = []
    for name in ("lsh", "itq"):
        for n_bits in (8, 16):
            run_dir = tmp_path / f"{name}-{n_bits}"
            train_run(resolve_config(overrides=shallow(name, n_bits)), run_dir)
            assert "<h2>Training</h2>" not in (run_dir / "report.html").read_text()  # shallow: fitted in one step
            evaluate_run(run_dir, k=100)
            dirs.append(run_dir)
    out = compare_runs(dirs, tmp_path / "compare.html")
    html = out.read_text()
    assert self_contained(html) and len(inline_pngs(html)) == 3  # mAP vs bits, PR overlay, P@k overlay
    for run_dir in dirs:
        assert f"<td>{run_dir.name}</td>" in html
        assert f"{load_run(run_dir).load_metrics()['mAP@100']:.4f}" in html
    md = run_markdown(dirs[0])
    assert md.startswith("# lsh · 8 bits · digits") and "| mAP@100 |" in md


def test_compare_needs_evaluated_runs(tmp_path):
    run_dir = tmp_path / "sign-8"
    train_run(resolve_config(overrides=shallow("sign", 8)), run_dir)
    with pytest.raises(FileNotFoundError, match="hashlearn evaluate"):
        compare_runs([run_dir], tmp_path / "c.html")
    with pytest.raises(ValueError, match="at least one"):
        compare_runs([], tmp_path / "c.html")
    html_path, md_path = write_run_report(run_dir)  # a report needs no metrics
    assert html_path.name == "report.html" and md_path.name == "report.md"
