"""Training curves of a run: losses, R1, path length, ADA p, s/kimg and metrics vs kimg.

`read_stats` reads `<run>/stats.jsonl` and `read_metrics` `<run>/metrics.jsonl` (both written by
`tfstylegan.training.summaries.RunReporter`), `training_curves_figure` draws them, `plot_run` does all three
and writes `training_curves.{png,pdf,svg}` (`launchers/plot_run.py`). Drawing and saving are
`tfstylegan.utils.charts`' (matplotlib Agg, reproducible files, thread-safe).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tfstylegan.utils.charts import (
    FORMATS,
    SERIES_COLORS,
    chart_style,
    check_formats,
    freeze_layout,
    new_figure,
    save_figure,
)
from tfstylegan.utils.errors import UserError

KIMG_KEY = "Progress/kimg"
TRAINING_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("losses", (("Loss/G/loss", "G"), ("Loss/D/loss", "D"))),
    ("R1 penalty", (("Loss/r1_penalty", "R1"),)),
    ("path-length penalty", (("Loss/pl_penalty", "PL"),)),
    ("ADA p", (("Progress/augment", "p"),)),
    ("s/kimg", (("Timing/sec_per_kimg", "s/kimg"),)),
)
"""(panel title, ((stats.jsonl key, legend label), ...)) of `training_curves_figure`, in order.
Keys written by `tfstylegan.training.summaries.RunReporter.scalars`; panels without any value are left out."""
METRIC_PREFIXES = ("Metrics/", "metrics/")
"""Keys with these prefixes (metrics computed during training: `read_metrics`) get one panel each."""


def _read_jsonl(path: Path, kimg_of, what: str) -> list[tuple[float, dict[str, Any]]]:
    """(kimg, row) of each line of a JSON-lines file as the run's history: when kimg goes back (a run resumed
    from an earlier snapshot appends to the file) the rows it supersedes are dropped; a last line cut short
    (the run was killed while writing it) is ignored; any other unreadable line is a UserError."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows: list[tuple[float, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):  # no newline after it: a write cut short
                print(f"warning: {path} line {number} is incomplete (run interrupted while writing?); ignored.",
                      file=sys.stderr)
                continue
            raise UserError(f"{path} line {number} is not JSON ({e.msg}); the file is corrupt. Delete that line "
                            "(or restore the file) and rerun.") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {number} is not a JSON object; the file is corrupt.")
        kimg = kimg_of(row)
        if not _is_number(kimg):
            raise UserError(f"{path} line {number} has no number kimg: not a train_stylegan {what}.")
        while rows and rows[-1][0] >= kimg:  # resumed from an earlier snapshot: keep the newer rows
            rows.pop()
        rows.append((float(kimg), row))
    return rows


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_stats(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's stats.jsonl (one JSON object per tick, with `Progress/kimg`), as the run's history.

    A resumed run appends to the file; when kimg goes back (resumed from an earlier snapshot), the rows
    it supersedes are dropped. A last line cut short (the run was killed while writing it) is ignored;
    any other unreadable line is an error.

    Raises:
      UserError: the file is missing, empty, unreadable or has a row without `Progress/kimg`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No stats file {path}: pass --run a train_stylegan run folder (it writes stats.jsonl "
                        "at the end of its first tick).")
    rows = [row for _, row in _read_jsonl(path, lambda r: r.get(KIMG_KEY), "stats.jsonl")]
    if not rows:
        raise UserError(f"{path} holds no ticks yet: the run writes a row at the end of each tick "
                        "(--kimg_per_tick); rerun after the first one.")
    return rows


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A run's metrics.jsonl (`--metrics`: one `{"kimg", "results": {name: value}, ...}` per evaluated
    snapshot) as rows `{"Progress/kimg": kimg, "Metrics/<name>": value}`; [] if the file does not exist.

    Raises:
      UserError: an unreadable line or one without kimg and a `results` object (as `read_stats`).
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for kimg, row in _read_jsonl(path, lambda r: r.get("kimg"), "metrics.jsonl"):
        results = row.get("results")
        if not isinstance(results, dict):
            raise UserError(f"{path}: the row at kimg {kimg:g} has no 'results' object: not a train_stylegan "
                            "metrics.jsonl.")
        rows.append({KIMG_KEY: kimg, **{f"Metrics/{k}": v for k, v in results.items()}})
    return rows


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(kimg [N], value [N]) of the rows where `key` is a finite number."""
    xs, ys = [], []
    for row in rows:
        v = row.get(key)
        if _is_number(v):
            xs.append(float(row[KIMG_KEY]))
            ys.append(float(v))
    return np.asarray(xs), np.asarray(ys)


def training_panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]]:
    """[(title, [(label, kimg, values), ...]), ...]: the panels `training_curves_figure` draws, with data."""
    panels = []
    for title, keys in TRAINING_PANELS:
        curves = [(label, *_series(rows, key)) for key, label in keys]
        curves = [c for c in curves if c[1].size]
        if curves:
            panels.append((title, curves))
    metric_keys = sorted({k for row in rows for k in row if k.startswith(METRIC_PREFIXES)})
    for key in metric_keys:
        kimg, values = _series(rows, key)
        if kimg.size:
            name = key.split("/", 1)[1]
            panels.append((name, [(name, kimg, values)]))
    return panels


def training_curves_figure(rows: Sequence[dict[str, Any]], title: str | None = None, columns: int = 3) -> Figure:
    """Training curves vs kimg: losses, R1, PL, ADA p, s/kimg and each metric of `rows`
    (`read_stats(...) + read_metrics(...)`: dicts with `Progress/kimg`).

    One panel per entry of `TRAINING_PANELS` that has values, then one per `Metrics/<name>` key
    (drawn with markers: metrics come every few ticks). Non-finite values (written as null) are left out.

    Returns:
      The Figure; panel titles are the axes' titles, each curve a Line2D labelled as in TRAINING_PANELS.
    """
    panels = training_panels(rows)
    if not panels:
        raise UserError("No training scalars to plot: the stats rows have no losses, penalties, ADA p, "
                        "s/kimg or metrics values.")
    columns = max(1, min(int(columns), len(panels)))
    nrows = math.ceil(len(panels) / columns)
    with chart_style():
        fig = new_figure(columns * 360, nrows * 260 + (24 if title else 0))
        axes = fig.subplots(nrows, columns, squeeze=False).reshape(-1)
        for ax, (name, curves) in zip(axes, panels):
            is_metric = name not in {t for t, _ in TRAINING_PANELS}
            for s, (label, kimg, values) in enumerate(curves):
                ax.plot(kimg, values, color=SERIES_COLORS[s % len(SERIES_COLORS)], linewidth=1.2, label=label,
                        marker="o" if is_metric or kimg.size == 1 else None, markersize=3)
            ax.set_title(name)
            ax.set_xlabel("kimg")
            ax.grid(color="0.9", linewidth=0.6)
            if len(curves) > 1:
                ax.legend(fontsize=8, frameon=False)
        kimg = [float(row[KIMG_KEY]) for row in rows]
        for ax in axes[:len(panels)]:
            if max(kimg) > min(kimg):
                ax.set_xlim(min(kimg), max(kimg))  # the same kimg range in every panel
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title)
        return freeze_layout(fig)


def plot_run(run: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             formats: Sequence[str] | str = FORMATS) -> list[Path]:
    """Training curves of a run: reads `<run>/stats.jsonl` (or `run` itself if it is a file) and, if present,
    `<run>/metrics.jsonl` beside it; writes `<out_dir>/training_curves.<fmt>` (default out_dir:
    `<run>/figures`). Returns the files written.

    Raises:
      UserError: no run folder, a missing, empty or corrupt stats.jsonl, a corrupt metrics.jsonl, or an
        unknown format.
    """
    run = Path(run)
    formats = check_formats(formats)
    if run.is_file():
        stats, run_dir = run, run.parent
    elif run.is_dir():
        stats, run_dir = run / "stats.jsonl", run
    else:
        raise UserError(f"Run folder {run} does not exist: pass --run a folder written by train_stylegan "
                        "(runs/<id>-...) or its stats.jsonl.")
    rows = read_stats(stats)
    metrics = read_metrics(stats.with_name("metrics.jsonl"))
    fig = training_curves_figure(rows + metrics, title=f"{run_dir.name}: {rows[-1][KIMG_KEY]:g} kimg")
    return save_figure(fig, Path(out_dir if out_dir is not None else run_dir / "figures") / "training_curves",
                       formats)
