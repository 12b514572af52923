"""The benchmark: helpers, and the launcher on `tiny` writes a well-formed report (no speed assertion)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfstylegan.apps import benchmark, benchmark_report
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_spread_and_s_per_kimg():
    s = benchmark.spread([3.0, 1.0, 2.0, 10.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 10.0 and s["n"] == 4
    assert s["mean"] == 4.0 and s["values"] == [3.0, 1.0, 2.0, 10.0]
    assert benchmark.s_per_kimg(2.0, 128) == pytest.approx(15.625)
    with pytest.raises(ValueError):
        benchmark.spread([])


def test_options_are_validated():
    with pytest.raises(ValueError, match="--device"):
        benchmark.BenchmarkOptions(device="tpu")
    with pytest.raises(ValueError, match="--repeats"):
        benchmark.BenchmarkOptions(repeats=0)


def _report(**kw):
    r = {"preset": "bench32", "batch_size": 8, "device": "cpu", "mixed_precision": False, "xla": False,
         "num_replicas": 1, "s_per_kimg": 300.0, "generator_img_per_s": 30.0, "memory": {"gpu_peak_gb": None}}
    r.update(kw)
    return r


def _targets(report):
    return benchmark_report.compare(report, benchmark_report.load_targets())["targets"]


def test_targets():
    t = _targets(_report())
    assert t["cpu_train_1.5x_reference"]["applicable"] and t["cpu_train_1.5x_reference"]["met"]  # 300 <= 353.3
    assert t["cpu_generator_1.5x_reference"]["met"]  # 30 >= 1.5 * 19
    assert not t["gpu_s_per_kimg"]["applicable"]
    t = _targets(_report(s_per_kimg=360.0, generator_img_per_s=28.0))
    assert not t["cpu_train_1.5x_reference"]["met"] and not t["cpu_generator_1.5x_reference"]["met"]
    assert not _targets(_report(preset="tiny"))["cpu_train_1.5x_reference"]["applicable"]
    t = _targets(_report(preset="auto", batch_size=16, device="gpu", mixed_precision=True, xla=True,
                         s_per_kimg=5.0, memory={"gpu_peak_gb": 6.0}))
    assert t["gpu_s_per_kimg"]["applicable"] and t["gpu_s_per_kimg"]["met"]
    assert t["gpu_memory"]["applicable"] and not t["gpu_memory"]["met"]


def test_targets_file_errors_are_clean(tmp_path):
    bad = tmp_path / "targets.json"
    bad.write_text("{}")
    with pytest.raises(UserError, match="not a benchmark targets file"):
        benchmark_report.load_targets(bad)


def test_graph_flops_counts_a_matmul():
    import tensorflow as tf

    f = tf.function(lambda a, b: tf.matmul(a, b))
    cf = f.get_concrete_function(tf.TensorSpec([4, 8]), tf.TensorSpec([8, 16]))
    assert benchmark.graph_flops(cf) == 2 * 4 * 8 * 16


def test_synthetic_reals_shapes_and_range():
    ds = benchmark.synthetic_reals(4, 16, 1, seed=0)
    img, label = next(iter(ds))
    assert img.shape == (4, 16, 16, 1) and label.shape == (4,)
    assert float(img.numpy().min()) >= -1 and float(img.numpy().max()) <= 1 and float(img.numpy().std()) > 0.05


def _positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_launcher_tiny_report(tmp_path):
    out = tmp_path / "tiny.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "launchers.benchmark", "--preset=tiny", "--repeats=1", "--inference_batches=1",
         "--device=cpu", f"--json={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "s/kimg" in proc.stdout
    report = json.loads(out.read_text())
    for key in ("s_per_kimg", "img_per_s", "generator_img_per_s", "discriminator_img_per_s",
                "train_flops_per_img", "train_flop_per_s", "reference_s_per_kimg"):
        assert _positive(report[key]), (key, report[key])
    assert report["reference_generator_img_per_s"] == [14.0, 19.0]
    assert report["preset"] == "tiny" and report["device"] == "cpu" and report["batch_size"] == 4
    it = report["iteration"]
    assert it["steps"] == 16 and it["images"] == 64
    assert it["phase_calls"] == {"Gmain": 16, "Greg": 4, "Dmain": 16, "Dreg": 1, "EMA": 16}
    assert report["s_per_kimg"] == pytest.approx(it["seconds"]["median"] / 0.064)
    assert set(report["phases"]) == {"Gmain", "Greg", "Dmain", "Dreg", "EMA"}
    assert all(_positive(p["seconds"]["median"]) for p in report["phases"].values())
    for net in ("generator", "discriminator"):
        assert _positive(report[net]["flops_per_img"]) and _positive(report[net]["flop_per_s"])
    # training costs more than one G forward plus one D forward per image
    forward = report["generator"]["flops_per_img"] + report["discriminator"]["flops_per_img"]
    assert report["train_flops_per_img"] > forward
    assert _positive(report["memory"]["host_peak_gb"])
    assert report["memory"]["gpu_peak_gb"] is None
    assert isinstance(report["targets_met"], dict)  # no target applies to tiny
    assert all(isinstance(v, bool) for v in report["targets_met"].values())


def test_launcher_user_error_is_clean(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "launchers.benchmark", "--preset=tiny", "--repeats=0",
                           f"--json={tmp_path / 'x.json'}"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 1
    assert "error: --repeats" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.json").exists()
