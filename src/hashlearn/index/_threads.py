"""Thread pool for the compiled kernels.

The kernels release the GIL (``nogil=True``), so plain Python threads run them
in parallel without numba's own threading layer -- that keeps the thread count
explicit (:func:`set_num_threads`) and avoids fighting faiss's OpenMP pool.
"""

from __future__ import annotations

import itertools
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


_CORES = available_cores()


def get_num_threads() -> int:
    """Threads the indexes use for one call (default: all cores available at import)."""
    return _n_threads or _CORES


def set_num_threads(n_threads: int | None) -> None:
    """Set the threads every index uses; ``None`` restores the default (all cores)."""
    global _n_threads
    _n_threads = check_positive_int(n_threads, "n_threads", allow_none=True)


def run_tasks(function, task_args: list[tuple]) -> list:
    """Run ``function(*args)`` for every tuple in ``task_args``; results in order.

    The calling thread works too, and every thread takes the next unstarted task
    until none is left (dynamic scheduling): on a loaded machine a helper thread
    may wake up late, and then the others simply do its share instead of waiting.
    """
    workers = min(get_num_threads(), len(task_args))
    if workers <= 1:
        return [function(*args) for args in task_args]
    results = [None] * len(task_args)
    next_task = itertools.count()  # next() on a count is atomic under the GIL

    def drain():
        for index in next_task:
            if index >= len(task_args):
                return
            results[index] = function(*task_args[index])

    pool = _pools.get(workers - 1)
    if pool is None:  # one pool per size, so a pool never runs more than asked
        pool = _pools[workers - 1] = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="hashlearn-index")
    helpers = [pool.submit(drain) for _ in range(workers - 1)]
    drain()
    for helper in helpers:
        if not helper.cancel():  # a helper that never started is simply dropped
            helper.result()
    return results
