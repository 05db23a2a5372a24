"""The restricted unpickler loads arrays and containers and refuses everything else."""

import gzip
import os
import pickle

import numpy as np
import pytest

from hashlearn.data.safe_pickle import safe_load_file, safe_loads
from hashlearn.errors import CorruptFileError


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious pickle."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_and_builtin_containers_round_trip(protocol):
    value = {
        "data": np.arange(24, dtype=np.uint8).reshape(2, 12),
        "floats": np.linspace(0, 1, 5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.int16),
        "labels": [1, 2, 3],
        "name": "batch 1",
        "raw": b"\x00\x01",
        "nested": ({"a": 1.5}, None, True),
    }
    back = safe_loads(pickle.dumps(value, protocol=protocol))
    assert back.keys() == value.keys()
    for key in ("data", "floats", "empty"):
        np.testing.assert_array_equal(back[key], value[key])
        assert back[key].dtype == value[key].dtype
    assert back["labels"] == [1, 2, 3] and back["name"] == "batch 1" and back["raw"] == b"\x00\x01"
    assert back["nested"] == ({"a": 1.5}, None, True)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_refuses_code_execution(protocol, tmp_path):
    payload = pickle.dumps({"data": _RunsCode()}, protocol=protocol)
    with pytest.raises(CorruptFileError, match="refusing to unpickle global (posix|os|nt).system"):
        safe_loads(payload)
    (tmp_path / "evil.gz").write_bytes(gzip.compress(payload))
    with pytest.raises(CorruptFileError, match="evil.gz: refusing"):
        safe_load_file(tmp_path / "evil.gz")


@pytest.mark.parametrize("value", [eval, getattr, pickle.Unpickler, np.load, np.frombuffer])
def test_refuses_other_globals(value):
    with pytest.raises(CorruptFileError, match="refusing"):
        safe_loads(pickle.dumps(value))


def test_refuses_object_arrays():
    with pytest.raises(CorruptFileError, match="object array"):
        safe_loads(pickle.dumps(np.array([1, "x"], dtype=object)))


def test_garbage_is_a_corrupt_file_error():
    with pytest.raises(CorruptFileError, match="not a valid pickle"):
        safe_loads(b"\x80\x04this is not a pickle")
    with pytest.raises(CorruptFileError, match="not a valid pickle"):
        safe_loads(pickle.dumps({"a": np.arange(100)})[:-30])
