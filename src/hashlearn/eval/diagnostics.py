"""Code-quality diagnostics: how binary, balanced, independent and separating a set of codes is.

Pure functions of codes (packed ``uint8``), continuous outputs and labels:

* :func:`quantization_error` -- ``mean (|u| - 1)^2`` of continuous outputs (0 = already binary);
* :func:`bit_balance` -- each bit's share of ones and its entropy in bits (1 = balanced);
* :func:`bit_correlation` -- the Pearson correlation matrix of the bits;
* :func:`hamming_histograms` -- counts of Hamming distances of similar vs dissimilar pairs;
* :func:`tsne_embedding` -- a 2-D t-SNE (scikit-learn, Hamming metric) of the codes;
* :func:`code_diagnostics` -- the JSON-ready summary of all of them (written into a run's metrics).

Plots are built on :class:`matplotlib.figure.Figure` objects, never through
``pyplot``, so they hold no global state: :func:`diagnostics_figure`.

>>> import numpy as np
>>> from hashlearn.codes import pack_bits
>>> codes = pack_bits(np.array([[1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1, 0, 1]]))
>>> bit_balance(codes)["mean_entropy"]
1.0
"""

from __future__ import annotations

import numpy as np

from hashlearn.codes import hamming_distances, unpack_bits, validate_codes


def _bits(codes) -> np.ndarray:
    codes = validate_codes(codes)
    if len(codes) == 0:
        raise ValueError("codes is empty; diagnostics need at least one code.")
    return unpack_bits(codes)


def quantization_error(outputs) -> float:
    """``mean (|u| - 1)^2`` of continuous outputs ``(n, n_bits)``: how far they are from ±1."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.size == 0:
        raise ValueError(f"outputs must be a non-empty 2-D array (n, n_bits) of continuous codes, got shape {outputs.shape}.")
    if not np.isfinite(outputs).all():
        raise ValueError("outputs contain NaN or infinite values.")
    return float(np.mean((np.abs(outputs) - 1) ** 2))


def bit_balance(codes) -> dict:
    """Per bit: the share of ones and the entropy (bits, 1 = balanced); their means and the worst bit."""
    bits = _bits(codes)
    ones = bits.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(np.where(ones > 0, ones * np.log2(ones), 0) + np.where(ones < 1, (1 - ones) * np.log2(1 - ones), 0))
    return {"share_of_ones": ones.tolist(), "entropy": entropy.tolist(), "mean_entropy": float(entropy.mean()),
            "min_entropy": float(entropy.min()), "max_imbalance": float(np.abs(ones - 0.5).max())}


def bit_correlation(codes) -> np.ndarray:
    """``(n_bits, n_bits)`` Pearson correlation of the bits; a constant bit correlates 0 with the others (1 with itself)."""
    bits = _bits(codes).astype(np.float64)
    centred = bits - bits.mean(axis=0)
    std = np.sqrt((centred**2).mean(axis=0))
    safe = np.where(std > 0, std, 1.0)
    correlation = (centred.T @ centred / len(bits)) / np.outer(safe, safe)
    correlation[std == 0, :] = 0
    correlation[:, std == 0] = 0
    np.fill_diagonal(correlation, 1.0)
    return correlation


def _pairs_sample(n: int, max_items: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, max_items, replace=False)) if n > max_items else np.arange(n)


def hamming_histograms(codes, labels, *, max_items: int = 2000, random_state: int = 0) -> dict:
    """Counts of Hamming distances ``0..n_bits`` over all pairs ``i < j`` of (a sample of) the items.

    Pairs sharing a label (multi-hot: at least one) are "similar". With more
    than ``max_items`` items a seeded sample of ``max_items`` is used (the pair
    count is quadratic). Returns ``distance``, ``similar`` and ``dissimilar``
    count lists and the mean distance of each kind.
    """
    codes = validate_codes(codes)
    labels = np.asarray(labels)
    if len(labels) != len(codes):
        raise ValueError(f"labels has {len(labels)} rows but codes has {len(codes)}; they must match.")
    if len(codes) < 2:
        raise ValueError(f"hamming_histograms needs at least 2 codes, got {len(codes)}.")
    index = _pairs_sample(len(codes), int(max_items), np.random.default_rng(random_state))
    codes, labels = codes[index], labels[index]
    n_bits = codes.shape[1] * 8
    distances = hamming_distances(codes, codes)
    if labels.ndim == 2:
        similar = (labels.astype(np.int64) @ labels.T.astype(np.int64)) > 0
    else:
        similar = labels[:, None] == labels[None, :]
    upper = np.triu(np.ones_like(similar, dtype=bool), k=1)
    result = {"distance": list(range(n_bits + 1)), "n_items": int(len(codes))}
    for name, mask in (("similar", similar & upper), ("dissimilar", ~similar & upper)):
        values = distances[mask]
        result[name] = np.bincount(values, minlength=n_bits + 1).tolist()
        result[f"mean_{name}"] = float(values.mean()) if len(values) else None
    return result


def tsne_embedding(codes, *, max_items: int = 1000, perplexity: float = 30.0, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(embedding (m, 2), index (m,))``: t-SNE of (a seeded sample of at most ``max_items``) codes, Hamming metric."""
    from sklearn.manifold import TSNE

    bits = _bits(codes)
    if len(bits) < 3:
        raise ValueError(f"t-SNE needs at least 3 codes, got {len(bits)}.")
    index = _pairs_sample(len(bits), int(max_items), np.random.default_rng(random_state))
    sample = bits[index].astype(bool)
    perplexity = min(float(perplexity), (len(sample) - 1) / 3)
    embedding = TSNE(n_components=2, metric="hamming", init="random", perplexity=perplexity, random_state=random_state).fit_transform(sample)
    return embedding.astype(np.float32), index


def code_diagnostics(codes, labels=None, outputs=None, *, max_items: int = 2000, random_state: int = 0) -> dict:
    """The JSON-ready summary: balance, correlation, quantization error (with ``outputs``) and,
    with ``labels``, the similar/dissimilar Hamming histograms and their separation."""
    balance = bit_balance(codes)
    correlation = bit_correlation(codes)
    off_diagonal = np.abs(correlation[~np.eye(len(correlation), dtype=bool)])
    result = {
        "n_bits": int(validate_codes(codes).shape[1] * 8),
        "bit_mean_entropy": balance["mean_entropy"], "bit_min_entropy": balance["min_entropy"],
        "bit_max_imbalance": balance["max_imbalance"], "bit_share_of_ones": balance["share_of_ones"],
        "bit_mean_abs_correlation": float(off_diagonal.mean()) if off_diagonal.size else 0.0,
        "bit_max_abs_correlation": float(off_diagonal.max()) if off_diagonal.size else 0.0,
    }
    if outputs is not None:
        result["quantization_error"] = quantization_error(outputs)
    if labels is not None:
        histograms = hamming_histograms(codes, labels, max_items=max_items, random_state=random_state)
        result["hamming_histograms"] = histograms
        if histograms["mean_similar"] is not None and histograms["mean_dissimilar"] is not None:
            result["hamming_gap"] = histograms["mean_dissimilar"] - histograms["mean_similar"]
    return result


def diagnostics_figure(codes, labels=None, *, tsne: bool = True, max_items: int = 1000, random_state: int = 0):
    """A :class:`matplotlib.figure.Figure` (no pyplot state): bit balance, bit correlation,
    the similar/dissimilar Hamming histograms and the t-SNE of the codes (the last two need ``labels``)."""
    from matplotlib.figure import Figure

    panels = 2 + (labels is not None) + (labels is not None and tsne)
    figure = Figure(figsize=(4 * panels, 3.6), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    balance = bit_balance(codes)
    axes[0].bar(np.arange(len(balance["share_of_ones"])), balance["share_of_ones"], color="tab:blue")
    axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    axes[0].set(title=f"bit balance (mean entropy {balance['mean_entropy']:.3f})", xlabel="bit", ylabel="share of ones", ylim=(0, 1))
    image = axes[1].imshow(bit_correlation(codes), vmin=-1, vmax=1, cmap="coolwarm")
    axes[1].set(title="bit correlation", xlabel="bit", ylabel="bit")
    figure.colorbar(image, ax=axes[1], shrink=0.8)
    if labels is not None:
        histograms = hamming_histograms(codes, labels, max_items=max_items, random_state=random_state)
        for name, color in (("similar", "tab:green"), ("dissimilar", "tab:red")):
            counts = np.asarray(histograms[name], dtype=np.float64)
            axes[2].plot(histograms["distance"], counts / max(counts.sum(), 1), color=color, label=name)
        axes[2].set(title="Hamming distance of pairs", xlabel="Hamming distance", ylabel="share of pairs")
        axes[2].legend()
        if tsne:
            embedding, index = tsne_embedding(codes, max_items=max_items, random_state=random_state)
            labels = np.asarray(labels)
            colour = labels[index] if labels.ndim == 1 else labels[index].argmax(axis=1)
            axes[3].scatter(embedding[:, 0], embedding[:, 1], c=colour, cmap="tab10", s=4)
            axes[3].set(title="t-SNE of the codes (Hamming)", xticks=[], yticks=[])
    return figure


__all__ = ["bit_balance", "bit_correlation", "code_diagnostics", "diagnostics_figure", "hamming_histograms", "quantization_error", "tsne_embedding"]
