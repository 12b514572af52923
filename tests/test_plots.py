"""tfstylegan.utils.charts (matplotlib: pictures that follow the data, files for papers, reproducible bytes) and
tfstylegan.apps.plots (training curves of a run, launchers/plot_run.py)."""

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from tfstylegan.apps import plots
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.utils import charts
from tfstylegan.utils.errors import UserError

NAMES = CLASS_NAMES
ROOT = Path(__file__).resolve().parents[1]


def _pixel(fig, image, ax, x, y):
    """RGB of `image` (rendered `fig`) at data point (x, y) of `ax` (display y runs upwards)."""
    px, py = ax.transData.transform((x, y))
    return image[int(round(image.shape[0] - py)), int(round(px))].astype(float)


def _luminance(rgb):
    return float(np.dot(rgb, [0.299, 0.587, 0.114]))


def test_confusion_matrix_cell_colours_are_ordered_like_the_counts():
    counts = np.array([[40, 3, 8], [0, 25, 5], [13, 1, 30]])  # nine distinct values
    fig = charts.confusion_matrix_figure(counts, NAMES)
    image = charts.figure_to_array(fig)
    width, height = fig.canvas.get_width_height()
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    counts_ax, normalized_ax = fig.axes[:2]
    # Sample each cell away from its centre (the number is written there): darker blue = more.
    lum = np.array([[_luminance(_pixel(fig, image, counts_ax, j + 0.3, i + 0.3)) for j in range(3)]
                    for i in range(3)])
    order = np.argsort(counts.ravel())
    assert np.all(np.diff(lum.ravel()[order]) < 0)
    assert lum[0, 0] < 100 and lum[1, 0] > 240  # 40 of 40: dark blue; 0: white
    # The row-normalised panel: colours follow the row fractions, not the counts.
    fractions = counts / counts.sum(axis=1, keepdims=True)
    lum_n = np.array([[_luminance(_pixel(fig, image, normalized_ax, j + 0.3, i + 0.3)) for j in range(3)]
                      for i in range(3)])
    assert np.all(np.diff(lum_n.ravel()[np.argsort(fractions.ravel(), kind="stable")]) <= 1e-9)
    assert lum_n[1, 1] < lum[1, 1]  # 25/30 of its row is darker than 25 of a max of 40


def test_confusion_matrix_numbers_colorbars_and_empty_rows():
    counts = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])  # pituitary has no examples
    fig = charts.confusion_matrix_figure(counts, NAMES, title="judge on real images")
    counts_ax, normalized_ax = fig.axes[:2]
    assert [t.get_text() for t in counts_ax.texts] == [str(v) for v in counts.ravel()]
    assert [t.get_text() for t in normalized_ax.texts] == ["0.83", "0.17", "0.00", "0.20", "0.70", "0.10",
                                                          "0.00", "0.00", "0.00"]
    assert [t.get_text() for t in counts_ax.get_yticklabels()] == list(NAMES)
    assert [t.get_text() for t in counts_ax.get_xticklabels()] == list(NAMES)
    assert len(fig.axes) == 4  # two panels and their colorbars
    assert counts_ax.collections[0].norm.vmax == 7 and normalized_ax.collections[0].norm.vmax == 1.0
    assert fig._suptitle.get_text() == "judge on real images"
    single = charts.confusion_matrix_figure(counts, NAMES, panels=("counts",))
    assert len(single.axes) == 2 and single.get_figwidth() < fig.get_figwidth()


def test_confusion_matrix_argument_checks():
    with pytest.raises(ValueError, match="square"):
        charts.confusion_matrix_figure(np.zeros((2, 3)), NAMES[:2])
    with pytest.raises(ValueError, match="one class name per row"):
        charts.confusion_matrix_figure(np.zeros((3, 3)), NAMES[:2])
    with pytest.raises(ValueError, match=">= 0"):
        charts.confusion_matrix_figure(-np.ones((3, 3)), NAMES)
    with pytest.raises(ValueError, match="panels"):
        charts.confusion_matrix_figure(np.ones((3, 3)), NAMES, panels=("log",))


def test_save_figure_png_pdf_svg_identical_on_rerun(tmp_path):
    counts = np.array([[50, 3, 2], [4, 60, 1], [0, 5, 40]])
    fig = charts.confusion_matrix_figure(counts, NAMES)
    written = charts.save_figure(fig, tmp_path / "a" / "cm.png")  # the suffix is replaced
    assert [p.name for p in written] == ["cm.png", "cm.pdf", "cm.svg"]
    png = np.asarray(Image.open(written[0]).convert("RGB"))
    np.testing.assert_array_equal(png, charts.figure_to_array(fig))  # TensorBoard shows what the PNG shows
    pdf = written[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    root = ET.parse(written[2]).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert set(NAMES) <= texts and "60" in texts  # class names and counts stay text (editable in a paper)
    # A new figure of the same data, saved elsewhere: the same bytes in every format.
    again = charts.save_figure(charts.confusion_matrix_figure(counts, NAMES), tmp_path / "b" / "cm")
    for first, second in zip(written, again):
        assert first.read_bytes() == second.read_bytes(), first.name
    assert charts.save_figure(fig, tmp_path / "c" / "cm", "pdf") == [tmp_path / "c" / "cm.pdf"]
    assert sorted(os.listdir(tmp_path / "c")) == ["cm.pdf"]  # no temporary files left
    with pytest.raises(UserError, match="png,pdf,svg"):
        charts.save_figure(fig, tmp_path / "cm", "png,jpg")


def test_output_ignores_global_rcparams_and_threads():
    counts = np.array([[5, 1, 0], [2, 7, 1], [0, 1, 9]])
    reference = charts.confusion_matrix_image(counts, NAMES)
    with matplotlib.rc_context({"text.color": "red", "xtick.labelsize": 20, "figure.dpi": 50}):
        np.testing.assert_array_equal(charts.confusion_matrix_image(counts, NAMES), reference)
    results = [None] * 2

    def work(k):
        results[k] = charts.confusion_matrix_image(counts, NAMES)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for image in results:
        np.testing.assert_array_equal(image, reference)


def test_bar_heights_and_error_bars_follow_the_values():
    values = np.array([[2.6, 2.4], [1.1, 1.9], [2.0, 0.5]])
    errors = np.array([[0.1, 0.2], [0.05, 0.3], [0.0, 0.1]])
    fig = charts.bar_chart_figure(values, NAMES, ("real", "generated"), errors=errors, ylabel="IS")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ["real", "generated"]
    for s, container in enumerate(bars):
        np.testing.assert_allclose([r.get_height() for r in container], values[:, s])
        # Error bars: one vertical segment per bar, from value - err to value + err.
        segments = container.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([seg[1, 1] - seg[0, 1] for seg in segments], 2 * errors[:, s], atol=1e-12)
    # Real bars sit left of generated ones within each group.
    assert all(r.get_x() < g.get_x() for r, g in zip(*bars))
    assert "2.60\n±0.10" in [t.get_text() for t in ax.texts]
    image = charts.bar_chart_image(values, NAMES, ("real", "generated"), errors=errors, size=(500, 300))
    assert image.shape == (300, 500, 3) and image.dtype == np.uint8


def test_bar_chart_single_series_and_checks():
    fig = charts.bar_chart_figure([30.5, 12.25, 18.0], NAMES, title="FID (judge features)")
    (container,) = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    np.testing.assert_allclose([r.get_height() for r in container], [30.5, 12.25, 18.0])
    assert fig.axes[0].get_legend() is None and [t.get_text() for t in fig.axes[0].texts] == ["30.50", "12.25",
                                                                                            "18.00"]
    with pytest.raises(ValueError, match="one group name per row"):
        charts.bar_chart_figure([1.0, 2.0], NAMES)
    with pytest.raises(ValueError, match="one series name per column"):
        charts.bar_chart_figure([[1.0, 2.0]], ("a",), ("real",))
    with pytest.raises(ValueError, match="finite values"):
        charts.bar_chart_figure([np.nan], ("a",))
    assert fig.axes[0].get_ylim()[0] == 0.0
    charts.bar_chart_figure([-1e-12, 3.0], ("a", "b"))  # an FID of equal sets can come out at -1e-12
    assert charts.bar_chart_figure([-0.5, 3.0], ("a", "b")).axes[0].get_ylim()[0] < -0.5
    with pytest.raises(ValueError, match="errors"):
        charts.bar_chart_figure([1.0, 2.0], ("a", "b"), errors=[0.1])


def test_histogram_bars_threshold_and_densities():
    rng = np.random.default_rng(0)
    low, high = rng.normal(2.0, 0.3, size=500), rng.normal(8.0, 0.3, size=300)
    fig = charts.histogram_figure(low, high, threshold=5.0, title="glioma")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 40  # generated first, then held-out, 40 bins each
    a_bars, b_bars = ax.patches[:40], ax.patches[40:]
    for bars, data in ((a_bars, low), (b_bars, high)):
        heights = np.array([p.get_height() for p in bars])
        widths = np.array([p.get_width() for p in bars])
        assert np.sum(heights * widths) == pytest.approx(1.0)  # unit area
        centres = np.array([p.get_x() + p.get_width() / 2 for p in bars])
        assert np.average(centres, weights=heights) == pytest.approx(data.mean(), abs=0.2)
    (line,) = ax.lines
    assert line.get_xdata()[0] == 5.0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["generated -> train", "held-out -> train",
                                                                  "threshold 5"]
    image = charts.histogram_image(np.zeros(10), np.zeros(5))  # all values equal: still a picture
    assert image.shape == (400, 640, 3)
    with pytest.raises(ValueError, match="non-empty finite"):
        charts.histogram_figure(np.array([]), np.ones(3))
    with pytest.raises(ValueError, match="non-empty finite"):
        charts.histogram_figure(np.array([np.nan]), np.ones(3))


def _stats_rows(kimgs):
    """stats.jsonl rows as `tfstylegan.training.loop` writes them (RunReporter.scalars)."""
    rows = []
    for tick, kimg in enumerate(kimgs, start=1):
        row = {"Progress/tick": tick, "Progress/kimg": kimg, "Progress/step": tick * 10,
               "Progress/augment": 0.01 * tick, "Progress/pl_mean": 0.5,
               "Loss/G/loss": 2.0 - 0.1 * tick, "Loss/D/loss": 1.0 + 0.05 * tick,
               "Loss/r1_penalty": 0.2, "Loss/pl_penalty": None if tick == 1 else 0.3,  # null = non-finite
               "Loss/signs/real": 0.1, "Loss/signs/fake": -0.1,
               "Timing/sec_per_tick": 3.0, "Timing/sec_per_kimg": 30.0 + tick, "Timing/img_per_sec": 33.0,
               "Resources/peak_host_mem_gb": 2.5}
        rows.append(row)
    return rows


def _metrics_rows(kimgs):
    """metrics.jsonl rows as `--metrics` writes them (RunReporter.metrics, snapshot_metrics.metrics_row)."""
    return [{"results": {"fid": 100.0 / kimg, "kid": 0.01 * kimg}, "kimg": kimg, "step": 10, "tick": 2,
             "checkpoint": "ckpt-10", "num_images": 50, "split": "train", "total_time": 3.0, "timestamp": 1.0}
            for kimg in kimgs]


def _write_stats(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_stats_keeps_the_history_of_a_resumed_run(tmp_path, capsys):
    path = tmp_path / "stats.jsonl"
    first = _stats_rows([0.5, 1.0, 1.5, 2.0])
    resumed = _stats_rows([1.5, 2.0, 2.5])  # resumed from the 1.0-kimg snapshot
    for r in resumed:
        r["Loss/G/loss"] = -1.0
    _write_stats(path, first + resumed)
    with open(path, "a") as f:
        f.write('{"Progress/kimg": 3.0, "Loss/G')  # killed while writing the last line
    rows = plots.read_stats(path)
    assert [r["Progress/kimg"] for r in rows] == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert [r["Loss/G/loss"] for r in rows][2:] == [-1.0, -1.0, -1.0]
    assert "line 8 is incomplete" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "No stats file"),
    ("", "holds no ticks yet"),
    ("\n\n", "holds no ticks yet"),
    ('{"Progress/kimg": 1.0}\nnot json\n{"Progress/kimg": 2.0}\n', "line 2 is not JSON"),
    ('[1, 2]\n', "line 1 is not a JSON object"),
    ('{"loss": 1.0}\n', "line 1 has no number kimg"),
])
def test_read_stats_bad_files(tmp_path, content, message):
    path = tmp_path / "stats.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        plots.read_stats(path)
    assert str(path) in str(info.value)


def test_read_metrics(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert plots.read_metrics(path) == []  # a run without --metrics
    _write_stats(path, _metrics_rows([1.0, 2.0]) + _metrics_rows([2.0, 4.0]))  # resumed at 1.0 kimg
    assert plots.read_metrics(path) == [{"Progress/kimg": 1.0, "Metrics/fid": 100.0, "Metrics/kid": 0.01},
                                        {"Progress/kimg": 2.0, "Metrics/fid": 50.0, "Metrics/kid": 0.02},
                                        {"Progress/kimg": 4.0, "Metrics/fid": 25.0, "Metrics/kid": 0.04}]
    path.write_text('{"kimg": 1.0, "fid": 3.0}\n')
    with pytest.raises(UserError, match="no 'results' object"):
        plots.read_metrics(path)
    path.write_text('{"kimg": 1.0, "results": {}}\n{"kimg"\n{"kimg": 2.0, "results": {}}\n')
    with pytest.raises(UserError, match="metrics.jsonl line 2 is not JSON"):
        plots.read_metrics(path)


def test_training_curves_panels_and_lines(tmp_path):
    rows = _stats_rows([0.5, 1.0, 1.5, 2.0])
    _write_stats(tmp_path / "metrics.jsonl", _metrics_rows([1.0, 2.0]))
    fig = plots.training_curves_figure(rows + plots.read_metrics(tmp_path / "metrics.jsonl"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["losses", "R1 penalty", "path-length penalty", "ADA p", "s/kimg", "fid", "kid"]
    by_title = {ax.get_title(): ax for ax in fig.axes}
    g, d = by_title["losses"].lines
    assert g.get_label() == "G" and list(g.get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    np.testing.assert_allclose(g.get_ydata(), [1.9, 1.8, 1.7, 1.6])
    np.testing.assert_allclose(d.get_ydata(), [1.05, 1.1, 1.15, 1.2])
    assert list(by_title["path-length penalty"].lines[0].get_xdata()) == [1.0, 1.5, 2.0]  # null skipped
    fid = by_title["fid"].lines[0]
    assert list(fid.get_xdata()) == [1.0, 2.0] and list(fid.get_ydata()) == [100.0, 50.0]
    # Without metrics and penalties the panels are left out.
    bare = [{k: v for k, v in r.items() if not k.startswith(("Loss/r1", "Loss/pl"))} for r in rows]
    assert [ax.get_title() for ax in plots.training_curves_figure(bare).axes if ax.get_visible()] == [
        "losses", "ADA p", "s/kimg"]
    with pytest.raises(UserError, match="No training scalars"):
        plots.training_curves_figure([{"Progress/kimg": 1.0}])


def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "launchers.plot_run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_plot_run_launcher(tmp_path):
    run = tmp_path / "00000-tiny"
    _write_stats(run / "stats.jsonl", _stats_rows([0.5, 1.0, 1.5]))
    _write_stats(run / "metrics.jsonl", _metrics_rows([1.0]))
    result = _launch("--run", str(run))
    assert result.returncode == 0, result.stderr
    curves = run / "figures" / "training_curves"
    assert {p.name for p in (run / "figures").iterdir()} == {"training_curves.png", "training_curves.pdf",
                                                              "training_curves.svg"}
    assert result.stdout.count("wrote ") == 3
    png = Image.open(curves.with_suffix(".png"))
    assert png.size == (3 * 360, 3 * 260 + 24)  # 5 + fid + kid panels in 3 columns, a title line
    assert ">fid<" in curves.with_suffix(".svg").read_text()
    # Missing stats.jsonl: a clean message and exit status 1, no traceback.
    empty = tmp_path / "empty-run"
    empty.mkdir()
    result = _launch("--run", str(empty), "--formats", "png")
    assert result.returncode == 1
    assert "error: No stats file" in result.stderr and "Traceback" not in result.stderr


def test_plot_run_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        plots.plot_run(tmp_path / "nope")
    run = tmp_path / "run"
    _write_stats(run / "stats.jsonl", _stats_rows([1.0]))
    (run / "stats.jsonl").write_text("garbage\n")
    with pytest.raises(UserError, match="line 1 is not JSON"):
        plots.plot_run(run)
    with pytest.raises(UserError, match="Unknown figure format"):
        plots.plot_run(run, formats="gif")
    assert not (run / "figures").exists()
