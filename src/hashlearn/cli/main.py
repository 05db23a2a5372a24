"""The ``hashlearn`` command.

Each subcommand is one module of ``hashlearn.cli`` exposing
``register(subparsers)`` (adds its parser, sets ``func``) -- adding one is one
module and one line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    "hashlearn.cli.report",
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
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"hashlearn {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
