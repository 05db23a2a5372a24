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


def _all_parsers():
    import argparse

    from hashlearn.cli.main import build_parser

    def walk(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)

    return list(walk(build_parser()))[1:]


def test_every_help_shows_defaults_and_an_example():
    for parser in _all_parsers():
        if any(a.__class__.__name__ == "_SubParsersAction" for a in parser._actions):
            continue  # `hashlearn index`: its actions carry the help
        text = parser.format_help()
        assert "example" in text.lower(), parser.prog
        defaults = [a for a in parser._actions if a.option_strings and a.default not in (None, False, "==SUPPRESS==") and a.help]
        for action in defaults:
            assert "default" in action.help or "default" in parser._get_formatter()._get_help_string(action), (parser.prog, action.dest)


def test_shared_option_names():
    for parser in _all_parsers():
        options = {s for a in parser._actions for s in a.option_strings}
        if "--k" in options or "-k" in options:
            assert {"-k", "--k"} <= options, parser.prog
        assert {"-q", "--quiet"} <= options or parser.prog == "hashlearn index", parser.prog


def test_progress_bars_on_encode_and_off_with_quiet(digits_run, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20_000, 64), dtype=np.float32))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    env.pop("HASHLEARN_QUIET", None)
    base = [sys.executable, "-m", "hashlearn", "encode", "--model", str(digits_run), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.npy")]
    loud = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    quiet = subprocess.run([*base, "-q"], capture_output=True, text=True, env=env, timeout=120)
    assert loud.returncode == quiet.returncode == 0
    assert "encode:" in loud.stderr and "%" in loud.stderr
    assert quiet.stderr == ""
