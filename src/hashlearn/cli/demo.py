"""``hashlearn demo``: the main job (filled in by the foundation issue)."""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="fit LSH and ITQ, search, evaluate, write a report")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("demo is being written")
