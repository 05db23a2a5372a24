"""IDX reader: round trips, and every way a file can be broken."""

import gzip
import struct

import numpy as np
import pytest

from hashlearn.data.idx import encode_idx, parse_idx, read_idx, write_idx
from hashlearn.errors import CorruptFileError


def reference_encode(array):
    """Straightforward IDX writer, written from the format description."""
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 3), (0, 28, 28)])
def test_round_trip_matches_reference(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 100 - (0 if dtype == np.uint8 else 50)).astype(dtype)
    assert encode_idx(array) == reference_encode(array)
    for name in ("a-idx", "a-idx.gz"):
        write_idx(tmp_path / name, array)
        back = read_idx(tmp_path / name)
        assert back.dtype == np.dtype(dtype) and back.shape == shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "no-suffix").write_bytes(gzip.compress(encode_idx(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), array)


def test_big_endian_values_are_decoded():
    content = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", 1, -2)
    np.testing.assert_array_equal(parse_idx(content), [1, -2])


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "too short"),
    (b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "dtype code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "header announces 3 dimensions"),
    (b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + b"\x00" * 5, "truncated"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x00" * 3, "trailing bytes"),
])
def test_corrupt_headers_and_payloads(content, message):
    with pytest.raises(CorruptFileError, match=message) as info:
        parse_idx(content, "bad-file")
    assert "bad-file" in str(info.value)


def test_truncated_payload_in_a_real_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=r"train-images-idx3-ubyte: payload truncated.*\(4, 28, 28\)"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    write_idx(path, np.arange(5000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CorruptFileError, match="x-idx1-ubyte.gz: the gzip stream is truncated or corrupt"):
        read_idx(path)


def test_corrupted_gzip_bytes(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.arange(5000, dtype=np.int32))
    raw = bytearray(path.read_bytes())
    raw[20:60] = b"\xff" * 40
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="x.gz"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")


def test_unsupported_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="uint16"):
        encode_idx(np.zeros(3, np.uint16))


# --- hostile IDX files (issue 12) -----------------------------------------------------------------
import gzip  # noqa: E402
import tracemalloc  # noqa: E402


def _peak_while(function) -> int:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_gzip_bomb_is_bounded_by_the_declared_dimensions(tmp_path):
    """.gz files were inflated fully into memory with no cap (1 MB -> 1 GiB, 2.1 GB peak)."""
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1000)  # declares 1,000 bytes ...
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(200 << 20), compresslevel=9))  # ... and inflates to 200 MB
    assert path.stat().st_size < 1 << 20

    def load():
        with pytest.raises(CorruptFileError, match="trailing bytes"):
            read_idx(path)

    assert _peak_while(load) < 8 << 20  # stops one chunk after the declared 1,000 bytes


def test_declared_size_over_the_cap_is_refused_before_allocation(tmp_path):
    path = tmp_path / "big-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x0D, 3]) + struct.pack(">III", 2**31, 2**31, 4)))
    for max_nbytes in (1 << 30, 2**80):
        def load(max_nbytes=max_nbytes):
            with pytest.raises(CorruptFileError, match="limit|truncated"):
                read_idx(path, max_nbytes=max_nbytes)

        assert _peak_while(load) < 4 << 20


def test_overflowing_dimensions_cannot_wrap(tmp_path):
    """np.prod in int64 wrapped 2**32-1 dimensions; sizes are Python integers now."""
    shape = (2**32 - 1,) * 8
    content = bytes([0, 0, 0x08, 8]) + struct.pack(">8I", *shape)
    with pytest.raises(CorruptFileError, match="truncated"):
        parse_idx(content)
    (tmp_path / "wrap").write_bytes(content)
    with pytest.raises(CorruptFileError, match="truncated|limit"):
        read_idx(tmp_path / "wrap")


def test_lying_gzip_trailer_still_reads_exactly(tmp_path):
    """A gzip trailer that disagrees with the header (or a multi-member file) still reads, never past the header."""
    array = np.arange(3000, dtype=np.int32).reshape(30, 100)
    content = encode_idx(array)
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(content[:1000]) + gzip.compress(content[1000:]))
    np.testing.assert_array_equal(read_idx(path), array)
    assert read_idx(path).flags.writeable


def test_non_regular_idx_files(tmp_path):
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        read_idx(tmp_path / "zero")
    with pytest.raises(IsADirectoryError):
        read_idx(tmp_path)


def test_gzip_reads_hold_little_besides_the_array(tmp_path, traced_peak):
    """Inflating held five 256 KiB buffers at once (input, unconsumed tail, output, buffer, copy):
    +1.3 MiB over a 0.75 MiB IDX array (2.5x); now 64 KiB pieces."""
    images = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "images.gz", images)
    loaded, peak = traced_peak(lambda: read_idx(tmp_path / "images.gz"))
    assert np.array_equal(loaded, images)
    assert peak < images.nbytes + (512 << 10), f"{(peak - images.nbytes) >> 10} KiB besides the array"
