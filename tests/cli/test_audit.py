"""`hashlearn audit` on a run written by `hashlearn train`: the attacks, the transfer check, the privacy check, one page."""

import json
import shutil

import pytest

from hashlearn.cli.main import main
from tests.cli.conftest import train

TINY = ["--eps", "0.2", "--steps", "5", "--n-queries", "20", "--n-database", "400", "-k", "100",
        "--n-auxiliary", "200", "--decoder-epochs", "2", "-q"]


@pytest.fixture()
def run_dir(digits_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(digits_run, copy)
    return copy


def test_audit_writes_one_report_with_the_summary(run_dir, tmp_path, capsys):
    surrogate = tmp_path / "surrogate"
    train(surrogate, "--set", "trainer.seed=1")
    code = main(["audit", "--model", str(run_dir), "--attacks", "hag,fgsm,prototype", "--surrogate", str(surrogate), *TINY])
    assert code == 0
    out = capsys.readouterr().out
    assert "attack: hag" in out and "transfer: HAG from the surrogate" in out and "privacy: codes" in out
    record = json.loads((run_dir / "audit" / "audit.json").read_text())
    assert [row["check"] for row in record["rows"]] == ["attack: hag", "attack: fgsm", "attack: prototype",
                                                        "transfer: HAG from the surrogate", "white-box HAG (same queries)"]
    hag = record["rows"][0]
    assert hag["budget"] == "L-inf 51/255 (0.2)" and hag["drop"] == pytest.approx(hag["clean mAP@100"] - hag["attacked mAP@100"])
    assert hag["drop"] > 0 and record["rows"][1]["steps"] == 1 and record["rows"][2]["kind"] == "targeted"
    # the attacks and the transfer check see the same queries and database: the same clean mAP
    assert record["rows"][3]["clean mAP@100"] == pytest.approx(hag["clean mAP@100"])
    assert record["transfer"]["matrix"]["audited"]["audited"] == pytest.approx(hag["attacked mAP@100"])
    assert record["transfer"]["surrogate"]["run_dir"] == str(surrogate)
    assert set(record["privacy"]["representations"]) == {"features", "outputs", "codes"}
    page = (run_dir / "audit" / "report.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    for text in ("Security audit: summary", "Query attacks and transfer", "Privacy: codes vs floats", "Transfer check", "Attack: hag"):
        assert text in page, text
    run_page = (run_dir / "report.html").read_text()
    assert "Security audit: summary" in run_page and "Privacy: reconstruction" in run_page
    assert "## Security audit: query attacks and transfer" in (run_dir / "report.md").read_text()


def test_audit_trains_a_surrogate_when_none_is_given(run_dir):
    assert main(["audit", "--model", str(run_dir), "--checks", "transfer", "--surrogate-epochs", "1", *TINY]) == 0
    record = json.loads((run_dir / "audit" / "audit.json").read_text())
    assert record["checks"] == ["transfer"] and "trainer seed 1" in record["transfer"]["surrogate"]["how"]
    assert (run_dir / "audit" / "surrogate" / "model" / "model.json").is_file()
    assert main(["audit", "--model", str(run_dir), "--checks", "transfer", "--surrogate-epochs", "1", *TINY]) == 0  # reused


def test_privacy_only(run_dir, capsys):
    attacks_before = sorted(p.name for p in (run_dir / "attack").glob("*")) if (run_dir / "attack").exists() else []
    assert main(["audit", "--model", str(run_dir), "--privacy", *TINY]) == 0
    record = json.loads((run_dir / "audit" / "audit.json").read_text())
    assert record["checks"] == ["privacy"] and record["rows"] == []
    attacks_after = sorted(p.name for p in (run_dir / "attack").glob("*")) if (run_dir / "attack").exists() else []
    assert attacks_after == attacks_before  # no attack ran
    assert "Privacy: reconstruction from released representations" in (run_dir / "report.html").read_text()
    assert "privacy: baseline: mean input" in capsys.readouterr().out


def test_audit_errors(run_dir, tmp_path, capsys):
    assert main(["audit", "--model", str(tmp_path / "none"), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["audit", "--model", str(run_dir), "--checks", "attacks,speed", "-q"]) == 2
    assert "checks must be" in capsys.readouterr().err
    assert main(["audit", "--model", str(run_dir), "--attacks", "hag,cmla", "-q"]) == 2
    assert "single-modality attacks" in capsys.readouterr().err
    assert main(["audit", "--model", str(run_dir), "--privacy", "--checks", "privacy", "-q"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["audit", "--model", str(run_dir), "--attacks", ",", "-q"]) == 2
    assert "--attacks must list" in capsys.readouterr().err
    shallow = tmp_path / "itq"
    assert main(["train", "--method", "itq", "--bits", "16", "--dataset", "digits", "-q", "--run-dir", str(shallow)]) == 0
    assert main(["audit", "--model", str(shallow), "--privacy", "-q"]) == 2
    assert "needs a deep hash model" in capsys.readouterr().err
