"""Small figures for evaluation reports, drawn with numpy and PIL (no matplotlib).

Each renderer returns a uint8 RGB array [H, W, 3] ready for `tfstylegan.utils.images.save_png`
or a TensorBoard image summary:

- `confusion_matrix_image`: heatmap of a [C, C] confusion matrix with the counts written in;
- `histogram_image`: two distance distributions overlaid (memorization report);
- `bar_chart_image`: grouped bars, e.g. per-class Inception Score for real vs generated.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchors of the viridis colormap (0 -> dark purple, 1 -> yellow), interpolated linearly.
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                    dtype=np.float64)
# Series colours (tab10 blue, orange, green, red, purple).
SERIES_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
_BACKGROUND = (255, 255, 255)
_INK = (0, 0, 0)
_GRID = (200, 200, 200)


def colormap(values: np.ndarray) -> np.ndarray:
    """Viridis-like colours uint8 [..., 3] for `values` in [0, 1] (clipped)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    i = np.minimum(np.floor(v).astype(int), len(_VIRIDIS) - 2)
    f = (v - i)[..., None]
    return np.round(_VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f).astype(np.uint8)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _centered_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, fill) -> None:
    draw.text(xy, text, font=font, fill=fill, anchor="mm")


def confusion_matrix_image(matrix: np.ndarray, class_names: Sequence[str], cell_size: int = 72,
                           title: str | None = None) -> np.ndarray:
    """Heatmap of a confusion matrix (rows: true class, columns: predicted class).

    Args:
      matrix: [C, C] non-negative counts; cell colour is `colormap(count / max count)`.
      class_names: C names, drawn left of the rows and above the columns.
      cell_size: cell side in pixels (enlarged to fit the longest name).
      title: optional line drawn above the matrix.

    Returns:
      uint8 [H, W, 3].
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ValueError(f"confusion_matrix_image needs a square matrix [C, C]. Received: shape={matrix.shape}")
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"Need one class name per row. Received: {len(class_names)} names for shape={matrix.shape}")
    if np.any(matrix < 0) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"Confusion matrix counts must be finite and >= 0. Received: {matrix.tolist()}")
    num_classes = matrix.shape[0]
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_w = max(_text_size(probe, str(n), font)[0] for n in class_names)
    line_h = max(_text_size(probe, "Mg", font)[1], 8) + 6
    cell = max(int(cell_size), name_w + 8, 24)
    left = name_w + line_h + 12  # axis title column + row names
    top = (line_h if title else 0) + 2 * line_h + 4  # title, axis title, column names
    width, height = left + num_classes * cell + 8, top + num_classes * cell + 8
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)

    if title:
        _centered_text(draw, (width / 2, line_h / 2), title, font, _INK)
    y_axis = (line_h if title else 0)
    _centered_text(draw, (left + num_classes * cell / 2, y_axis + line_h / 2), "predicted", font, _INK)
    # Vertical "true" axis title: draw horizontally on a small image and rotate it.
    tw, th = _text_size(probe, "true", font)
    label = Image.new("RGB", (tw + 4, th + 6), _BACKGROUND)
    ImageDraw.Draw(label).text((2, 1), "true", font=font, fill=_INK)
    label = label.rotate(90, expand=True)
    image.paste(label, (2, int(top + num_classes * cell / 2 - label.height / 2)))

    peak = float(matrix.max()) if matrix.max() > 0 else 1.0
    colors = colormap(matrix / peak)
    for i in range(num_classes):
        y0 = top + i * cell
        _centered_text(draw, (line_h + 6 + name_w / 2, y0 + cell / 2), str(class_names[i]), font, _INK)
        x_col = left + i * cell + cell / 2
        _centered_text(draw, (x_col, y_axis + 1.5 * line_h), str(class_names[i]), font, _INK)
        for j in range(num_classes):
            x0 = left + j * cell
            rgb = tuple(int(v) for v in colors[i, j])
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=rgb)
            value = matrix[i, j]
            text = f"{int(value)}" if float(value).is_integer() else f"{float(value):.2f}"
            luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            _centered_text(draw, (x0 + cell / 2, y0 + cell / 2), text, font,
                           _INK if luminance > 128 else _BACKGROUND)
    return np.asarray(image, dtype=np.uint8)


def _axes(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill=_INK, width=1)


def _legend(image: Image.Image, draw: ImageDraw.ImageDraw, names: Sequence[str], colors, x_right: int,
            y_top: int, font) -> None:
    line_h = max(_text_size(draw, "Mg", font)[1], 8) + 6
    width = max(_text_size(draw, n, font)[0] for n in names) + 22
    for k, (name, color) in enumerate(zip(names, colors)):
        y = y_top + k * line_h
        draw.rectangle([x_right - width, y + 2, x_right - width + 12, y + line_h - 4], fill=tuple(color))
        draw.text((x_right - width + 18, y + line_h / 2), name, font=font, fill=_INK, anchor="lm")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def histogram_image(a: np.ndarray, b: np.ndarray, labels: Sequence[str] = ("generated -> train",
                                                                           "held-out -> train"),
                    bins: int = 40, size: tuple[int, int] = (560, 360), threshold: float | None = None,
                    title: str | None = None) -> np.ndarray:
    """Two distributions [Na], [Nb] as overlaid, half-transparent density histograms.

    Both use the same `bins` equal-width bins over the joint range, normalised to unit area
    so sets of different sizes compare. `threshold` (e.g. the suspicious-copy distance) is
    drawn as a red vertical line.

    Returns:
      uint8 [size[1], size[0], 3].
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"histogram_image needs two non-empty finite arrays. Received: sizes={a.size}, {b.size}")
    width, height = int(size[0]), int(size[1])
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    if threshold is not None:
        lo, hi = min(lo, float(threshold)), max(hi, float(threshold))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    dens_a, _ = np.histogram(a, edges, density=True)
    dens_b, _ = np.histogram(b, edges, density=True)
    peak = max(dens_a.max(), dens_b.max(), 1e-12)

    font = _font()
    image = Image.new("RGBA", (width, height), _BACKGROUND + (255,))
    draw = ImageDraw.Draw(image)
    line_h = max(_text_size(draw, "Mg", font)[1], 8) + 6
    x0, y0 = 48, line_h + 8 if title else 8
    x1, y1 = width - 10, height - 2 * line_h - 4
    plot_w, plot_h = x1 - x0, y1 - y0
    for dens, color in ((dens_b, SERIES_COLORS[1]), (dens_a, SERIES_COLORS[0])):
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        layer_draw = ImageDraw.Draw(layer)
        for k, value in enumerate(dens):
            if value <= 0:
                continue
            bx0 = x0 + plot_w * k / len(dens)
            bx1 = x0 + plot_w * (k + 1) / len(dens)
            by0 = y1 - plot_h * value / peak
            layer_draw.rectangle([bx0, by0, max(bx1 - 1, bx0), y1], fill=tuple(color) + (140,))
        image = Image.alpha_composite(image, layer)
    draw = ImageDraw.Draw(image)
    if threshold is not None:
        tx = x0 + plot_w * (float(threshold) - lo) / (hi - lo)
        draw.line([(tx, y0), (tx, y1)], fill=(214, 39, 40, 255), width=2)
    _axes(draw, (x0, y0, x1, y1))
    for value, anchor in ((lo, "lt"), ((lo + hi) / 2, "mt"), (hi, "rt")):
        draw.text((x0 + plot_w * (value - lo) / (hi - lo), y1 + 3), _fmt(value), font=font, fill=_INK,
                  anchor=anchor)
    draw.text((x0 + plot_w / 2, height - 3), "distance to nearest training sample", font=font, fill=_INK,
              anchor="mb")
    draw.text((x0 - 4, y0), _fmt(peak), font=font, fill=_INK, anchor="rt")
    draw.text((x0 - 4, y1), "0", font=font, fill=_INK, anchor="rb")
    if title:
        draw.text((width / 2, 4), title, font=font, fill=_INK, anchor="mt")
    _legend(image, draw, list(labels), SERIES_COLORS[:2], x1 - 4, y0 + 4, font)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def bar_chart_image(values: np.ndarray, group_names: Sequence[str], series_names: Sequence[str] | None = None,
                    size: tuple[int, int] = (560, 360), title: str | None = None,
                    y_max: float | None = None) -> np.ndarray:
    """Grouped bar chart with the value written above each bar.

    Args:
      values: [G] or [G, S] non-negative values (e.g. G classes x S = (real, generated)).
      group_names: G labels under the groups.
      series_names: S legend entries (None: no legend).
      y_max: top of the value axis (default: 1.15 * max value).

    Returns:
      uint8 [size[1], size[0], 3].
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"bar_chart_image needs finite non-negative values [G] or [G, S]. "
                         f"Received: shape={values.shape}")
    num_groups, num_series = values.shape
    if len(group_names) != num_groups:
        raise ValueError(f"Need one group name per row. Received: {len(group_names)} names for shape={values.shape}")
    if series_names is not None and len(series_names) != num_series:
        raise ValueError(f"Need one series name per column. Received: {len(series_names)} names for "
                         f"shape={values.shape}")
    if num_series > len(SERIES_COLORS):
        raise ValueError(f"At most {len(SERIES_COLORS)} series. Received: shape={values.shape}")
    top_value = float(y_max) if y_max else max(float(values.max()) * 1.15, 1e-12)

    width, height = int(size[0]), int(size[1])
    font = _font()
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    line_h = max(_text_size(draw, "Mg", font)[1], 8) + 6
    x0, y0 = 48, (line_h + 8 if title else 8) + (line_h * num_series if series_names else 0)
    x1, y1 = width - 10, height - line_h - 6
    plot_w, plot_h = x1 - x0, y1 - y0
    for frac in (0.25, 0.5, 0.75, 1.0):
        gy = y1 - plot_h * frac
        draw.line([(x0, gy), (x1, gy)], fill=_GRID)
        draw.text((x0 - 4, gy), _fmt(top_value * frac), font=font, fill=_INK, anchor="rm")
    group_w = plot_w / num_groups
    bar_w = group_w * 0.8 / num_series
    for g in range(num_groups):
        gx = x0 + g * group_w + group_w * 0.1
        for s in range(num_series):
            value = values[g, s]
            bx0 = gx + s * bar_w
            by0 = y1 - plot_h * min(value / top_value, 1.0)
            draw.rectangle([bx0, by0, bx0 + bar_w - 2, y1], fill=SERIES_COLORS[s])
            draw.text((bx0 + bar_w / 2, by0 - 2), f"{value:.2f}", font=font, fill=_INK, anchor="mb")
        draw.text((x0 + (g + 0.5) * group_w, y1 + 4), str(group_names[g]), font=font, fill=_INK, anchor="mt")
    _axes(draw, (x0, y0, x1, y1))
    draw.text((x0 - 4, y1), "0", font=font, fill=_INK, anchor="rb")
    if title:
        draw.text((width / 2, 4), title, font=font, fill=_INK, anchor="mt")
    if series_names:
        _legend(image, draw, list(series_names), SERIES_COLORS[:num_series], x1 - 4,
                (line_h + 8 if title else 8), font)
    return np.asarray(image, dtype=np.uint8)
