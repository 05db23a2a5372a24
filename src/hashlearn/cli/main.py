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
    "hashlearn.cli.train",
    "hashlearn.cli.encode",
    "hashlearn.cli.evaluate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hashlearn",
        description="Learning to hash: learn binary codes, search them in Hamming space, evaluate, audit.",
    )
    parser.add_argument("--version", action="version", version=f"hashlearn {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand shares."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, only results")


def _version() -> str:
    from hashlearn import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
