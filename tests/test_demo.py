import json

from hashlearn.demo import DemoConfig, run_demo


def test_demo_on_digits_writes_report_and_itq_beats_lsh(tmp_path):
    messages = []
    config = DemoConfig(dataset="digits", bits=[32], k=100)
    run_dir, rows = run_demo(config, run_root=tmp_path, say=messages.append)
    for name in ("report.md", "metrics.json", "demo.json", "pr_curves.png"):
        assert (run_dir / name).exists(), name
    scores = {row["method"]: row["mAP@100"] for row in rows}
    assert scores["itq"] > scores["lsh"]
    assert scores["csq"] > scores["lsh"] and 0 < scores["csq+hswd"] <= 1  # the deep model learned something
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["split"]["query"] == 200 and len(saved["results"]) == 4
    assert "| itq | 32 |" in (run_dir / "report.md").read_text()


def test_demo_models_are_runs_every_command_accepts(tmp_path, capsys):
    """evaluate, encode, index build and attack take the demo's saved models as they are."""
    import numpy as np

    from hashlearn.cli.main import main
    from hashlearn.data import load_dataset
    from hashlearn.runs import load_run

    config = DemoConfig(dataset="digits", bits=[16], k=100, deep_methods=["csq"], deep_epochs=1)
    run_dir, rows = run_demo(config, run_root=tmp_path, say=lambda message: None)
    assert sorted(row["run"] for row in rows) == ["csq-32", "itq-16", "lsh-16"]
    digits = load_dataset("digits")
    for row in rows:
        run = load_run(run_dir / row["run"])
        codes, ids = run.load_codes("query")
        np.testing.assert_array_equal(codes, run.load_model().encode(digits.data[ids]))
        capsys.readouterr()
        assert main(["evaluate", "--model", str(run.path), "-k", "100", "--json", "-q"]) == 0
        assert json.loads(capsys.readouterr().out)["mAP@100"] == row["mAP@100"]  # the same codes the demo table reports
        assert main(["encode", "--model", str(run.path), "--dataset", "digits", "--part", "all", "-q"]) == 0
        assert main(["index", "build", "--model", str(run.path), "--dataset", "digits", "-o", str(tmp_path / f"{row['run']}.hlx"), "-q"]) == 0
    assert main(["attack", "--model", str(run_dir / "csq-32"), "--attack", "fgsm", "--eps", "0.1", "--n-queries", "5", "-k", "50", "-q"]) == 0
    capsys.readouterr()
    assert main(["attack", "--model", str(run_dir / "itq-16"), "-q"]) == 2
    assert "holds a ITQ" in capsys.readouterr().err


def test_demo_announces_fallback(tmp_path):
    messages = []
    run_demo(DemoConfig(dataset="no-such-data", bits=[16], k=10, deep_methods=[]), run_root=tmp_path, say=messages.append)
    assert any("falling back to 'digits'" in message for message in messages)
