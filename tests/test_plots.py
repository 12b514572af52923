"""PIL renderers: shapes, dtypes, and pictures that follow the data."""

import numpy as np
import pytest

from tfstylegan.apps.plots import (SERIES_COLORS, bar_chart_image, colormap, confusion_matrix_image,
                                      histogram_image)

NAMES = ("meningioma", "glioma", "pituitary")


def _mask(image, color):
    return np.all(image == np.asarray(color, dtype=np.uint8), axis=-1)


def test_colormap_endpoints_and_monotone_luminance():
    colors = colormap(np.linspace(0, 1, 11)).astype(np.float64)
    assert colors.dtype == np.float64 and colors.shape == (11, 3)
    assert np.array_equal(colormap(0.0), [68, 1, 84]) and np.array_equal(colormap(1.0), [253, 231, 37])
    luminance = colors @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luminance) > 0)
    assert np.array_equal(colormap(-1.0), colormap(0.0)) and np.array_equal(colormap(2.0), colormap(1.0))


def test_confusion_matrix_cell_colours_follow_the_counts():
    peak = colormap(1.0)
    centroids = {}
    for i in range(3):
        matrix = np.ones((3, 3), dtype=int)
        matrix[i, i] = 50
        image = confusion_matrix_image(matrix, NAMES, cell_size=90)  # wider than the longest name
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        ys, xs = np.nonzero(_mask(image, peak))
        assert 0.9 * 90 * 90 < len(ys) <= 90 * 90  # one full cell (minus the drawn count) in the peak colour
        centroids[i] = (ys.mean(), xs.mean())
    # The peak cell moves down and right along the diagonal, one cell (90 px) per step.
    assert centroids[1][0] - centroids[0][0] == pytest.approx(90, abs=2)
    assert centroids[1][1] - centroids[0][1] == pytest.approx(90, abs=2)
    assert centroids[2][1] - centroids[1][1] == pytest.approx(90, abs=2)


def test_confusion_matrix_counts_are_drawn():
    base = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    other = base.copy()
    other[0, 1] = 2  # same peak (9): only cell (0, 1) changes, its colour and its number
    a, b = confusion_matrix_image(base, NAMES, cell_size=90), confusion_matrix_image(other, NAMES, cell_size=90)
    assert a.shape == b.shape
    ys, xs = np.nonzero(np.any(a != b, axis=-1))
    assert len(ys) == 90 * 90 and np.ptp(ys) == np.ptp(xs) == 89
    # The number is drawn: inside the cell, pixels other than the fill colour, and they differ.
    cell_a, cell_b = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1], b[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    text_a, text_b = ~_mask(cell_a, cell_a[0, 0]), ~_mask(cell_b, cell_b[0, 0])
    assert 10 < text_a.sum() < 400 and 10 < text_b.sum() < 400
    assert not np.array_equal(text_a, text_b)
    assert confusion_matrix_image(base, NAMES, cell_size=90, title="judge on test split").shape[0] > a.shape[0]


def test_confusion_matrix_argument_checks():
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_image(np.zeros((2, 3)), NAMES[:2])
    with pytest.raises(ValueError, match="one class name per row"):
        confusion_matrix_image(np.zeros((3, 3)), NAMES[:2])
    with pytest.raises(ValueError, match=">= 0"):
        confusion_matrix_image(-np.ones((3, 3)), NAMES)


def test_histogram_shape_and_the_distributions_are_where_the_data_is():
    rng = np.random.default_rng(0)
    low, high = rng.normal(2.0, 0.3, size=500), rng.normal(8.0, 0.3, size=300)
    image = histogram_image(low, high, size=(500, 300), threshold=5.0, title="memorization")
    assert image.shape == (300, 500, 3) and image.dtype == np.uint8
    # Half-transparent bars: bluish pixels for the first set, orange-ish for the second.
    r, g, b = (image[..., k].astype(int) for k in range(3))
    blue_x = np.nonzero((b > r + 60) & (b > 150))[1]
    orange_x = np.nonzero((r > b + 60) & (r > 200) & (g > 120))[1]
    assert blue_x.size > 1000 and orange_x.size > 1000
    assert np.median(blue_x) < 250 < np.median(orange_x)
    swapped = histogram_image(high, low, size=(500, 300), threshold=5.0, title="memorization")
    assert not np.array_equal(image, swapped)


def test_histogram_degenerate_and_bad_input():
    image = histogram_image(np.zeros(10), np.zeros(5))  # all values equal: still a picture
    assert image.shape == (360, 560, 3)
    with pytest.raises(ValueError, match="non-empty finite"):
        histogram_image(np.array([]), np.ones(3))
    with pytest.raises(ValueError, match="non-empty finite"):
        histogram_image(np.array([np.nan]), np.ones(3))


def test_bar_chart_bar_areas_follow_the_values():
    image = bar_chart_image([[1.0, 2.0], [1.0, 2.0]], ("a", "b"), ("real", "generated"), size=(400, 300),
                            y_max=2.5)
    assert image.shape == (300, 400, 3) and image.dtype == np.uint8
    real_px = _mask(image, SERIES_COLORS[0]).sum()
    gen_px = _mask(image, SERIES_COLORS[1]).sum()
    legend_px = 2 * 13 * 8  # generous allowance for the two legend swatches
    assert (gen_px - legend_px) / real_px == pytest.approx(2.0, rel=0.1)
    flipped = bar_chart_image([[2.0, 1.0], [2.0, 1.0]], ("a", "b"), ("real", "generated"), size=(400, 300),
                              y_max=2.5)
    assert _mask(flipped, SERIES_COLORS[0]).sum() > _mask(flipped, SERIES_COLORS[1]).sum()


def test_bar_chart_single_series_and_checks():
    image = bar_chart_image(np.array([2.6, 2.4, 1.0]), NAMES, title="IS per class")
    assert image.shape == (360, 560, 3)
    assert _mask(image, SERIES_COLORS[0]).sum() > 0 and _mask(image, SERIES_COLORS[1]).sum() == 0
    with pytest.raises(ValueError, match="one group name per row"):
        bar_chart_image([1.0, 2.0], NAMES)
    with pytest.raises(ValueError, match="one series name per column"):
        bar_chart_image([[1.0, 2.0]], ("a",), ("real",))
    with pytest.raises(ValueError, match="non-negative"):
        bar_chart_image([-1.0], ("a",))
