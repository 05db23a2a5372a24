import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from hashlearn.codes import pack_bits
from hashlearn.eval.diagnostics import (
    bit_balance,
    bit_correlation,
    code_diagnostics,
    diagnostics_figure,
    hamming_histograms,
    quantization_error,
    tsne_embedding,
)


@pytest.fixture
def bits_and_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=40)
    centers = rng.integers(0, 2, size=(3, 16))
    flips = rng.random((40, 16)) < 0.1
    bits = (centers[labels] ^ flips).astype(np.uint8)
    bits[:, 5] = 1  # a constant bit
    return bits, labels


def test_balance_and_correlation_match_slow_loops(bits_and_labels):
    bits, _ = bits_and_labels
    codes = pack_bits(bits)
    n, n_bits = bits.shape
    balance = bit_balance(codes)
    correlation = bit_correlation(codes)
    for j in range(n_bits):
        p = sum(bits[i, j] for i in range(n)) / n
        entropy = 0.0 if p in (0, 1) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
        assert balance["share_of_ones"][j] == pytest.approx(p)
        assert balance["entropy"][j] == pytest.approx(entropy)
        for k in range(n_bits):
            if j == k:
                expected = 1.0
            elif bits[:, j].min() == bits[:, j].max() or bits[:, k].min() == bits[:, k].max():
                expected = 0.0
            else:
                mj, mk = bits[:, j].mean(), bits[:, k].mean()
                cov = sum((bits[i, j] - mj) * (bits[i, k] - mk) for i in range(n)) / n
                expected = cov / math.sqrt(sum((bits[i, j] - mj) ** 2 for i in range(n)) / n * sum((bits[i, k] - mk) ** 2 for i in range(n)) / n)
            assert correlation[j, k] == pytest.approx(expected, abs=1e-12)
    assert balance["min_entropy"] == 0.0 and balance["max_imbalance"] == 0.5


def test_hamming_histograms_match_slow_loop(bits_and_labels):
    bits, labels = bits_and_labels
    result = hamming_histograms(pack_bits(bits), labels)
    similar, dissimilar = [0] * 17, [0] * 17
    for i in range(len(bits)):
        for j in range(i + 1, len(bits)):
            distance = int((bits[i] != bits[j]).sum())
            (similar if labels[i] == labels[j] else dissimilar)[distance] += 1
    assert result["similar"] == similar and result["dissimilar"] == dissimilar
    assert result["mean_similar"] < result["mean_dissimilar"]


def test_multi_label_similarity_and_sampling():
    bits = np.random.default_rng(1).integers(0, 2, size=(30, 8)).astype(np.uint8)
    labels = np.zeros((30, 3), dtype=np.uint8)
    labels[:15, 0] = 1
    labels[10:, 1] = 1  # items 10..14 share label 0 with the first 15 and label 1 with the rest
    result = hamming_histograms(pack_bits(bits), labels)
    n_similar = sum(1 for i in range(30) for j in range(i + 1, 30) if (labels[i] & labels[j]).any())
    assert sum(result["similar"]) == n_similar and sum(result["dissimilar"]) == 30 * 29 // 2 - n_similar
    sampled = hamming_histograms(pack_bits(bits), labels, max_items=10)
    assert sampled["n_items"] == 10 and sum(sampled["similar"]) + sum(sampled["dissimilar"]) == 45


def test_quantization_error_and_summary(bits_and_labels):
    bits, labels = bits_and_labels
    outputs = np.where(bits > 0, 0.5, -1.0)
    assert quantization_error(outputs) == pytest.approx(np.mean(np.where(bits > 0, 0.25, 0.0)))
    summary = code_diagnostics(pack_bits(bits), labels, outputs)
    assert summary["n_bits"] == 16 and summary["hamming_gap"] > 0 and summary["quantization_error"] > 0
    import json

    json.dumps(summary)  # JSON-ready


def test_tsne_separates_clusters_and_figure_has_no_pyplot_state(bits_and_labels):
    import matplotlib

    bits, labels = bits_and_labels
    embedding, index = tsne_embedding(pack_bits(bits), random_state=0)
    assert embedding.shape == (40, 2) and (index == np.arange(40)).all()
    centroids = np.array([embedding[labels == c].mean(axis=0) for c in range(3)])
    within = np.mean([np.linalg.norm(embedding[labels == c] - centroids[c], axis=1).mean() for c in range(3)])
    between = np.mean([np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3)])
    assert between > within
    figure = diagnostics_figure(pack_bits(bits), labels, max_items=40)
    assert isinstance(figure, Figure) and len(figure.axes) >= 4
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert figure not in [plt.figure(n) for n in plt.get_fignums()]
    assert matplotlib.get_backend()  # nothing switched globally


def test_errors():
    with pytest.raises(TypeError):
        bit_balance(np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        bit_balance(np.zeros((0, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="rows"):
        hamming_histograms(np.zeros((3, 1), dtype=np.uint8), np.zeros(2))
    with pytest.raises(ValueError, match="outputs"):
        quantization_error(np.zeros(3))
