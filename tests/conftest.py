"""Suite-wide settings: small tensors run faster on one thread on a 2-core machine,
and progress bars stay off in test output."""

import os
import tracemalloc

import pytest

os.environ.setdefault("HASHLEARN_QUIET", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def traced_peak():
    """``traced_peak(function)`` -> ``(its result, tracemalloc's peak while it ran)``: what a
    loader allocated (numpy buffers and Python objects) measured against the data it returns."""

    def measure(function):
        tracemalloc.start()
        try:
            result = function()
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    return measure
