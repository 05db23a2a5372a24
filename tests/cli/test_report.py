"""``hashlearn report``: one run's report rewritten, several runs compared, typed errors."""

import re

from hashlearn.cli.main import main


def test_report_one_run_and_a_comparison(digits_run, tmp_path, capsys):
    assert main(["evaluate", "--model", str(digits_run), "--k", "100", "-q"]) == 0
    (digits_run / "report.html").unlink()
    assert main(["report", str(digits_run)]) == 0
    assert (digits_run / "report.html").is_file() and "report.html" in capsys.readouterr().out
    out = tmp_path / "compare.html"
    assert main(["train", "--method", "itq", "--bits", "16", "--dataset", "digits", "--run-dir", str(tmp_path / "itq"), "-q"]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "itq"), "--k", "100", "-q"]) == 0
    assert main(["report", str(digits_run), str(tmp_path / "itq"), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<td>itq</td>" in html and "<td>csq</td>" in html and len(re.findall("data:image/png;base64", html)) >= 3


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) != 0
    assert "missing" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "x.txt")]) != 0
