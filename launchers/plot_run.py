"""Training curves of a run: losses, R1, path length, ADA p, s/kimg (stats.jsonl) and the metrics computed during
training (metrics.jsonl, with --metrics) vs kimg.

Example:
  python -m launchers.plot_run --run runs/00003-auto-glioma-b16-ada
  python -m launchers.plot_run --run runs/00003-auto-glioma-b16-ada --out paper/figs --formats pdf

writes `<out>/training_curves.png` (+ `.pdf`, `.svg`; default out: `<run>/figures`). Existing figures are
replaced (atomically), so it can be rerun while the run trains. Reruns on the same stats.jsonl write
identical files.
"""

from absl import flags

from tfstylegan.apps.plots import plot_run
from tfstylegan.utils.cli import run

_RUN = flags.DEFINE_string("run", None, "Run folder written by train_stylegan (or its stats.jsonl).",
                           required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder. Default: <run>/figures.")
_FORMATS = flags.DEFINE_list("formats", ["png", "pdf", "svg"], "Figure formats, comma-separated: png (TensorBoard, "
                             "README), pdf and svg (papers).")


def main(argv):
    for path in plot_run(_RUN.value, _OUT.value, _FORMATS.value):
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
