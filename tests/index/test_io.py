"""Round trips and failure modes of the .hlx index file format."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from hashlearn.errors import CorruptFileError
from hashlearn.index import io
from hashlearn.index.io import index_from_bytes, index_to_bytes, load_index, read_header, save_index


@pytest.fixture
def index(bruteforce_cls, make_codes):
    index = bruteforce_cls(64)
    index.add(make_codes(300, 64, seed=1, clustered=True), ids=np.arange(300) * 7 + 3)
    return index


@pytest.fixture
def queries(make_codes):
    return make_codes(20, 64, seed=2, clustered=True)


def assert_same_results(a, b, queries):
    for got, want in [(a.search(queries, 10), b.search(queries, 10)), (a.range_search(queries, 20), b.range_search(queries, 20))]:
        for x, y in zip(got, want):
            np.testing.assert_array_equal(x, y)


def test_bytes_round_trip(index, queries):
    data = index_to_bytes(index)
    loaded = index_from_bytes(data)
    assert type(loaded) is type(index) and loaded.ntotal == index.ntotal
    assert_same_results(loaded, index, queries)
    assert index_to_bytes(loaded) == data  # deterministic encoding


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("verify", [True, False])
def test_file_round_trip(index, queries, tmp_path, mmap, verify):
    path = save_index(index, tmp_path / "a.hlx")
    loaded = load_index(path, mmap=mmap, verify=verify)
    assert_same_results(loaded, index, queries)
    assert path.read_bytes() == index_to_bytes(index)


def _is_mapped(array) -> bool:
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = getattr(array, "base", None)
    return False


def test_mmap_arrays_are_mapped_and_aligned(index, tmp_path):
    path = save_index(index, tmp_path / "a.hlx")
    loaded = load_index(path, mmap=True)
    assert _is_mapped(loaded.codes) and not loaded.codes.flags.writeable
    header = read_header(path)
    assert header["payload_offset"] % 64 == 0
    assert all(spec["offset"] % 64 == 0 for spec in header["arrays"])
    assert header["kind"] == "test_bruteforce" and header["meta"] == {"n_bits": 64}


def test_plain_load_gives_writable_arrays(index, tmp_path):
    loaded = load_index(save_index(index, tmp_path / "a.hlx"), mmap=False)
    assert loaded.codes.flags.writeable and not _is_mapped(loaded.codes)
    assert index_from_bytes(index_to_bytes(index)).codes.flags.writeable


def test_empty_index_round_trip(bruteforce_cls, tmp_path, queries):
    empty = bruteforce_cls(64)
    for loaded in (index_from_bytes(index_to_bytes(empty)), load_index(save_index(empty, tmp_path / "e.hlx"))):
        assert loaded.ntotal == 0
        assert (loaded.search(queries, 3).ids == -1).all()


def test_dtypes_and_shapes_survive(bruteforce_cls, tmp_path):
    """Arrays of every allowed dtype, odd sizes and big-endian input come back bit-identical."""

    class Many(bruteforce_cls):
        kind = "test_many"
        extra = {
            "f": np.linspace(0, 1, 7, dtype=np.float32),
            "d": np.arange(5, dtype=">f8"),
            "b": np.array([True, False, True]),
            "scalar": np.array(3, dtype=np.int16),
            "grid": np.arange(24, dtype=np.uint32).reshape(2, 3, 4),
            "nothing": np.zeros((0, 5), dtype=np.int64),
        }

        def state(self):
            meta, arrays = super().state()
            return meta, {**arrays, **self.extra}

        @classmethod
        def from_state(cls, meta, arrays):
            cls.loaded = arrays
            return super().from_state(meta, arrays)

    io.register_index_kind(Many.kind, Many)
    try:
        path = save_index(Many(8), tmp_path / "m.hlx")
        for mmap in (True, False):
            load_index(path, mmap=mmap)
            for name, want in Many.extra.items():
                got = Many.loaded[name]
                assert got.shape == want.shape and got.dtype == want.dtype.newbyteorder("<")
                np.testing.assert_array_equal(got, want)
    finally:
        io.INDEX_KINDS.pop(Many.kind)


# --- corrupt files ------------------------------------------------------------------------------
def split_file(data: bytes) -> tuple[dict, bytes]:
    """(header dict, payload bytes) of a valid file."""
    length = io._PREFIX.unpack(data[: io._PREFIX.size])[3]
    header = json.loads(data[io._PREFIX.size : io._PREFIX.size + length])
    return header, data[io._aligned(io._PREFIX.size + length) :]


def resign(header: dict, payload: bytes, *, flags: int = 0, length: int | None = None, padding_byte: int = 0) -> bytes:
    """A file with ``header`` re-signed (a valid header checksum): what a forger can write."""
    import hashlib

    body = json.dumps(header).encode()
    prefix = io._PREFIX.pack(io.MAGIC, io.FORMAT_VERSION, flags, len(body) if length is None else length, hashlib.sha256(body).digest())
    head = prefix + body
    return head + bytes([padding_byte]) * (io._aligned(len(head)) - len(head)) + payload


def _saved(index, tmp_path):
    path = save_index(index, tmp_path / "a.hlx")
    return path, path.read_bytes()


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_file_rejected(index, tmp_path, mmap):
    path, data = _saved(index, tmp_path)
    for cut in (5, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="truncated|not a hashlearn index"):
            load_index(path, mmap=mmap)
    with pytest.raises(CorruptFileError, match="truncated"):
        index_from_bytes(data[:-10])


@pytest.mark.parametrize("mmap", [True, False])
def test_tampered_payload_rejected(index, tmp_path, mmap):
    path, data = _saved(index, tmp_path)
    tampered = bytearray(data)
    tampered[-3] ^= 0x10
    path.write_bytes(bytes(tampered))
    with pytest.raises(CorruptFileError, match="payload checksum"):
        load_index(path, mmap=mmap)
    assert path.read_bytes() == bytes(tampered)  # loading changed nothing on disk


def test_tampered_payload_passes_only_without_verify(index, tmp_path):
    """verify=False is documented to skip the payload hash (not the header checks)."""
    path, data = _saved(index, tmp_path)
    tampered = bytearray(data)
    tampered[-3] ^= 0x10
    path.write_bytes(bytes(tampered))
    loaded = load_index(path, mmap=True, verify=False)
    # it loads, and what it holds is the tampered payload: exactly one byte of one array differs
    _, original = index.state()
    _, got = loaded.state()
    assert loaded.ntotal == index.ntotal and set(got) == set(original)
    changed = {name: np.flatnonzero(np.asarray(got[name]).view(np.uint8) != np.asarray(original[name]).view(np.uint8)) for name in got}
    assert sum(len(c) for c in changed.values()) == 1
    # verify=False skips only the payload hash: a tampered header is still refused
    start = data.index(b'"n_bits": 64')
    path.write_bytes(data[:start] + b'"n_bits": 32' + data[start + 12 :])
    with pytest.raises(CorruptFileError, match="header checksum"):
        load_index(path, mmap=True, verify=False)


def test_tampered_header_rejected(index, tmp_path):
    path, data = _saved(index, tmp_path)
    start = data.index(b'"n_bits": 64')
    tampered = data[:start] + b'"n_bits": 32' + data[start + 12 :]
    with pytest.raises(CorruptFileError, match="header checksum"):
        index_from_bytes(tampered)


def test_forged_header_with_matching_checksum_still_checked(index):
    """A header rewritten with a valid checksum but inconsistent arrays is refused."""
    data = index_to_bytes(index)
    header, payload = split_file(data)
    header["arrays"][0]["offset"] = 3  # misaligned
    with pytest.raises(CorruptFileError, match="inconsistent"):
        index_from_bytes(resign(header, payload))


def test_newer_version_rejected(index, tmp_path):
    path, data = _saved(index, tmp_path)
    newer = data[:8] + struct.pack("<I", io.FORMAT_VERSION + 1) + data[12:]
    path.write_bytes(newer)
    for load in (lambda: load_index(path), lambda: load_index(path, mmap=False), lambda: index_from_bytes(newer)):
        with pytest.raises(CorruptFileError, match="newer hashlearn"):
            load()


def test_not_an_index_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(CorruptFileError, match="not a hashlearn index"):
        load_index(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_index(tmp_path / "missing.hlx")
    with pytest.raises(TypeError, match="bytes"):
        index_from_bytes("text")


def test_trailing_bytes_rejected(index):
    with pytest.raises(CorruptFileError, match="unexpected bytes"):
        index_from_bytes(index_to_bytes(index) + b"\0")


def test_unknown_kind_rejected(bruteforce_cls):
    class Unregistered(bruteforce_cls):
        kind = "test_unregistered"

    with pytest.raises(ValueError, match="not registered"):
        index_to_bytes(Unregistered(8))
    io.register_index_kind(Unregistered.kind, Unregistered)
    data = index_to_bytes(Unregistered(8))
    io.INDEX_KINDS.pop(Unregistered.kind)
    with pytest.raises(CorruptFileError, match="unknown index kind"):
        index_from_bytes(data)


# --- atomic saves -------------------------------------------------------------------------------
def test_failed_save_leaves_existing_file_untouched(index, bruteforce_cls, tmp_path, monkeypatch):
    path, original = _saved(index, tmp_path)
    bigger = bruteforce_cls(64)
    bigger.add(np.zeros((5000, 8), dtype=np.uint8))

    def failing_chunks(head, chunks):
        yield head
        yield bytes(1000)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(io, "_chunks", failing_chunks)
    with pytest.raises(OSError, match="simulated"):
        save_index(bigger, path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["a.hlx"]  # no temporary file left behind
    load_index(path)


def test_failed_fsync_leaves_existing_file_untouched(index, bruteforce_cls, tmp_path, monkeypatch):
    path, original = _saved(index, tmp_path)

    def failing_fsync(fd):
        raise OSError("I/O error (simulated)")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        save_index(bruteforce_cls(64), path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["a.hlx"]


def test_save_rejects_non_index(tmp_path):
    with pytest.raises(TypeError, match="BinaryIndex"):
        save_index(np.zeros((3, 8), dtype=np.uint8), tmp_path / "a.hlx")


def test_resave_mapped_index_over_its_own_file(index, queries, tmp_path):
    path = save_index(index, tmp_path / "a.hlx")
    mapped = load_index(path, mmap=True)
    mapped.add(np.zeros((2, 8), dtype=np.uint8), ids=[10_000, 10_001])
    save_index(mapped, path)  # the old mapping stays valid while the new file replaces it
    again = load_index(path, mmap=False)
    assert again.ntotal == index.ntotal + 2
    assert_same_results(again, mapped, queries)


@pytest.mark.parametrize("description", ["Flat", "MIH", "MIH2", "Table", "TwoStage(MIH,Flat)", "TwoStage8(Table,Flat)"])
def test_real_indexes_round_trip(description, make_codes, tmp_path):
    """Every index class round-trips through bytes and files, mapped or not, with identical results."""
    from hashlearn.index.factory import index_factory

    codes, queries = make_codes(500, 32, seed=71, clustered=True), make_codes(25, 32, seed=72, clustered=True)
    index = index_factory(description, 32)
    index.add(codes, ids=np.arange(500) * 3 + 1)
    index.remove_ids([1, 4, 7])
    path = save_index(index, tmp_path / "r.hlx")
    for loaded in (index_from_bytes(index_to_bytes(index)), load_index(path), load_index(path, mmap=False)):
        assert type(loaded) is type(index) and loaded.ntotal == 497
        assert_same_results(loaded, index, queries)
        loaded.add(codes[:3], ids=[5000, 5001, 5002])  # loaded indexes stay usable, mapped ones too
        assert loaded.ntotal == 500
    assert path.read_bytes() == index_to_bytes(index)


# --- hostile files (issue 12): every problem is a CorruptFileError, nothing is allocated first ----
def _load_all_ways(data: bytes, tmp_path, header_only: bool = True):
    """Every way a file reaches the loader; each must raise CorruptFileError (``header_only=False``:
    only the loaders that build the index, for problems in the stored state)."""
    path = tmp_path / "hostile.hlx"
    path.write_bytes(data)
    loads = [lambda: index_from_bytes(data), lambda: load_index(path), lambda: load_index(path, mmap=False),
             lambda: load_index(path, verify=False)]
    if header_only:
        loads += [lambda: io.verify_file(path), lambda: read_header(path)]
    for load in loads:
        with pytest.raises(CorruptFileError) as caught:
            load()
        yield caught.value


@pytest.mark.parametrize("length", [2**64 - 1, 2**63, 2**40, 17 << 20])
def test_huge_header_length_is_refused_before_it_is_read(index, tmp_path, length):
    """The header length was used (read(2**64-1): OverflowError/MemoryError) before its cap was checked."""
    data = bytearray(index_to_bytes(index))
    data[16:24] = length.to_bytes(8, "little")
    for error in _load_all_ways(bytes(data), tmp_path):
        assert "header length" in str(error) or "truncated" in str(error)


def test_header_length_beyond_the_file_is_truncation(index, tmp_path):
    data = bytearray(index_to_bytes(index))
    data[16:24] = (len(data)).to_bytes(8, "little")  # under the cap, but past the end of the file
    for error in _load_all_ways(bytes(data), tmp_path):
        assert "truncated" in str(error)


@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**32, 2**32, 2**32, 2**32], [2**62, 4]])
def test_overflowing_shape_cannot_pass_as_empty(index, tmp_path, shape):
    """2**32 x 2**32 wrapped to 0 in int64 (nbytes=0 passed and `index info` said 'checksums: ok')."""
    header, payload = split_file(index_to_bytes(index))
    header["arrays"].append({"name": "huge", "dtype": "|u1", "shape": shape, "offset": header["payload_nbytes"] + 64, "nbytes": 0})
    for error in _load_all_ways(resign(header, payload), tmp_path):
        assert "inconsistent" in str(error)


@pytest.mark.parametrize("mutate", [
    lambda spec: spec.update(dtype="|O"),
    lambda spec: spec.update(dtype="<U5"),
    lambda spec: spec.update(dtype="(2,)i4"),
    lambda spec: spec.update(dtype=["|u1"]),
    lambda spec: spec.update(shape=[2.5, 1]),
    lambda spec: spec.update(shape=[True, 8]),
    lambda spec: spec.update(shape=[-1, 8]),
    lambda spec: spec.update(shape=[1] * 40),
    lambda spec: spec.update(shape="300"),
    lambda spec: spec.update(offset=None),
    lambda spec: spec.update(offset=64),
    lambda spec: spec.update(nbytes=2**70),
    lambda spec: spec.update(name=""),
    lambda spec: spec.update(name=["codes"]),
    lambda spec: spec.pop("nbytes"),
    lambda spec: spec.update(extra=1),
])
def test_hostile_array_entries_are_corrupt_file_errors(index, tmp_path, mutate):
    """Re-signed headers whose array entries hold hostile values (once KeyError, TypeError, OverflowError...)."""
    header, payload = split_file(index_to_bytes(index))
    mutate(header["arrays"][0])
    list(_load_all_ways(resign(header, payload), tmp_path))


@pytest.mark.parametrize("mutate", [
    lambda h: h.update(payload_nbytes=True),
    lambda h: h.update(payload_nbytes=-64),
    lambda h: h.update(payload_nbytes=2**80),
    lambda h: h.update(payload_sha256="zz"),
    lambda h: h.update(arrays={"codes": 1}),
    lambda h: h.update(arrays=[1, 2]),
    lambda h: h.update(meta=[]),
    lambda h: h.update(kind=["flat"]),
    lambda h: h.update(format="numpy"),
    lambda h: h["arrays"].append(dict(h["arrays"][0])),  # duplicate name
    lambda h: h["meta"].update(n_bits="64"),
    lambda h: h["meta"].update(n_bits=2**80),
    lambda h: h["meta"].update(n_bits=None),
    lambda h: h["meta"].update(deep=json.loads("[" * 70 + "]" * 70)),
    lambda h: h.pop("meta"),
])
def test_hostile_header_fields_are_corrupt_file_errors(index, tmp_path, mutate):
    header, payload = split_file(index_to_bytes(index))
    meta_before = json.dumps(header["meta"])
    mutate(header)
    state_only = isinstance(header.get("meta"), dict) and json.dumps(header["meta"]) != meta_before
    list(_load_all_ways(resign(header, payload), tmp_path, header_only=not state_only))


def test_deeply_nested_header_json_is_refused(index, tmp_path):
    """100,000 nested lists made json raise RecursionError."""
    import hashlib

    body = b"[" * 100_000 + b"]" * 100_000
    prefix = io._PREFIX.pack(io.MAGIC, io.FORMAT_VERSION, 0, len(body), hashlib.sha256(body).digest())
    data = prefix + body + bytes(io._aligned(len(prefix + body)) - len(prefix + body))
    for error in _load_all_ways(data, tmp_path):
        assert "nests deeper" in str(error)


def test_reserved_flags_and_header_padding_are_checked(index, tmp_path):
    """Neither was checksummed nor checked, although the docs said every byte was covered."""
    header, payload = split_file(index_to_bytes(index))
    assert index_from_bytes(resign(header, payload)).ntotal == index.ntotal  # the helper itself writes valid files
    for error in _load_all_ways(resign(header, payload, flags=1), tmp_path):
        assert "reserved flags" in str(error)
    for error in _load_all_ways(resign(header, payload, padding_byte=7), tmp_path):
        assert "padding" in str(error)


def test_padding_between_arrays_is_covered_by_the_payload_checksum(bruteforce_cls, tmp_path):
    index = bruteforce_cls(24)  # 3-byte codes: padding after the codes array
    index.add(np.zeros((5, 3), dtype=np.uint8), ids=np.arange(5))
    data = bytearray(index_to_bytes(index))
    header, _ = split_file(bytes(data))
    codes = next(spec for spec in header["arrays"] if spec["name"] == "codes")
    assert codes["nbytes"] % 64  # there is padding after it
    data[header_offset(bytes(data)) + codes["offset"] + codes["nbytes"]] = 1
    with pytest.raises(CorruptFileError, match="payload checksum"):
        index_from_bytes(bytes(data))


def header_offset(data: bytes) -> int:
    return io._aligned(io._PREFIX.size + io._PREFIX.unpack(data[: io._PREFIX.size])[3])


def test_non_regular_files_are_refused(tmp_path):
    """A path linked to /dev/zero was read without end; a directory gave a misleading error."""
    link = tmp_path / "zero.hlx"
    link.symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        load_index(link)
    with pytest.raises(CorruptFileError, match="not a regular file"):
        read_header(link)
    with pytest.raises(IsADirectoryError):
        load_index(tmp_path)
    fifo = tmp_path / "pipe.hlx"
    os.mkfifo(fifo)
    with pytest.raises(CorruptFileError, match="not a regular file"):  # opening it would block
        load_index(fifo, mmap=False)


def test_stored_state_of_the_wrong_types_is_corrupt(tmp_path, make_codes):
    """from_state errors of any type (AttributeError, OverflowError, ...) become CorruptFileError."""
    from hashlearn.index.factory import index_factory

    index = index_factory("TwoStage(MIH,Flat)", 32)
    index.add(make_codes(50, 32, seed=3))
    header, payload = split_file(index_to_bytes(index))
    for bad in ("x", None, [], 2**70, -5, {"kind": "flat"}):
        for key in ("n_candidates", "first_stage", "n_bits", "rerank"):
            forged = json.loads(json.dumps(header))
            forged["meta"][key] = bad
            if (key, bad) == ("n_candidates", 2**70):  # valid, and harmless: k is clamped to the index
                loaded = index_from_bytes(resign(forged, payload))
                assert loaded.search(make_codes(2, 32, seed=4), 5).ids.shape == (2, 5)
                continue
            with pytest.raises(CorruptFileError):
                index_from_bytes(resign(forged, payload))
