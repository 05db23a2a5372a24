"""The ``hashlearn`` command.

Each subcommand is one module of ``hashlearn.cli`` exposing
``register(subparsers)`` (adds its parser, sets ``func``) -- adding one is one
module and one line in ``SUBCOMMANDS``.

Exit status: 0 on success; 2 for a user mistake -- a bad option or value, a
missing or damaged file, a folder where a file is expected, a full disk, a port
in use, a closed output pipe -- reported as one line ``hashlearn CMD: error:
...`` on stderr; 130 when interrupted; 1 for an unexpected error, which prints
its traceback and asks to report it (that is a bug in hashlearn).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

#: exit status of a user mistake (the same as argparse's usage errors)
USER_ERROR = 2
#: where to report an unexpected error
ISSUES = "https://github.com/hashlearn/hashlearn/issues"

#: subcommand modules, in the order ``--help`` lists them
SUBCOMMANDS = [
    "hashlearn.cli.datasets",
    "hashlearn.cli.demo",
    "hashlearn.cli.features",
    "hashlearn.cli.index",
    "hashlearn.cli.search",
    "hashlearn.cli.serve",
    "hashlearn.cli.attack",
    "hashlearn.cli.backdoor",
    "hashlearn.cli.detect",
    "hashlearn.cli.audit",
    "hashlearn.cli.train",
    "hashlearn.cli.lifelong",
    "hashlearn.cli.encode",
    "hashlearn.cli.evaluate",
    "hashlearn.cli.report",
]


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line usage errors (exit status 2) naming the command."""

    def error(self, message: str):
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' layout and shows every option's default (unless its help already says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hashlearn",
        description="Learning to hash: learn binary codes, search them in Hamming space, evaluate, audit.",
        epilog="example:\n  hashlearn train --method csq --bits 32 --dataset digits --run-dir runs/csq\n"
               "  hashlearn evaluate --model runs/csq\n\n`hashlearn COMMAND --help` describes each command.",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"hashlearn {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        before = set(subparsers.choices)
        module.register(subparsers)
        for name in set(subparsers.choices) - before:
            _finish_help(subparsers.choices[name], examples(module))
    return parser


def examples(module) -> list[str]:
    """The ``hashlearn ...`` command lines of a subcommand module's docstring (its examples)."""
    lines = (module.__doc__ or "").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("hashlearn ") and line.startswith("    ")]


def _finish_help(parser: argparse.ArgumentParser, example_lines: list[str]) -> None:
    """Defaults in every option's help and the module's examples below it (nested actions too)."""
    parser.formatter_class = Formatter
    if parser.epilog is None and example_lines:
        parser.epilog = "example:\n" + "\n".join(f"  {line}" for line in example_lines)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                own = [line for line in example_lines if line.split()[1:3] == [parser.prog.split()[-1], name]]
                _finish_help(child, own or example_lines)


def add_common_arguments(parser: argparse.ArgumentParser, *, json: bool = False) -> None:
    """Options every subcommand shares: ``-q/--quiet`` and, for commands that print results, ``--json``."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes, only results")
    if json:
        parser.add_argument("--json", action="store_true", help="print the results as one JSON document")


def add_k_argument(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    """``-k/--k``, the same in every command."""
    parser.add_argument("-k", "--k", dest="k", type=positive_int, default=default, help=help)


def _number(convert, check, expected: str):
    def parse(text: str):
        try:
            value = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected
    return parse


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: _finite(v) and v > 0, "a number > 0")
nonnegative_float = _number(float, lambda v: _finite(v) and v >= 0, "a number >= 0")
rate = _number(float, lambda v: _finite(v) and 0 < v <= 1, "a fraction in (0, 1]")
port_number = _number(int, lambda v: 0 <= v <= 65535, "a port number in 0-65535 (0 picks a free one)")


def print_json(value) -> None:
    """Results as one JSON document on stdout (numpy values and paths converted)."""
    import json as _json

    from hashlearn._io import _json_default

    print(_json.dumps(value, indent=2, sort_keys=True, default=_json_default), flush=True)


def _version() -> str:
    from hashlearn import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage errors (one line, status 2), --help and --version (status 0)
        return exit_.code if isinstance(exit_.code, int) else USER_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"hashlearn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        print(f"hashlearn {args.command}: error: the output was closed before all results were written (e.g. by `| head`)", file=sys.stderr)
        return USER_ERROR
    except Exception as error:  # noqa: BLE001 -- sorted into user mistakes and bugs below
        message = user_error_message(error)
        if message is None:
            import traceback

            traceback.print_exc()
            print(f"hashlearn {args.command}: unexpected error ({type(error).__name__}); this is a bug in hashlearn. "
                  f"Please report it at {ISSUES} with the command line and the traceback above.", file=sys.stderr)
            return 1
        print(f"hashlearn {args.command}: error: {message}", file=sys.stderr)
        return USER_ERROR


def user_error_message(error: BaseException) -> str | None:
    """The one-line message of a user mistake, or ``None`` for an unexpected error (a bug)."""
    if isinstance(error, OSError) and not isinstance(error, (FileNotFoundError, FileExistsError)):
        where = f" ({error.filename})" if error.filename else ""
        if error.errno == errno.ENOSPC:
            return f"no space left on the device{where}; free some space or write elsewhere. Nothing was left half-written."
        if error.errno == errno.EADDRINUSE:
            return f"the address is already in use{where}: another program listens on that port; choose another --port (0 picks a free one)."
        if isinstance(error, IsADirectoryError):
            return f"{error.filename or 'the path'} is a folder; a file was expected there."
        if isinstance(error, NotADirectoryError) and error.filename:
            return f"{error.filename} is a file (or lies under one); a folder was expected there."
        if error.errno is not None or error.strerror:
            return _one_line(f"{error.strerror or error}{where}")
    if isinstance(error, (ValueError, TypeError, OSError, ImportError, FloatingPointError)):
        return _one_line(str(error)) or type(error).__name__
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
