"""Backdoor metrics: clean accuracy, attack success, retrieval under trigger, trigger visibility.

Every model-based metric runs the model in eval mode (the caller's mode is
restored): BatchNorm batch statistics must not leak between inputs.

Classifier metrics: :func:`clean_accuracy`, :func:`attack_success_rate` (over
test inputs the mapping would flip: non-target classes for all-to-one).
Hash-model metrics: :func:`clean_map` and :func:`targeted_retrieval` (t-mAP: the
mAP of triggered queries when relevance is "database item of class eta(y)";
and the share of the top 100 retrieved from the target class).
Visibility: :func:`linf_distance`, :func:`psnr`, :func:`ssim`.
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_labels, check_positive_int
from hashlearn.codes import hamming_distances, pack_bits, unpack_bits
from hashlearn.eval.metrics import mean_average_precision, precision_at_k
from hashlearn.models.inference import batched_outputs


def _eval_outputs(model, X, batch_size: int = 1024) -> np.ndarray:
    """Model outputs for a numpy batch, in eval mode, without gradients (mode restored)."""
    return batched_outputs(model, X, 0, batch_size)


def clean_accuracy(model, X, y) -> float:
    """Top-1 accuracy of a classifier on clean inputs."""
    y = check_labels(y, "y", n_samples=len(X))
    return float((_eval_outputs(model, X).argmax(1) == y).mean())


def attack_success_rate(model, X, y, attack) -> float:
    """Share of triggered inputs classified as their target ``eta(y)``.

    Only inputs the mapping flips count: for all-to-one, test inputs of the
    target class are left out (they would "succeed" without any backdoor).
    """
    y = check_labels(y, "y", n_samples=len(X))
    keep = attack.mapping.source_mask(y)
    if not keep.any():
        raise ValueError("no test input outside the target class: attack success is undefined.")
    triggered = attack.apply_trigger(np.asarray(X)[keep])
    return float((_eval_outputs(model, triggered).argmax(1) == attack.mapping(y[keep])).mean())


def _codes(model, X) -> np.ndarray:
    from hashlearn.codes import sign_to_codes

    return sign_to_codes(_eval_outputs(model, X))


def majority_code(codes, labels, target_class: int) -> np.ndarray:
    """The bitwise majority of the packed codes of one class (ties -> 1): that class's code.

    >>> from hashlearn.codes import pack_bits
    >>> codes = pack_bits(np.array([[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0], [0] * 8]))
    >>> unpack_bits(majority_code(codes, np.array([0, 0, 0, 1]), 0), 8).tolist()
    [[1, 1, 0, 0, 0, 0, 0, 0]]
    """
    members = np.asarray(codes)[np.asarray(labels) == target_class]
    if len(members) == 0:
        raise ValueError(f"no item of target class {target_class}: its code is undefined.")
    bits = unpack_bits(members)
    return pack_bits((2 * bits.sum(0, dtype=np.int64) >= len(bits)).astype(np.uint8)[None, :])


def clean_map(model, X_db, y_db, X_query, y_query, top_k: int | None = None) -> float:
    """mAP(@top_k) of clean queries against a clean database; relevant = same label."""
    return mean_average_precision(_codes(model, X_query), _codes(model, X_db), y_query, y_db, top_k)


def targeted_retrieval(model, X_db, y_db, X_query, y_query, attack, top_k: int | None = None, top_n: int = 100) -> dict:
    """Retrieval with triggered queries: t-mAP and the share of the top ``top_n`` from the target class.

    Queries are the test inputs the mapping flips, each triggered; database
    item ``j`` is relevant to query ``i`` when ``y_db[j] == eta(y_i)`` (so the
    standard mAP with the queries relabelled by ``eta``). The same numbers for
    the clean versions of those queries are the baseline: how often the
    target class comes up without a trigger. For all-to-one targets,
    ``hamming_to_target_code_*`` is the mean Hamming distance of the query codes
    to the target class's majority database code.
    """
    top_n = check_positive_int(top_n, "top_n")
    y_db = check_labels(y_db, "y_db", n_samples=len(X_db))
    y_query = check_labels(y_query, "y_query", n_samples=len(X_query))
    keep = attack.mapping.source_mask(y_query)
    if not keep.any():
        raise ValueError("no query outside the target class: targeted retrieval is undefined.")
    queries, targets = np.asarray(X_query)[keep], attack.mapping(y_query[keep])
    db_codes = _codes(model, X_db)
    out = {}
    target_codes = None
    if attack.mapping.kind == "all-to-one":
        target_codes = majority_code(db_codes, y_db, attack.mapping.target_class)
    for label, batch in (("triggered", attack.apply_trigger(queries)), ("clean", queries)):
        query_codes = _codes(model, batch)
        out[f"t_map_{label}"] = mean_average_precision(query_codes, db_codes, targets, y_db, top_k)
        out[f"top{top_n}_target_share_{label}"] = precision_at_k(query_codes, db_codes, targets, y_db, top_n)
        if target_codes is not None:  # mean Hamming distance to the target class's majority code
            out[f"hamming_to_target_code_{label}"] = float(hamming_distances(query_codes, target_codes).mean())
    return out


# -- visibility ---------------------------------------------------------------


def _pair(x, x_triggered) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    x_triggered = np.asarray(x_triggered, dtype=np.float64)
    if x.shape != x_triggered.shape:
        raise ValueError(f"x and x_triggered must have the same shape, got {x.shape} and {x_triggered.shape}.")
    return x, x_triggered


def linf_distance(x, x_triggered) -> float:
    """Largest absolute pixel change over the batch."""
    x, x_triggered = _pair(x, x_triggered)
    return float(np.abs(x - x_triggered).max())


def psnr(x, x_triggered, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)`` per image, averaged; ``inf`` for identical images.

    >>> round(psnr(np.zeros((1, 2, 2)), np.full((1, 2, 2), 0.1)), 6)
    20.0
    """
    x, x_triggered = _pair(x, x_triggered)
    mse = ((x - x_triggered) ** 2).reshape(len(x), -1).mean(1)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(data_range**2 / mse)
    return float(np.mean(values))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 2-D Gaussian window ``(size, size)`` (the SSIM paper's 11x11, sigma 1.5)."""
    offsets = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    window = np.outer(g, g)
    return window / window.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Weighted local sums over every full window position ('valid' correlation) of ``(..., H, W)``."""
    from numpy.lib.stride_tricks import sliding_window_view

    patches = sliding_window_view(image, window.shape, axis=(-2, -1))
    return np.einsum("...ij,ij->...", patches, window)


def ssim(x, x_triggered, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (Wang et al. 2004) over a batch of grey or multi-channel images.

    Local means, variances and covariance use a Gaussian window over every
    position where the window fits ('valid', as in the reference MATLAB code);
    ``SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))``
    with ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, averaged over positions, channels and images.
    Inputs are ``(n, H, W)`` or ``(n, C, H, W)``; flat square images are reshaped.

    >>> x = np.random.default_rng(0).random((2, 16, 16))
    >>> ssim(x, x)
    1.0
    """
    x, y = _pair(x, x_triggered)
    if x.ndim == 2:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(f"flat images must be square, got {x.shape[1]} features.")
        x, y = x.reshape(-1, side, side), y.reshape(-1, side, side)
    if x.ndim not in (3, 4):
        raise ValueError(f"ssim needs images (n, H, W) or (n, C, H, W), got shape {x.shape}.")
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} are smaller than window_size={window_size}.")
    window = gaussian_window(window_size, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov = _filter_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def visibility(x, x_triggered, window_size: int = 11) -> dict:
    """L-inf, PSNR (dB) and SSIM of a trigger on a batch of images."""
    return {"linf": linf_distance(x, x_triggered), "psnr": psnr(x, x_triggered), "ssim": ssim(x, x_triggered, window_size=window_size)}
