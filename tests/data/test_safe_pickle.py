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


# --- hostile pickles (issue 12) -------------------------------------------------------------------
import tracemalloc  # noqa: E402


def _peak_while(function) -> int:
    """Peak bytes traced while ``function`` runs (numpy and CPython allocations are traced)."""
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


class _ObjectArray:
    """``numpy.ndarray((3,), "O")`` called directly: an object array without any object dtype global."""

    def __reduce__(self):
        return (np.ndarray, ((3,), "O"))


class _HugeArray:
    def __reduce__(self):
        return (np.ndarray, ((200_000_000,), "f8"))  # 1.6 GB


def test_ndarray_called_directly_is_refused():
    """numpy.ndarray resolved to the real class: object arrays passed, contrary to the docs."""
    with pytest.raises(CorruptFileError, match="numpy.ndarray directly"):
        safe_loads(pickle.dumps(_ObjectArray(), protocol=2))


def test_forty_byte_pickles_allocate_nothing():
    """A 40-byte pickle allocated 1.6 GB (ndarray((2e8,)), or a BINBYTES8 length read before the bytes)."""
    huge_array = pickle.dumps(_HugeArray(), protocol=2)
    huge_bytes = b"\x80\x04\x8e" + (1_600_000_000).to_bytes(8, "little") + b"x" * 20 + b"."
    huge_memo = b"\x80\x02K\x01r" + (2**32 - 2).to_bytes(4, "little") + b"."
    for payload in (huge_array, huge_bytes, huge_memo):
        assert len(payload) <= 64

        def load(payload=payload):
            with pytest.raises(CorruptFileError):
                safe_loads(payload)

        assert _peak_while(load) < 1 << 20


class _ShortArray:
    """An ndarray state whose data is shorter than its shape needs."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (10,), np.dtype("i4"), False, b"\0" * 36))


def test_array_data_must_match_its_shape():
    with pytest.raises(CorruptFileError, match="needs 40 bytes, the pickle holds 36"):
        safe_loads(pickle.dumps(_ShortArray(), protocol=2))


@pytest.mark.parametrize("value", [{1, 2}, frozenset([1]), complex(1, 2), np.float64(3.0), np.dtype([("a", "i4"), ("b", "f4")]),
                                   np.zeros(2, dtype=[("a", "i4")]), np.zeros((2, 2), dtype="U3"), np.zeros(2, dtype="c8")])
def test_only_plain_numeric_arrays_and_builtins(value):
    with pytest.raises(CorruptFileError, match="refusing"):
        safe_loads(pickle.dumps(value, protocol=2))


def test_deep_nesting_is_refused():
    value = []
    for _ in range(100):
        value = [value]
    with pytest.raises(CorruptFileError, match="nested deeper"):
        safe_loads(pickle.dumps(value))


@pytest.mark.parametrize("compressed", [True, False])
def test_decompression_is_bounded_and_streamed(tmp_path, compressed):
    """IDX/pickle .gz files were inflated fully into memory with no cap (1 MB -> 1 GiB, 2.1 GB peak)."""
    content = pickle.dumps(np.zeros(40 << 20, dtype=np.uint8), protocol=4)  # 40 MB of zeros: a 40 KB gzip file
    path = tmp_path / "bomb.pkl"
    path.write_bytes(gzip.compress(content) if compressed else content)

    def load():
        with pytest.raises(CorruptFileError, match="exceeds the limit of 10485760"):
            safe_load_file(path, max_nbytes=10 << 20)

    assert _peak_while(load) < 12 << 20  # at most the cap (plus a chunk), never the whole content
    assert safe_load_file(path, max_nbytes=64 << 20).shape == (40 << 20,)  # and loads when allowed


def test_truncated_and_damaged_gzip(tmp_path):
    blob = gzip.compress(pickle.dumps({"a": np.arange(1000)}))
    for name, data in (("short.gz", blob[: len(blob) // 2]), ("flipped.gz", blob[:20] + bytes([blob[20] ^ 0xFF]) + blob[21:])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptFileError, match=name):
            safe_load_file(tmp_path / name)


def test_non_regular_pickle_files(tmp_path):
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        safe_load_file(tmp_path / "zero")
    with pytest.raises(FileNotFoundError):
        safe_load_file(tmp_path / "missing")


# --- memory of the protocol-2 latin-1 path (issue 12: a CIFAR batch re-pickled by Python 3 peaked at 16x) ----
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("kind", ["random", "ascii"])
def test_protocol_2_array_data_costs_its_size_once(tmp_path, compressed, kind, traced_peak):
    """Python 3 writes array data at protocol 2 as a latin-1 str passed to _codecs.encode; the
    unpickler held the UTF-8 bytes, the str and the encoded bytes (4.5x a random uint8 array)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1000, 3072), dtype=np.uint8) if kind == "random" else np.full((1000, 3072), 65, np.uint8)
    content = pickle.dumps({b"data": images, b"labels": [int(x) for x in rng.integers(0, 10, 1000)]}, protocol=2)
    path = tmp_path / "batch"
    path.write_bytes(gzip.compress(content, compresslevel=1) if compressed else content)
    batch, peak = traced_peak(lambda: safe_load_file(path, encoding="bytes"))
    assert np.array_equal(batch[b"data"], images) and len(batch[b"labels"]) == 1000
    assert peak < 1.3 * images.nbytes, f"peak {peak / images.nbytes:.2f}x the array"


def test_latin1_rewrite_keeps_what_the_pickle_means():
    """Large strings are read as their latin-1 bytes only where _codecs.encode(..., "latin1") would
    make exactly those bytes; a string used again (memo), one with characters above U+00FF, one
    encoded to UTF-8, and plain large text stay what they were."""
    import codecs

    latin = "".join(map(chr, range(256))) * 400  # 100 KiB of every latin-1 character
    wide = "\u20ac" * 70_000

    class Encoded:
        def __init__(self, text, encoding):
            self.text, self.encoding = text, encoding

        def __reduce__(self):
            return (codecs.encode, (self.text, self.encoding))

    value = {"array": np.frombuffer(latin.encode("latin-1"), np.uint8), "text": latin, "wide": wide,
             "utf8": Encoded(latin, "utf-8"), "bytes": latin.encode("latin-1")}
    loaded = safe_loads(pickle.dumps(value, protocol=2))
    assert loaded["text"] == latin and loaded["wide"] == wide and loaded["bytes"] == latin.encode("latin-1")
    assert loaded["utf8"] == latin.encode("utf-8")
    assert np.array_equal(loaded["array"], value["array"])
    shared = Encoded(latin, "latin1")
    twice = pickle.dumps([shared, latin, shared], protocol=2)  # the memo hands the same str out again
    assert safe_loads(twice)[1] == latin


def test_a_long_memo_index_line_is_refused():
    """A PUT line longer than the scan keeps could hide an index far ahead (the memo would grow to it)."""
    payload = b"(I1\np" + b"0" * (3 << 20) + b"4294967295\n."
    with pytest.raises(CorruptFileError, match="memo index line"):
        safe_loads(payload)
