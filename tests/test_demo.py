import json

from hashlearn.demo import DemoConfig, run_demo


def test_demo_on_digits_writes_report_and_itq_beats_lsh(tmp_path):
    messages = []
    config = DemoConfig(dataset="digits", bits=[32], k=100)
    run_dir, rows = run_demo(config, run_root=tmp_path, say=messages.append)
    for name in ("report.md", "metrics.json", "config.json", "split.json", "split.npz", "pr_curves.png"):
        assert (run_dir / name).exists(), name
    scores = {row["method"]: row["mAP@100"] for row in rows}
    assert scores["itq"] > scores["lsh"]
    assert scores["csq"] > scores["lsh"] and 0 < scores["csq+hswd"] <= 1  # the deep model learned something
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["split"]["query"] == 200 and len(saved["results"]) == 4
    assert "| itq | 32 |" in (run_dir / "report.md").read_text()


def test_demo_announces_fallback(tmp_path):
    messages = []
    run_demo(DemoConfig(dataset="no-such-data", bits=[16], k=10, deep_methods=[]), run_root=tmp_path, say=messages.append)
    assert any("falling back to 'digits'" in message for message in messages)
