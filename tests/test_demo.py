"""`make demo` in its fast mode: the whole pipeline through the real launchers, every output checked."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image


@pytest.mark.slow
def test_demo_fast_mode_writes_every_output(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "launchers.demo", f"--out={out}", "--fast"],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout
    for stage in ("make_phantom", "prepare_data", "train_stylegan", "train_classifier", "evaluate", "generate",
                  "export", "synthesize"):
        assert f"python -m launchers.{stage}" in log
    assert "demo finished in" in log and "tensorboard --logdir" in log
    # the judge trains beside StyleGAN2, evaluate runs beside the last three stages; their lines go to logs
    assert "(beside StyleGAN2)" in log and "(beside generate, export and synthesize)" in log
    assert (out / "logs" / "train_classifier.log").is_file() and (out / "logs" / "evaluate.log").is_file()

    # data: Figshare-layout phantom -> prepared shards with a manifest
    assert len(list((out / "phantom_mat").glob("*.mat"))) >= 36
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert set(manifest["counts"]) == {"meningioma", "glioma", "pituitary"}

    # one conditional StyleGAN2 run with checkpoints, per-class sample grids and TensorBoard events
    (run,) = [p for p in (out / "stylegan" / "conditional").iterdir() if p.is_dir()]
    info = json.loads((run / "run.json").read_text())
    assert info["conditional"] and info["class_names"] == ["meningioma", "glioma", "pituitary"]
    assert (run / "checkpoints" / "checkpoint").is_file()
    assert list((run / "samples").glob("fakes*.png"))
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))

    # the judge and the evaluation
    clf = json.loads((out / "classifier" / "metrics.json").read_text())
    assert 0.0 <= clf["accuracy"] <= 1.0
    results = json.loads((out / "evaluation" / "results.json").read_text())
    for cls in ("meningioma", "glioma", "pituitary"):
        r = results["per_class"][cls]
        for key in ("is_real", "is_generated"):
            mean, std = r[key]
            assert 1.0 - 1e-6 <= mean <= 3.0 + 1e-6 and std >= 0
        assert np.isfinite(r["fid"])

    # every picture decodes
    pngs = list((out / "figures").rglob("*.png")) + list((out / "evaluation" / "figures").glob("*.png"))
    names = {str(p.relative_to(out)) for p in pngs}
    for cls in ("meningioma", "glioma", "pituitary"):
        assert {f"figures/{cls}/fig3_grid3x3_{cls}.png", f"figures/{cls}/fig4_mosaic_{cls}.png",
                f"figures/{cls}/fig2_real_vs_generated_{cls}.png", f"figures/{cls}/style_mixing.png",
                f"figures/{cls}/interpolation.png", f"figures/{cls}/seed0000.png"} <= names
    assert "evaluation/figures/is_bar_chart.png" in names
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.size[0] > 0

    # SavedModels load and generate
    import tensorflow as tf
    gen = tf.saved_model.load(str(out / "serving" / "generator" / "1"))
    images = gen.signatures["serving_default"](seed=tf.constant([0, 1], tf.int64),
                                               class_id=tf.constant([0, 2], tf.int32),
                                               truncation_psi=tf.constant([1.0]))["images"]
    assert images.dtype == tf.uint8 and images.shape[0] == 2
    clf_model = tf.saved_model.load(str(out / "serving" / "classifier" / "1"))
    probs = clf_model.signatures["serving_default"](images=images)["probabilities"].numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)

    # the last stage: a small privacy-filtered synthetic dataset, readable as data, with its report
    from tfstylegan.data.pipeline import load_arrays
    synthetic = json.loads((out / "synthetic" / "manifest.json").read_text())
    assert synthetic["counts"] == {cls: 16 for cls in ("meningioma", "glioma", "pituitary")}
    assert synthetic["synthetic"]["filters"]["privacy"]["space"] == ["pixels", "judge features"]
    images, labels, _ = load_arrays(out / "synthetic", "train")
    assert images.shape == (48, 16, 16, 1) and sorted(set(labels.tolist())) == [0, 1, 2]
    report = json.loads((out / "synthetic" / "privacy" / "report.json").read_text())
    assert report["totals"]["kept"] == 48 and report["totals"]["drawn"] >= 48
    assert (out / "synthetic" / "privacy" / "closest_pairs_glioma.png").is_file()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_seconds"] > 0 and len(summary["stages"]) == 8
    checks = summary["quality_checks"]  # the demo's targets, checked on its own results and printed
    assert len(checks) == 1 + 3 * 4 and "quality targets (" in log and "pooled IS generated / real" in log
    assert "glioma pixel spread generated / real" in log  # the diversity of every class is a target too


def test_demo_refuses_a_foreign_output_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "launchers.demo", f"--out={tmp_path}", "--fast"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "not made by this demo" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_a_failing_background_stage_names_its_log(tmp_path, capsys):
    from launchers.demo import _Stages
    from tfstylegan.utils.errors import UserError

    stages = _Stages(2)
    log = tmp_path / "logs" / "judge.log"
    job = stages.start("judge", "train_classifier", f"--data={tmp_path / 'missing'}", f"--out={tmp_path / 'clf'}",
                       "--weights=none", log=log)
    assert "beside the next stage" in capsys.readouterr().out
    job.proc.wait()
    ran = time.perf_counter() - job.start
    time.sleep(2.0)  # the demo collects it later, e.g. when StyleGAN2 ends
    with pytest.raises(UserError, match="judge.log"):
        stages.wait(job)
    assert stages.timings[-1][1] <= ran + 0.5  # its own run time, not the time until it was collected
    assert "error:" in log.read_text() and "missing" in log.read_text()
    assert "| error:" in capsys.readouterr().out  # the log's end is shown on the console
    assert not stages.background


def test_stop_background_ends_a_running_stage(tmp_path):
    from launchers.demo import _Stages

    stages = _Stages(1)
    job = stages.start("phantom", "make_phantom", f"--out={tmp_path / 'ph'}", "--patients_per_class=500",
                       "--workers=1", log=tmp_path / "ph.log")
    assert job.proc.poll() is None
    stages.stop_background()
    assert job.proc.poll() is not None and not stages.background
    assert not (tmp_path / "ph").exists()  # atomic: nothing half-written under the final name


def test_the_parallel_trainings_get_their_thread_settings_unless_the_user_set_them(monkeypatch, capsys):
    from launchers.demo import _GAN_THREADS, _JUDGE_THREADS, _Stages

    assert _GAN_THREADS == {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}
    assert _JUDGE_THREADS == {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "4")  # the user's own setting
    stages = _Stages(2)
    _, command, env = stages._announce("gan", "train_stylegan", ("--kimg=1",), threads=_GAN_THREADS)
    assert env["TF_NUM_INTRAOP_THREADS"] == "1" and env["TF_NUM_INTEROP_THREADS"] == "4"
    assert command == "TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=4 python -m launchers.train_stylegan --kimg=1"
    assert "TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=4 python" in capsys.readouterr().out  # shown as run
    _, command, env = stages._announce("evaluate", "evaluate", ("--out=x",))
    assert "TF_NUM_INTRAOP_THREADS" not in env and command == "python -m launchers.evaluate --out=x"
