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
