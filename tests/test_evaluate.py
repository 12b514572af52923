"""tfstylegan.apps.evaluation, tfstylegan.apps.evaluation.utility and launchers/evaluate.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfstylegan.apps.evaluation import report
from tfstylegan.apps.evaluation import run as evaluation
from tfstylegan.apps.evaluation.utility import accuracy_differences
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.metrics import inception_score
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CLASSES = list(CLASS_NAMES)


@pytest.fixture(scope="module")
def assets(phantom_data, tiny_checkpoints, tiny_judge):
    """16x16 phantom data, tiny per-class and conditional generators, a small random-init judge (shared)."""
    return {"root": phantom_data.parent, "data": phantom_data, "judge": tiny_judge,
            "meningioma": tiny_checkpoints["meningioma"], "glioma": tiny_checkpoints["glioma"],
            "cond": tiny_checkpoints["cond"]}


# --- metric helpers -----------------------------------------------------------------------------------------

def test_pooled_inception_score_mixes_classes_in_every_split():
    probs = [np.tile(np.eye(3)[k], (20, 1)) for k in range(3)]  # confident, class-sorted
    # contiguous splits of class-sorted rows each hold one class: IS 1 instead of 3
    assert inception_score(np.concatenate(probs), num_splits=3)[0] == pytest.approx(1.0)
    mean, _ = evaluation.pooled_inception_score(probs, num_splits=3)
    assert 2.5 < mean <= 3.0


def test_judge_confusion_and_accuracy_differences():
    probs = [np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]]), np.array([[0.1, 0.1, 0.8]] * 3)]
    cm = evaluation.judge_confusion(probs, [0, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 0, 3]])
    diff = accuracy_differences({"real": {"accuracy": 0.8}, "synthetic": {"accuracy": 0.5},
                                 "real+synthetic": {"accuracy": 0.85}})
    assert diff == pytest.approx({"synthetic - real": -0.3, "real+synthetic - real": 0.05})


def test_config_validation():
    with pytest.raises(UserError, match="num_images"):
        evaluation.EvaluationConfig(num_images=5)
    with pytest.raises(UserError, match="split"):
        evaluation.EvaluationConfig(split="dev")
    with pytest.raises(UserError, match="ppl_samples"):
        evaluation.EvaluationConfig(ppl_samples=1)


def test_results_table():
    m = {"is_real": [2.6, 0.1], "is_generated": [2.4, 0.1], "fid": 12.5, "kid": [0.01, 0.001],
         "precision": 0.7, "recall": 0.4}
    table = report.results_table({"per_class": {"glioma": m}, "pooled": m})
    lines = table.splitlines()
    assert lines[0].split()[0] == "class" and "IS real" in lines[0]
    assert lines[2].startswith("glioma") and "2.60 ± 0.10" in lines[2] and "12.500" in lines[2]
    assert "10.00 ± 1.00" in lines[2]  # KID x1e3
    assert lines[3].startswith(report.STUDY_ROW) and "study" in lines[4]
    assert "judge: gen. as class" in lines[0] and "pixel spread real / gen." in lines[0]
    assert lines[2].rstrip().endswith("-")  # no spread recorded
    m2 = dict(m, pixel_spread_real=0.2512, pixel_spread_generated=0.1049)
    assert report.results_table({"per_class": {"glioma": m2}}).splitlines()[2].endswith("0.251 / 0.105")


def test_quality_checks_against_the_demo_targets():
    per_class = {"meningioma": {"recall": 0.46, "precision": 0.87, "judge_accuracy_generated": 0.91},
                 "glioma": {"recall": 0.58, "precision": 0.69, "judge_accuracy_generated": 0.95}}
    results = {"per_class": per_class, "pooled": {"is_real": [2.77, 0.08], "is_generated": [2.64, 0.07]}}
    checks = report.quality_checks(results)
    assert [c["check"] for c in checks][:3] == ["pooled IS generated / real", "meningioma recall",
                                               "meningioma precision"]
    missed = [c["check"] for c in checks if not c["ok"]]
    assert missed == ["meningioma recall", "glioma precision"]
    assert checks[0]["value"] == pytest.approx(2.64 / 2.77) and checks[0]["target"] == 0.9
    table = report.quality_table(checks)
    assert "meningioma recall" in table and "0.460 >= 0.5  MISSED" in table and table.count("  ok") == 5
    assert not report.quality_checks({"per_class": {"glioma": {"recall": None}}}, {"recall": 0.1})[0]["ok"]


def test_quality_checks_hold_the_diversity_of_each_class():
    # a generator drawing one slice per class: judged right, precise, but spreading half as much as the real slices
    one_look = {"recall": 0.6, "precision": 0.9, "judge_accuracy_generated": 0.99,
                "pixel_spread_real": 0.302, "pixel_spread_generated": 0.151}
    varied = dict(one_look, pixel_spread_generated=0.250)
    checks = report.quality_checks({"per_class": {"meningioma": one_look, "glioma": varied}})
    spread = {c["check"]: c for c in checks if "pixel spread" in c["check"]}
    assert list(spread) == ["meningioma pixel spread generated / real", "glioma pixel spread generated / real"]
    assert spread["meningioma pixel spread generated / real"]["value"] == pytest.approx(0.5)
    assert not spread["meningioma pixel spread generated / real"]["ok"]
    assert spread["glioma pixel spread generated / real"]["ok"] and spread["glioma pixel spread generated / real"][
        "target"] == 0.8
    assert [c["check"] for c in checks if not c["ok"]] == ["meningioma pixel spread generated / real"]
    assert "0.500 >= 0.8  MISSED" in report.quality_table(checks)
    # a spread recorded for one side only is a missed check, not a silent pass
    half = dict(one_look, pixel_spread_generated=None)
    assert not report.quality_checks({"per_class": {"glioma": half}})[-1]["ok"]


# --- end to end ---------------------------------------------------------------------------------------------

FAST = dict(num_images=8, is_splits=2, kid_subsets=5, ppl_samples=4, batch_size=16)


@pytest.mark.slow
def test_evaluate_conditional_with_utility_writes_every_output(assets):
    # one utility classifier keeps the test short (each InceptionV3 fit costs about a minute on 2 CPU cores)
    config = evaluation.EvaluationConfig(**FAST, utility=True, utility_settings=("synthetic",), utility_epochs=1,
                                         utility_weights="none", utility_batch_size=16)
    out = assets["root"] / "eval_cond"
    r = evaluation.evaluate(str(assets["cond"]), assets["judge"], assets["data"], out, config, show_progress=False)
    assert list(r["per_class"]) == CLASSES
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["num_images"] == 8 and set(saved) == {"settings", "per_class", "pooled", "utility"}
    for name in CLASSES:
        m = saved["per_class"][name]
        assert m["num_real"] == 8 and m["num_generated"] == 8  # every slice of the class (4 patients x 2)
        assert "test has 2" in m["real_from"]  # the test split is too small: all splits are used
        for key in ("is_real", "is_generated", "kid"):
            assert len(m[key]) == 2
        assert 1.0 - 1e-6 <= m["is_real"][0] <= 3.0 + 1e-6
        assert m["fid"] >= -1e-6 and 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
        assert m["memorization"]["pixels"]["num_generated"] == 8
        assert "suspicious_fraction" in m["memorization"]["judge_features"]
        assert np.isfinite(m["ppl"]) and m["ppl"] >= 0
        assert 0 < m["pixel_spread_real"] <= 1 and 0 <= m["pixel_spread_generated"] <= 1  # images in [-1, 1]
    assert np.sum(saved["pooled"]["judge_confusion_generated"]) == 24
    utility = saved["utility"]
    assert set(utility["settings"]) == {"synthetic"} and utility["differences"] == {}
    assert utility["settings"]["synthetic"]["num_train"] == 24
    assert utility["settings"]["synthetic"]["num_examples"] == utility["num_test"] == 6
    assert 0 <= utility["settings"]["synthetic"]["accuracy"] <= 1
    figures = {p.name for p in (out / "figures").iterdir()}
    for name in ("is_bar_chart.png", "judge_confusion_real.png", "judge_confusion_generated.png",
                 "real_vs_generated_glioma.png", "closest_pairs_glioma.png", "memorization_glioma.png",
                 "utility_confusion_synthetic.png"):
        assert name in figures
        assert np.asarray(Image.open(out / "figures" / name)).size > 0
    # matplotlib charts also as PDF and SVG for papers (image tiles stay PNG only)
    assert {"is_bar_chart.pdf", "fid_bar_chart.svg", "judge_confusion_real.pdf", "memorization_glioma.svg",
            "utility_confusion_synthetic.pdf"} <= figures and "closest_pairs_glioma.pdf" not in figures
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    tags = acc.Tags()["tensors"]
    assert "per_class/glioma/fid" in tags and "pooled/is_generated" in tags and "is_bar_chart" in tags


def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "launchers.evaluate", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_launcher_per_class_and_bad_inputs(assets):
    out = assets["root"] / "eval_cli"
    spec = f"meningioma={assets['meningioma']},glioma={assets['glioma']}"
    args = ["--classifier", assets["judge"], "--data", assets["data"], "--num_images", "10", "--is_splits", "2",
            "--kid_subsets", "3", "--ppl_samples", "0", "--quiet"]
    r = _launch("--checkpoint", spec, *args, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "class" in r.stdout and "pooled" in r.stdout and "meningioma" in r.stdout
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["per_class"]) == ["meningioma", "glioma"] and saved["utility"] is None
    assert saved["per_class"]["glioma"]["ppl"] is None
    # an existing output, a class the checkpoint was not trained on, a missing judge
    r = _launch("--checkpoint", spec, *args, "--out", out)
    assert r.returncode == 1 and "error:" in r.stderr and "already exists" in r.stderr
    r = _launch("--checkpoint", f"pituitary={assets['glioma']}", *args, "--out", assets["root"] / "x")
    assert r.returncode == 1 and "error:" in r.stderr and "trained on class 'glioma'" in r.stderr
    r = _launch("--checkpoint", spec, *args[:1], assets["root"] / "nojudge.keras", *args[2:], "--out",
                assets["root"] / "y")
    assert r.returncode == 1 and "error:" in r.stderr and "does not exist" in r.stderr
    assert not (assets["root"] / "x").exists() and not (assets["root"] / "y").exists()
