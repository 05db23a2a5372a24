import pytest

from hashlearn.cli.main import main


def test_datasets_lists_digits_as_available(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("digits") and "yes" in line for line in out.splitlines())


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_demo_runs_quietly(tmp_path, capsys):
    assert main(["demo", "--dataset", "digits", "--bits", "16", "--deep", "--run-root", str(tmp_path), "--quiet"]) == 0
    assert "| itq | 16 |" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err and len(err.strip().splitlines()) == 1
