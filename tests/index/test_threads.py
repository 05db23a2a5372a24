import threading

import pytest

from hashlearn.index import get_num_threads, set_num_threads
from hashlearn.index._threads import run_tasks


def test_run_tasks_keeps_order_and_uses_several_threads():
    set_num_threads(2)
    try:
        seen = set()

        def work(value):
            seen.add(threading.get_ident())
            return value * value

        assert run_tasks(work, [(v,) for v in range(50)]) == [v * v for v in range(50)]
        assert 1 <= len(seen) <= 2
    finally:
        set_num_threads(None)


def test_run_tasks_propagates_errors():
    set_num_threads(2)
    try:
        def fail(value):
            if value == 3:
                raise RuntimeError("task 3 failed")
            return value

        with pytest.raises(RuntimeError, match="task 3 failed"):
            run_tasks(fail, [(v,) for v in range(8)])
    finally:
        set_num_threads(None)


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n_threads"):
        set_num_threads(0)
    with pytest.raises(TypeError, match="n_threads"):
        set_num_threads(1.5)
    set_num_threads(3)
    assert get_num_threads() == 3
    set_num_threads(None)
    assert get_num_threads() >= 1


def test_concurrent_searches_from_several_threads_are_correct():
    """A service calls search from many threads at once; the shared pool must neither
    deadlock nor mix up results."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from hashlearn.codes import reference_search
    from hashlearn.index import FlatIndex, MultiIndexHashing

    rng = np.random.default_rng(7)
    database = rng.integers(0, 256, size=(3000, 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(40, 8), dtype=np.uint8)
    expected = reference_search(queries, database, 5)
    set_num_threads(2)
    try:
        for index in (FlatIndex(64), MultiIndexHashing(64, max_cost_fraction=float("inf"))):
            index.add(database)
            with ThreadPoolExecutor(max_workers=4) as users:
                results = list(users.map(lambda q: index.search(queries[q : q + 1], 5), range(40)))
            for q, result in enumerate(results):
                np.testing.assert_array_equal(result.ids[0], expected.ids[q])
                np.testing.assert_array_equal(result.distances[0], expected.distances[q])
    finally:
        set_num_threads(None)
