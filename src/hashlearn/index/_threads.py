"""Thread pool for the compiled kernels.

The kernels release the GIL (``nogil=True``), so plain Python threads run them
in parallel without numba's own threading layer -- that keeps the thread count
explicit (:func:`set_num_threads`) and avoids fighting faiss's OpenMP pool.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from hashlearn._validation import check_positive_int

_n_threads: int | None = None
_pools: dict[int, ThreadPoolExecutor] = {}


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the indexes use for one call (default: all available cores)."""
    return _n_threads or available_cores()


def set_num_threads(n_threads: int | None) -> None:
    """Set the threads every index uses; ``None`` restores the default (all cores)."""
    global _n_threads
    _n_threads = check_positive_int(n_threads, "n_threads", allow_none=True)


def run_tasks(function, task_args: list[tuple]) -> list:
    """Run ``function(*args)`` for every tuple in ``task_args``; results in order."""
    workers = get_num_threads()
    if len(task_args) <= 1 or workers == 1:
        return [function(*args) for args in task_args]
    if workers not in _pools:  # one pool per thread count, so a pool never runs more than asked
        _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"hashlearn-index-{workers}")
    return list(_pools[workers].map(lambda args: function(*args), task_args))
