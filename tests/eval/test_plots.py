import numpy as np
import pytest

from hashlearn.eval.plots import figure_to_png, latent_scatter_figure


def test_latent_scatter_draws_clean_poisoned_and_noise_groups():
    rng = np.random.default_rng(0)
    points, labels = rng.normal(size=(30, 2)), np.arange(30) % 3
    poisoned, noise = np.arange(30) < 6, (np.arange(30) >= 6) & (np.arange(30) < 10)
    fig = latent_scatter_figure(points, labels, poisoned, noise)
    (ax, _colorbar) = fig.axes
    offsets = [collection.get_offsets() for collection in ax.collections]
    assert [len(o) for o in offsets] == [20, 4, 6]  # clean, noise mode, poisoned (drawn last, on top)
    assert np.allclose(offsets[2], points[poisoned])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["noise mode, true label (4)", "poisoned, target label (6)"]
    assert figure_to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_latent_scatter_without_noise_rows_and_bad_shapes():
    points = np.zeros((4, 2))
    fig = latent_scatter_figure(points, np.zeros(4, int), np.array([True, False, False, False]))
    assert len(fig.axes[0].collections) == 2
    with pytest.raises(ValueError, match="points must be"):
        latent_scatter_figure(np.zeros((4, 3)), np.zeros(4, int), np.zeros(4, bool))
    with pytest.raises(ValueError, match="3 labels"):
        latent_scatter_figure(points, np.zeros(3, int), np.zeros(4, bool))
