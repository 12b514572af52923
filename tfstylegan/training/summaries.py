"""What a training run reports each tick: TensorBoard, stats.jsonl, PNG sample grids, a console line.

- TensorBoard (`<run>/tensorboard/`): scalars (losses, R1, path length, ADA p, sign of D on
  reals/fakes, s/kimg, img/s, memory), a `samples` image per image snapshot (fixed seeds,
  G_ema, constant noise; one image per class when conditional), `Metrics/<key>` per snapshot
  with --metrics, and the run's hparams (HParams plugin: its config and metrics, written at
  every start, so resumed runs have them too).
- Steps: every summary's step is the number of real images shown, `cur_nimg` = kimg * 1000.
  The official tools log at int(kimg); TensorBoard steps are int64, and a CPU run's ticks of a
  few images would all fall on step 0, so the step keeps the images (read it as kimg / 1000;
  `Progress/kimg` is logged too).
- `<run>/stats.jsonl`: the same scalars, one JSON object per tick (appended, flushed).
- `<run>/metrics.jsonl`: one JSON object per evaluated snapshot (results, kimg, checkpoint).
- `<run>/samples/reals.png` once and `<run>/samples/fakes<images:09d>.png` per image snapshot
  (named by images seen: ticks shorter than 1 kimg never overwrite each other).
- The console: `tick 3 kimg 1.2/25.0 s/kimg 41.2 img/s 24.3 ETA 12m 05s G 0.71 D 1.32 p 0.040`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tfstylegan.utils.images import image_grid, save_png, to_uint8
from tfstylegan.utils.progress import format_duration


def side_by_side(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> [N, H, C*W, 1]: each channel (image, tumor mask, ...) next to the other."""
    images = np.asarray(images)
    return np.concatenate([images[..., i:i + 1] for i in range(images.shape[-1])], axis=2)


def grid_uint8(images: np.ndarray, grid_w: int | None = None) -> np.ndarray:
    """Images [N, H, W, C] in [-1, 1] -> one uint8 grid [gh*H, gw*W*C, 1] (channels side by side)."""
    return image_grid(to_uint8(side_by_side(images)), grid_w=grid_w, padding=1, pad_value=0)


def tick_line(tick: int, kimg: float, total_kimg: float, sec_per_kimg: float, img_per_sec: float,
              g_loss: float, d_loss: float, p: float) -> str:
    """The console progress line of one tick."""
    eta = sec_per_kimg * max(total_kimg - kimg, 0.0)
    digits = 1 if total_kimg >= 10 else 3
    return (f"tick {tick} kimg {kimg:.{digits}f}/{total_kimg:.{digits}f} s/kimg {sec_per_kimg:.1f} "
            f"img/s {img_per_sec:.1f} ETA {format_duration(eta)} G {g_loss:.2f} D {d_loss:.2f} p {p:.3f}")


STEP_UNITS = ("kimg", "images")


def tensorboard_step_unit(kimg_per_tick: float) -> str:
    """'kimg' (the official steps) when every tick advances at least 1 kimg, else 'images' (distinct steps)."""
    return "kimg" if kimg_per_tick >= 1 else "images"


class RunReporter:
    """Writes TensorBoard events, stats.jsonl and sample PNGs of one run (only on the chief).

    Args:
      run_dir: the run folder.
      tensorboard: write TensorBoard event files.
      enabled: False on non-chief workers: every method is then a no-op.
      step_unit: the TensorBoard step: 'kimg' (int(images shown / 1000), as the official stats_tfevents)
        or 'images' (the images shown: for ticks shorter than 1 kimg, whose int(kimg) would collide).
        The methods take `step` as images shown and convert it.
    """

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True, enabled: bool = True,
                 step_unit: str = "kimg"):
        if step_unit not in STEP_UNITS:
            raise ValueError(f"step_unit must be one of {STEP_UNITS}. Received: {step_unit!r}")
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.step_unit = step_unit
        self.writer = None
        if enabled and tensorboard:
            self.writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))

    def hparams(self, hparams: dict, metrics: list[str] | tuple[str, ...] = ()) -> None:
        """Records the run's hyper-parameters and the scalar tags to compare runs by (HParams plugin).

        Writes the experiment config (`hparams_config`: the hparams and `metrics`) and this run's
        values (`hparams`). Call it at every start: a resumed run writes them into its new events file.
        """
        if self.writer is None:
            return
        clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in hparams.items()}
        with self.writer.as_default():
            hp.hparams_config(hparams=[hp.HParam(k) for k in clean],
                              metrics=[hp.Metric(tag, display_name=tag) for tag in metrics])
            hp.hparams(clean, trial_id=self.run_dir.name)
        self.writer.flush()

    def tb_step(self, images: int) -> int:
        """The TensorBoard step of the moment `images` real images have been shown."""
        return int(images) // 1000 if self.step_unit == "kimg" else int(images)

    def scalars(self, stats: dict, step: int) -> None:
        """Writes finite scalars to TensorBoard at `step` (images shown, converted by `tb_step`) and appends
        them to stats.jsonl."""
        if not self.enabled:
            return
        step = self.tb_step(step)
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in stats.items():
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        tf.summary.scalar(name, value, step=step)
            self.writer.flush()
        row = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in stats.items()}
        with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def metrics(self, row: dict, step: int) -> None:
        """One snapshot's metrics: TensorBoard `Metrics/<key>` at `step` (images shown) and a line of metrics.jsonl."""
        if not self.enabled:
            return
        step = self.tb_step(step)
        if self.writer is not None:
            with self.writer.as_default():
                for key, value in row["results"].items():
                    if math.isfinite(value):
                        tf.summary.scalar(f"Metrics/{key}", value, step=step)
            self.writer.flush()
        clean = dict(row, results={k: (v if math.isfinite(v) else None) for k, v in row["results"].items()})
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()

    def images(self, name: str, grids: dict[str, np.ndarray], step: int) -> None:
        """Writes uint8 grids [H, W, 1] as TensorBoard images `<name>` or `<name>/<key>` at `step` (images shown)."""
        if self.writer is None:
            return
        step = self.tb_step(step)
        with self.writer.as_default():
            for key, grid in grids.items():
                tag = name if not key else f"{name}/{key}"
                tf.summary.image(tag, grid[None], step=step, max_outputs=1)
        self.writer.flush()

    def png(self, filename: str, grid: np.ndarray) -> None:
        """Saves a uint8 grid under `<run>/samples/`."""
        if self.enabled:
            save_png(self.run_dir / "samples" / filename, grid)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
