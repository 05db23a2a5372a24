"""Plots of runs: PR and P@k curves, training curves, mAP vs bits, attack bars, image grids.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``: no global figure registry, no GUI backend, nothing to close, and
the caller's backend choice (``matplotlib.use``) is left alone -- the figures
render to PNG through the Agg canvas whatever backend the application picked,
so plots work headless.

>>> fig = pr_curve_figure({"itq 32 bits": {"precision": [1.0, 0.8, 0.5], "recall": [0.1, 0.4, 1.0]}})
>>> figure_to_png(fig)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def new_figure(width: float = 5.6, height: float = 3.8, ncols: int = 1, nrows: int = 1):
    """A ``Figure`` with an Agg canvas and a grid of axes: ``(fig, axes)`` (axes a flat list)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def figure_to_png(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (rendered by Agg)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write the figure as a PNG file atomically."""
    from hashlearn._io import atomic_write_bytes

    return atomic_write_bytes(path, figure_to_png(fig, dpi=dpi))


def _finish(ax, xlabel: str, ylabel: str, title: str = "", legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def pr_curve_figure(curves: Mapping[str, Mapping], title: str = "Precision-recall (Hamming radius sweep)"):
    """One line per label; each curve maps ``precision`` and ``recall`` to equal-length lists
    (the points of increasing Hamming radius, as :func:`hashlearn.eval.metrics.pr_curve` gives)."""
    fig, (ax,) = new_figure()
    for label, curve in curves.items():
        ax.plot(curve["recall"], curve["precision"], marker=".", markersize=4, label=label)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.02)
    _finish(ax, "recall (within Hamming radius)", "precision", title)
    fig.tight_layout()
    return fig


def pk_curve_figure(curves: Mapping[str, Mapping], title: str = "Precision at k"):
    """One line per label; each curve maps ``k`` and ``precision`` to equal-length lists."""
    fig, (ax,) = new_figure()
    for label, curve in curves.items():
        ax.plot(curve["k"], curve["precision"], marker=".", markersize=4, label=label)
    ks = [k for curve in curves.values() for k in curve["k"]]
    if ks and min(ks) > 0 and max(ks) / min(ks) >= 20:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    _finish(ax, "k (number of results)", "precision@k", title)
    fig.tight_layout()
    return fig


def training_curves_figure(history: Sequence[Mapping], metric_name: str = "validation mAP"):
    """Training loss and the validation metric per epoch (two panels); ``history`` is the
    Trainer's list of ``{"epoch", "train_loss", "val_metric", ...}`` rows."""
    fig, (loss_ax, metric_ax) = new_figure(width=9.0, height=3.4, ncols=2)
    epochs = [row["epoch"] for row in history]
    loss_ax.plot(epochs, [row.get("train_loss") for row in history], marker="o", markersize=3, color="tab:blue")
    _finish(loss_ax, "epoch", "training loss", "Training loss", legend=False)
    values = [(row["epoch"], row["val_metric"]) for row in history if row.get("val_metric") is not None]
    if values:
        metric_ax.plot(*zip(*values), marker="o", markersize=3, color="tab:green")
        best_epoch, best = max(values, key=lambda item: (item[1], -item[0]))
        metric_ax.scatter([best_epoch], [best], s=60, facecolors="none", edgecolors="tab:red", zorder=3, label=f"best: epoch {best_epoch}")
    else:
        metric_ax.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=metric_ax.transAxes)
    _finish(metric_ax, "epoch", metric_name, metric_name[:1].upper() + metric_name[1:])
    for ax in (loss_ax, metric_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def bits_figure(series: Mapping[str, Sequence[tuple[int, float]]], metric_name: str = "mAP"):
    """``metric_name`` against the code length; one line per method (points sorted by bits)."""
    fig, (ax,) = new_figure()
    all_bits = set()
    for label, points in series.items():
        points = sorted(points)
        all_bits.update(bits for bits, _ in points)
        ax.plot([b for b, _ in points], [v for _, v in points], marker="o", markersize=4, label=label)
    if all_bits:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(all_bits))
        ax.set_xticklabels([str(b) for b in sorted(all_bits)])
    _finish(ax, "code length (bits)", metric_name, f"{metric_name} vs code length")
    fig.tight_layout()
    return fig


def grouped_bar_figure(groups: Mapping[str, Mapping[str, float]], title: str = "", ylabel: str = "value"):
    """Bars per group (e.g. a metric) and series (e.g. clean / attacked), values labelled."""
    series = list(dict.fromkeys(name for values in groups.values() for name in values))
    fig, (ax,) = new_figure(width=max(4.0, 1.4 * len(groups) * max(1, len(series)) ** 0.5 + 2), height=3.4)
    width = 0.8 / max(1, len(series))
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        heights = [values.get(name, math.nan) for values in groups.values()]
        bars = ax.bar(xs, heights, width=width * 0.95, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups))
    ax.margins(y=0.15)
    _finish(ax, "", ylabel, title)
    fig.tight_layout()
    return fig


def as_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An input row as something ``imshow`` draws: ``(H, W)`` grey or ``(H, W, 3)``; the colormap.

    Accepts ``(H, W)``, ``(C, H, W)`` with 1 or 3 channels, or a flat vector whose
    length is a square (``64`` -> 8x8, ``784`` -> 28x28). Returns ``None`` for inputs
    that are not images (e.g. embedding vectors).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    elif x.ndim == 1:
        side = math.isqrt(x.size)
        if side * side != x.size or side < 4:
            return None, None
        x = x.reshape(side, side)
    if x.ndim == 2:
        return x, "gray"
    if x.ndim == 3 and x.shape[2] == 3:
        return np.clip(x, 0, 1), None
    return None, None


def image_grid_figure(
    rows: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str],
    column_titles: Sequence[str] = (),
    value_ranges: Sequence[tuple[float, float] | None] | None = None,
):
    """A grid of input images (rows e.g. clean / adversarial / difference), or ``None`` when
    the inputs are not images. Grey images of a row share one value range: ``value_ranges[r]``
    when given (e.g. ``(0, 1)`` so that 0.5 is mid-grey), else the row's min and max."""
    images = [[as_image(x) for x in row] for row in rows]
    if not images or not images[0] or any(img is None for row in images for img, _ in row):
        return None
    n_rows, n_cols = len(images), max(len(row) for row in images)
    fig, axes = new_figure(width=1.25 * n_cols + 0.9, height=1.3 * n_rows + 0.3, ncols=n_cols, nrows=n_rows)
    for r, row in enumerate(images):
        values = np.concatenate([img.ravel() for img, _ in row])
        fixed = value_ranges[r] if value_ranges is not None and r < len(value_ranges) else None
        low, high = fixed if fixed is not None else (float(values.min()), float(values.max()))
        if high <= low:
            high = low + 1.0
        for c in range(n_cols):
            ax = axes[r * n_cols + c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row):
                img, cmap = row[c]
                ax.imshow(img, cmap=cmap, vmin=low if cmap else None, vmax=high if cmap else None, interpolation="nearest")
            else:
                ax.set_axis_off()
            if c == 0:
                ax.set_ylabel(row_titles[r], fontsize=8)
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=8)
    fig.tight_layout()
    return fig


def latent_scatter_figure(points, labels, poisoned, noise=None, title: str = "t-SNE of latent features"):
    """2-D points (a t-SNE) coloured by label; poisoned points drawn over them as black crosses, noise-mode ones as rings."""
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels)
    poisoned = np.asarray(poisoned, dtype=bool)
    noise = np.zeros(len(points), bool) if noise is None else np.asarray(noise, dtype=bool)
    if points.ndim != 2 or points.shape[1] != 2 or not (len(labels) == len(poisoned) == len(noise) == len(points)):
        raise ValueError(f"points must be (n, 2) with n labels and masks, got points {points.shape}, {len(labels)} labels, "
                         f"{len(poisoned)} and {len(noise)} mask entries.")
    fig, (ax,) = new_figure(width=5.6, height=4.6)
    clean = ~poisoned & ~noise
    scatter = ax.scatter(points[clean, 0], points[clean, 1], c=labels[clean], cmap="tab10", s=9, alpha=0.7,
                         vmin=0, vmax=max(9, int(labels.max()) if len(labels) else 9))
    if noise.any():
        ax.scatter(points[noise, 0], points[noise, 1], facecolors="none", edgecolors="0.3", s=18, linewidths=0.8,
                   label=f"noise mode, true label ({noise.sum()})")
    if poisoned.any():
        ax.scatter(points[poisoned, 0], points[poisoned, 1], c="black", marker="x", s=16, linewidths=0.9,
                   label=f"poisoned, target label ({poisoned.sum()})")
    fig.colorbar(scatter, ax=ax, label="training label (clean points)")
    ax.set_xticks([])
    ax.set_yticks([])
    _finish(ax, "t-SNE 1", "t-SNE 2", title)
    fig.tight_layout()
    return fig
