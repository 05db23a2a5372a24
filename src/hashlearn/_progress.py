"""Progress bars that ``--quiet`` (or ``HASHLEARN_QUIET=1``) turns off."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

_QUIET = os.environ.get("HASHLEARN_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    return _QUIET


def progress(iterable=None, **kwargs):
    """``tqdm`` unless quiet; every long loop in hashlearn goes through this."""
    kwargs.setdefault("disable", _QUIET)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
