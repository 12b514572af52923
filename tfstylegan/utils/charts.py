"""Charts drawn with matplotlib's Agg renderer (no display, no pyplot): build, render, save.

- `confusion_matrix_figure`: counts and row-normalised panels, class names, a colorbar each;
- `bar_chart_figure`: grouped bars with error bars (Inception Score [mean, std], FID, ...);
- `histogram_figure`: generated->train vs held-out->train distances with the threshold line (memorization).

`save_figure` writes a figure as PNG (TensorBoard, README) and PDF/SVG beside it (papers), each file
atomically and byte-for-byte reproducible (fixed DPI and style, no dates, fixed SVG id salt, text kept as
text in SVG and as TrueType in PDF). `figure_to_array` renders the same pixels as the PNG into a uint8
[H, W, 3] array for a TensorBoard image summary; the `*_image` functions do both steps for callers that
only want the array. `new_figure`, `chart_style` and `freeze_layout` are the pieces for new charts
(e.g. the training curves of `tfstylegan.apps.plots`).

Thread safety: figures are plain objects with their own Agg canvas, never pyplot's global figure manager.
Building, drawing and saving run under one lock inside `matplotlib.rc_context` with the default style plus
this module's settings, so a user's matplotlibrc or another thread's rcParams cannot change the output.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_path

DPI = 100
"""Pixels per inch of the PNGs and arrays (sizes below are in pixels at this DPI)."""
FORMATS = ("png", "pdf", "svg")
"""What `save_figure` writes by default: PNG for TensorBoard and the README, PDF and SVG for papers."""
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
"""Series colours (matplotlib's tab10 blue, orange, green, red, purple)."""
THRESHOLD_COLOR = "#d62728"
CONFUSION_CMAP = "Blues"
"""White (0) to dark blue (max): monotone in lightness, prints in gray."""

_STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.facecolor": "white", "savefig.facecolor": "white",
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "figure.titlesize": 11,
    "svg.hashsalt": "tfstylegan", "svg.fonttype": "none", "pdf.fonttype": 42,
    "savefig.bbox": None, "savefig.pad_inches": 0.0,
}
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Creator": "tfstylegan"},
             "svg": {"Date": None, "Creator": "tfstylegan"}}
_LOCK = threading.RLock()
# Keys of rcParamsDefault that are not style (backend selection, interactive state) stay as the user set them.
_NOT_STYLE = ("backend", "interactive", "toolbar", "webagg.", "tk.", "macosx.", "timezone")


def _defaults() -> dict[str, Any]:
    return {k: v for k, v in matplotlib.rcParamsDefault.items() if not k.startswith(_NOT_STYLE)}


@contextlib.contextmanager
def chart_style() -> Iterator[None]:
    """The context every chart is built, drawn and saved in: matplotlib's default style + `_STYLE`, under the
    module lock (reentrant)."""
    with _LOCK, matplotlib.rc_context(_defaults()), matplotlib.rc_context(_STYLE):
        yield


def new_figure(width_px: int, height_px: int) -> Figure:
    """A Figure of exactly width_px x height_px pixels at `DPI`, with an Agg canvas and constrained layout."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def freeze_layout(fig: Figure) -> Figure:
    """Runs the constrained layout once and fixes it, so every later draw (PNG, PDF, SVG, array) places the
    artists identically (constrained layout would otherwise refine the positions at each draw)."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Renders `fig` with Agg: uint8 RGB [H, W, 3], the same pixels `save_figure` writes to the PNG."""
    with chart_style():
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        return np.array(canvas.buffer_rgba(), dtype=np.uint8)[..., :3]


def check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    """Normalises 'png,pdf' or ['png', 'pdf'] to a tuple of known formats (UserError otherwise)."""
    if isinstance(formats, str):
        formats = formats.split(",")
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in out if f not in FORMATS]
    if not out or unknown:
        raise UserError(f"Unknown figure format(s) {unknown or list(formats)}: choose from {','.join(FORMATS)} "
                        "(comma-separated, e.g. --formats png,pdf).")
    return out


def save_figure(fig: Figure, path: str | os.PathLike, formats: Sequence[str] | str = FORMATS) -> list[Path]:
    """Writes `fig` as `<path>.<fmt>` for each format (a '.png'/'.pdf'/'.svg' suffix on `path` is replaced).

    Each file is written atomically; rerunning with the same inputs writes identical bytes.
    Returns the paths written, in the order of `formats`.
    """
    path = Path(path)
    if path.suffix.lower().lstrip(".") in FORMATS:
        path = path.with_suffix("")
    written = []
    with chart_style():
        for fmt in check_formats(formats):
            target = path.with_name(f"{path.name}.{fmt}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
            written.append(target)
    return written


# --- confusion matrix ------------------------------------------------------------------------------------------

def _check_confusion(matrix, class_names: Sequence[str]) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ValueError(f"A confusion matrix must be square [C, C]. Received: shape={matrix.shape}")
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"Need one class name per row. Received: {len(class_names)} names for shape={matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError(f"Confusion matrix counts must be finite and >= 0. Received: {matrix.tolist()}")
    return matrix


def _format_count(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:.2f}"


def confusion_matrix_figure(matrix, class_names: Sequence[str], title: str | None = None,
                            panels: Sequence[str] = ("counts", "normalized")) -> Figure:
    """Confusion matrix heatmaps, true class on rows and predicted class on columns.

    Args:
      matrix: [C, C] non-negative counts.
      class_names: C names, on both axes.
      title: optional title above the panels.
      panels: 'counts' (colour 0..max count) and/or 'normalized' (each row divided by its sum: the
        fraction of a true class predicted as each class, colour 0..1; a row without examples stays 0).
        Each panel has its values written in the cells and its own colorbar.

    Returns:
      The Figure; its axes are `fig.axes[:len(panels)]` in the order of `panels` (colorbars follow).
    """
    matrix = _check_confusion(matrix, class_names)
    panels = tuple(panels)
    if not panels or any(p not in ("counts", "normalized") for p in panels):
        raise ValueError(f"panels must be a non-empty list of 'counts' and 'normalized'. Received: {panels}")
    names = [str(n) for n in class_names]
    k = len(names)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    longest = max(len(n) for n in names)
    cell = max(48, min(96, 5 * longest + 16))
    margin = 60 + 6 * longest  # row names, axis label
    panel_w, panel_h = k * cell + margin + 80, k * cell + margin + 40  # + colorbar; + column names, title
    with chart_style():
        fig = new_figure(len(panels) * panel_w, panel_h + (24 if title else 0))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            data, vmax, fmt, label = ((matrix, max(matrix.max(), 1.0), _format_count, "count")
                                      if panel == "counts" else
                                      (fractions, 1.0, lambda v: f"{v:.2f}", "fraction of the true class"))
            edges = np.arange(k + 1) - 0.5
            mesh = ax.pcolormesh(edges, edges, data, cmap=CONFUSION_CMAP, vmin=0.0, vmax=vmax,
                                 edgecolors="white", linewidth=0.5)
            ax.set_xlim(-0.5, k - 0.5)
            ax.set_ylim(k - 0.5, -0.5)  # row 0 at the top, as printed
            ax.set_aspect("equal")
            fig.colorbar(mesh, ax=ax, label=label, shrink=0.9)
            ax.set_xticks(range(k), labels=names, rotation=30, ha="right", rotation_mode="anchor")
            ax.set_yticks(range(k), labels=names)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            ax.set_title("counts" if panel == "counts" else "row-normalised")
            for i in range(k):
                for j in range(k):
                    dark = mesh.norm(data[i, j]) > 0.5
                    ax.text(j, i, fmt(data[i, j]), ha="center", va="center",
                            color="white" if dark else "black")
        if title:
            fig.suptitle(title)
        return freeze_layout(fig)


def confusion_matrix_image(matrix, class_names: Sequence[str], title: str | None = None,
                           panels: Sequence[str] = ("counts", "normalized")) -> np.ndarray:
    """`confusion_matrix_figure` rendered: uint8 [H, W, 3]."""
    return figure_to_array(confusion_matrix_figure(matrix, class_names, title=title, panels=panels))


# --- bars and histograms ---------------------------------------------------------------------------------------

def bar_chart_figure(values, group_names: Sequence[str], series_names: Sequence[str] | None = None,
                     errors=None, title: str | None = None, ylabel: str | None = None,
                     y_max: float | None = None, size: tuple[int, int] = (640, 400)) -> Figure:
    """Grouped bars with the value (and ± error) written above each bar.

    Args:
      values: [G] or [G, S] finite values (e.g. G classes x S = (real, generated)); the axis starts at 0
        unless a value is negative (an FID of near-identical sets can be -1e-12).
      group_names: G labels under the groups.
      series_names: S legend entries (None: no legend). The bars of series s are `ax.containers`'
        BarContainer labelled series_names[s].
      errors: None or the same shape as `values`: half-heights of the error bars (e.g. IS std over splits).
      y_max: top of the value axis (default: matplotlib's, leaving room for the labels).
      size: (width, height) in pixels.

    Returns:
      The Figure (one Axes).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"bar_chart_figure needs finite values [G] or [G, S]. "
                         f"Received: shape={values.shape}, values={values.tolist()}")
    num_groups, num_series = values.shape
    if len(group_names) != num_groups:
        raise ValueError(f"Need one group name per row. Received: {len(group_names)} names for shape={values.shape}")
    if series_names is not None and len(series_names) != num_series:
        raise ValueError(f"Need one series name per column. Received: {len(series_names)} names for "
                         f"shape={values.shape}")
    if num_series > len(SERIES_COLORS):
        raise ValueError(f"At most {len(SERIES_COLORS)} series. Received: shape={values.shape}")
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64).reshape(values.shape) if np.size(errors) == values.size \
            else None
        if errors is None or not np.all(np.isfinite(errors)) or np.any(errors < 0):
            raise ValueError(f"errors must be finite, >= 0 and shaped like values {values.shape}.")
    width = 0.8 / num_series
    x = np.arange(num_groups)
    with chart_style():
        fig = new_figure(*size)
        ax = fig.subplots()
        for s in range(num_series):
            offsets = x - 0.4 + width * (s + 0.5)
            err = errors[:, s] if errors is not None else None
            label = str(series_names[s]) if series_names is not None else None
            ax.bar(offsets, values[:, s], width * 0.92, yerr=err, capsize=3 if err is not None else 0,
                   color=SERIES_COLORS[s], label=label, error_kw={"elinewidth": 1, "ecolor": "black"})
            for g in range(num_groups):
                top = max(values[g, s], 0.0) + (err[g] if err is not None else 0.0)
                text = f"{values[g, s]:.2f}" + (f"\n±{err[g]:.2f}" if err is not None else "")
                ax.text(offsets[g], top, text, ha="center", va="bottom", fontsize=7, linespacing=1.0)
        ax.set_xticks(x, labels=[str(n) for n in group_names])
        ax.margins(y=0.2)
        ax.set_ylim(0 if values.min() >= 0 else None, y_max if y_max else None)
        ax.grid(axis="y", color="0.85", linewidth=0.6)
        ax.set_axisbelow(True)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if series_names is not None:
            ax.legend(loc="upper right", ncols=num_series, fontsize=8, frameon=False)
        return freeze_layout(fig)


def bar_chart_image(values, group_names: Sequence[str], series_names: Sequence[str] | None = None,
                    errors=None, title: str | None = None, ylabel: str | None = None, y_max: float | None = None,
                    size: tuple[int, int] = (640, 400)) -> np.ndarray:
    """`bar_chart_figure` rendered: uint8 [size[1], size[0], 3]."""
    return figure_to_array(bar_chart_figure(values, group_names, series_names, errors=errors, title=title,
                                            ylabel=ylabel, y_max=y_max, size=size))


def histogram_figure(a, b, labels: Sequence[str] = ("generated -> train", "held-out -> train"), bins: int = 40,
                     threshold: float | None = None, title: str | None = None,
                     xlabel: str = "distance to the nearest training image",
                     size: tuple[int, int] = (640, 400)) -> Figure:
    """Two distributions [Na], [Nb] as overlaid, half-transparent density histograms.

    Both use the same `bins` equal-width bins over the joint range (and the threshold), normalised to
    unit area so sets of different sizes compare. `threshold` (the suspicious-copy distance) is a red
    dashed vertical line with its value in the legend.

    Returns:
      The Figure (one Axes; the bars of `a` are the patches labelled labels[0]).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"histogram_figure needs two non-empty finite arrays. Received: sizes={a.size}, {b.size}")
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    if threshold is not None:
        if not math.isfinite(float(threshold)):
            raise ValueError(f"threshold must be finite. Received: threshold={threshold}")
        lo, hi = min(lo, float(threshold)), max(hi, float(threshold))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    with chart_style():
        fig = new_figure(*size)
        ax = fig.subplots()
        ax.hist(a, edges, density=True, alpha=0.55, color=SERIES_COLORS[0], label=str(labels[0]))
        ax.hist(b, edges, density=True, alpha=0.55, color=SERIES_COLORS[1], label=str(labels[1]))
        if threshold is not None:
            ax.axvline(float(threshold), color=THRESHOLD_COLOR, linestyle="--", linewidth=1.5,
                       label=f"threshold {float(threshold):.3g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        if title:
            ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        return freeze_layout(fig)


def histogram_image(a, b, labels: Sequence[str] = ("generated -> train", "held-out -> train"), bins: int = 40,
                    threshold: float | None = None, title: str | None = None,
                    xlabel: str = "distance to the nearest training image",
                    size: tuple[int, int] = (640, 400)) -> np.ndarray:
    """`histogram_figure` rendered: uint8 [size[1], size[0], 3]."""
    return figure_to_array(histogram_figure(a, b, labels, bins=bins, threshold=threshold, title=title,
                                            xlabel=xlabel, size=size))
