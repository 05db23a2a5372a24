import numpy as np
import pytest

from hashlearn.codes import (
    codes_to_pm1,
    hamming_distances,
    pack_bits,
    popcount,
    reference_search,
    sign_to_codes,
    unpack_bits,
    validate_codes,
)


def test_bit_layout_is_little_endian_within_bytes():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(5, 24))
    codes = pack_bits(bits)
    assert codes.dtype == np.uint8 and codes.shape == (5, 3)
    for row in range(5):
        for j in range(24):
            assert (codes[row, j // 8] >> (j % 8)) & 1 == bits[row, j]
    np.testing.assert_array_equal(unpack_bits(codes), bits)


def test_sign_to_codes_sets_bit_where_output_positive():
    outputs = np.array([[0.5, -0.1, 0.0, 1.0, -1.0, 0.2, 0.3, -0.3]])
    assert unpack_bits(sign_to_codes(outputs)).tolist() == [[1, 0, 0, 1, 0, 1, 1, 0]]
    assert codes_to_pm1(sign_to_codes(outputs)).tolist() == [[1, -1, -1, 1, -1, 1, 1, -1]]


def test_hamming_distances_match_explicit_bit_count():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(7, 4), dtype=np.uint8)
    b = rng.integers(0, 256, size=(9, 4), dtype=np.uint8)
    expected = (unpack_bits(a)[:, None, :] != unpack_bits(b)[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(hamming_distances(a, b, chunk_size=3), expected)
    np.testing.assert_array_equal(popcount(a), unpack_bits(a).sum(axis=1))


def test_reference_search_breaks_ties_by_id_and_clamps_k():
    database = np.array([[3], [1], [1], [0]], dtype=np.uint8)
    result = reference_search(np.array([[1]], dtype=np.uint8), database, k=6)
    assert result.ids.tolist() == [[1, 2, 0, 3]]  # k=6 > 4 items: 4 columns, nothing to pad
    assert result.distances.tolist() == [[0, 0, 1, 1]]


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((2, 2), dtype=np.int64), TypeError),
        (np.zeros(4, dtype=np.uint8), ValueError),
        ([[1, 2]], TypeError),
    ],
)
def test_validate_codes_rejects_bad_input(bad, error):
    with pytest.raises(error):
        validate_codes(bad)


def test_validate_codes_checks_width():
    with pytest.raises(ValueError, match="2 bytes per code for n_bits=16"):
        validate_codes(np.zeros((1, 3), dtype=np.uint8), n_bits=16)


def test_pack_bits_rejects_non_binary_and_partial_bytes():
    with pytest.raises(ValueError, match="only 0 and 1"):
        pack_bits(np.full((1, 8), 2))
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_bits(np.zeros((1, 7)))
