"""Every numeric option of every subcommand refuses a bad value up front: exit status 2 and
one line naming the option, what it expects and what it got (issue 12).

The options are read from the real parser, so an option added later without a range
check fails ``test_every_numeric_option_is_range_checked``.
"""

from __future__ import annotations

import argparse

import pytest

from hashlearn.cli import main as cli

#: for each checked type: values outside its domain (and not numbers at all)
BAD_VALUES = {
    cli.positive_int: ["0", "-3", "2.5", "ten", "", "1e3"],
    cli.nonnegative_int: ["-1", "2.5", "x"],
    cli.positive_float: ["0", "-1", "nan", "inf", "-inf", "x"],
    cli.nonnegative_float: ["-0.5", "nan", "inf", "x"],
    cli.rate: ["0", "1.5", "-0.1", "nan", "x"],
    cli.port_number: ["-1", "65536", "80.5", "http"],
}


def every_option(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(subcommand path, action)`` for every option of every (nested) subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from every_option(child, (*path, name))
        elif action.option_strings and path:
            yield path, action


def _cases():
    cases = []
    for path, action in every_option(cli.build_parser()):
        for bad in BAD_VALUES.get(action.type, []):
            option = max(action.option_strings, key=len)
            cases.append(pytest.param(path, option, bad, id=f"{' '.join(path)} {option}={bad!r}"))
    return cases


def test_every_numeric_option_is_range_checked():
    parser = cli.build_parser()
    numeric = [(path, action) for path, action in every_option(parser) if action.type is not None and action.type not in (str,)]
    unchecked = [f"{' '.join(path)} {'/'.join(action.option_strings)} ({getattr(action.type, '__name__', action.type)})"
                 for path, action in numeric if action.type not in BAD_VALUES and not getattr(action.type, "checked", False)]
    assert not unchecked, f"numeric options without a range check: {unchecked}"
    assert len(numeric) >= 30  # the walk really reached the subcommands' options


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser()  # built once: main() builds it on every call, a few hundred ms here


@pytest.mark.parametrize("path, option, bad", _cases())
def test_a_bad_value_is_one_line_naming_the_option(path, option, bad, parser, capsys, monkeypatch):
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([*path, f"{option}={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"argument {option}" in err or f"/{option}" in err, err  # names the option
    assert "expected " in err and repr(bad) in err, err  # what it expects, what it got


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "error:" in err, err
    return err


@pytest.fixture
def index_file(tmp_path):
    import numpy as np

    np.save(tmp_path / "codes.npy", np.zeros((4, 2), np.uint8))
    assert cli.main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "-o", str(tmp_path / "i.hlx"), "-q"]) == 0
    return tmp_path / "i.hlx"


@pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel"), reason="needs a sysfs folder, unwritable even for root")
def test_an_unwritable_output_folder_is_one_line(index_file, capsys):
    codes = index_file.parent / "codes.npy"
    assert cli.main(["index", "build", "--codes", str(codes), "-o", "/sys/kernel/i.hlx", "-q"]) == 2
    assert "/sys/kernel" in _one_line(capsys)


@pytest.mark.parametrize("host, needle", [("no-such-host.invalid", "cannot resolve host"), ("256.1.1.1", "cannot resolve host"),
                                          ("", "host must be a non-empty string")])
def test_a_bad_host_is_one_line(index_file, capsys, host, needle):
    assert cli.main(["serve", "--index", str(index_file), "--host", host, "--port", "0", "--api-key", "k", "-q"]) == 2
    assert needle in _one_line(capsys)
