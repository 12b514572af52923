"""Snapshots: metrics during training (TensorBoard, metrics.jsonl, best.json), checkpoint specs
(`RUN`, `RUN/ckpt-N`, `RUN@best`), --keep_checkpoints with the best kept beside the rotation,
the HParams plugin and TensorBoard steps, and `--resume` reusing the recorded flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training.snapshot_metrics import (BestSnapshot, MetricsConfig, SnapshotMetrics, metric_keys,
                                                  parse_metrics)
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _events(folder):
    """{tag: [(step, value)]} of the scalars, and the HParams plugin records, of a TensorBoard folder."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    scalars, hparams = {}, []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "scalars":
                    scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
                elif plugin == "hparams":
                    hparams.append(plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
    return scalars, hparams


def _hparams_of(records):
    experiment = [r.experiment for r in records if r.HasField("experiment")]
    starts = [r.session_start_info for r in records if r.HasField("session_start_info")]
    assert experiment and starts, "no HParams config or session start"
    metrics = [m.name.tag for m in experiment[-1].metric_infos]
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in starts[-1].hparams.items()}
    return metrics, values


# ---------------------------------------------------------------------------------------------
# Pure parts.

def test_metric_names_keys_and_direction():
    assert parse_metrics("fid, KID,pr,fid") == ("fid", "kid", "pr")
    assert parse_metrics("") == () and parse_metrics(None) == ()
    with pytest.raises(UserError, match="unknown metric 'ppl'"):
        parse_metrics("fid,ppl")
    assert metric_keys(("fid", "pr", "is"), ["judge", "inception"]) == [
        "fid_judge", "precision_judge", "recall_judge", "is_judge", "fid_inception", "precision_inception",
        "recall_inception"]
    best = BestSnapshot("fid_judge")
    assert best.improves(3.0) and best.lower_is_better
    best.value = 3.0
    assert best.improves(2.9) and not best.improves(3.1) and not best.improves(float("nan"))
    recall = BestSnapshot.from_record("recall_judge", {"metric": "recall_judge", "value": 0.4})
    assert recall.value == 0.4 and recall.improves(0.5) and not recall.improves(0.3)
    assert BestSnapshot.from_record("recall_judge", {"metric": "fid_judge", "value": 0.4}).value is None
    with pytest.raises(UserError, match="at least 10"):
        MetricsConfig(("is",), num_images=8)
    with pytest.raises(UserError, match="--metrics_split"):
        MetricsConfig(("fid",), split="test")
    with pytest.raises(UserError, match="needs the judge"):
        SnapshotMetrics(MetricsConfig(("is",)), {"inception": lambda x: x})
    with pytest.raises(UserError, match="feature space"):
        SnapshotMetrics(MetricsConfig(("fid",)), {})
    with pytest.raises(UserError, match="--best_metric 'fid_inception' is not computed"):
        SnapshotMetrics(MetricsConfig(("fid",), best_metric="fid_inception"), {"judge": lambda x: x})


def test_checkpoint_specs_of_an_imported_folder(tiny_checkpoints):
    folder = tiny_checkpoints["glioma"]
    assert ckpt_lib.split_checkpoint_spec(f"{folder}@best") == (Path(folder), "best")
    assert ckpt_lib.split_checkpoint_spec(Path(folder) / "ckpt-7") == (Path(folder), "ckpt-7")
    assert ckpt_lib.split_checkpoint_spec(folder) == (Path(folder), None)
    latest = ckpt_lib.resolve_checkpoint(folder)
    assert latest == (Path(folder), str(Path(folder) / "ckpt-0"))
    assert ckpt_lib.resolve_checkpoint(Path(folder) / "ckpt-0") == latest
    with pytest.raises(UserError, match="has no checkpoint ckpt-5; it has ckpt-0"):
        ckpt_lib.resolve_checkpoint(Path(folder) / "ckpt-5")
    with pytest.raises(UserError, match="no best snapshot"):
        ckpt_lib.load_generator(f"{folder}@best")
    G, info = ckpt_lib.load_generator(Path(folder) / "ckpt-0")
    assert info["class_name"] == "glioma" and ckpt_lib.read_best(folder) is None


def test_snapshot_metrics_match_the_metrics_on_the_same_images(phantom_data, tiny_checkpoints):
    """Identity features: the values equal tfstylegan.metrics on the real split and G's seeds 0..n-1."""
    from tfstylegan.data.pipeline import load_arrays
    from tfstylegan.metrics import fid_from_features, kernel_inception_distance, precision_recall
    from tfstylegan.networks import seed_to_z

    def flat(images):
        return images.reshape(len(images), -1)

    config = MetricsConfig(("fid", "kid", "pr"), num_images=1000, kid_subsets=5)
    sm = SnapshotMetrics(config, {"pixels": flat}, verbose=False)
    n = sm.prepare(phantom_data, "glioma")
    G, _ = ckpt_lib.load_generator(tiny_checkpoints["glioma"])
    got = sm(G)
    real = load_arrays(phantom_data, "train", "glioma")[0]  # n < num_images: the whole split
    assert n == len(real) >= 4
    fake = np.asarray(G(seed_to_z(range(n), G.z_dim), None, noise_mode="const"))
    pr = precision_recall(flat(real), flat(fake), k=3)
    want = {"fid_pixels": fid_from_features(flat(real), flat(fake)),
            "kid_pixels": kernel_inception_distance(flat(real), flat(fake), num_subsets=5, seed=0)[0],
            "precision_pixels": pr["precision"], "recall_pixels": pr["recall"]}
    assert list(got) == list(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k
    with pytest.raises(UserError, match="has .* images of glioma"):
        SnapshotMetrics(MetricsConfig(("pr",), split="val", pr_k=50), {"pixels": flat}).prepare(phantom_data,
                                                                                             "glioma")


# ---------------------------------------------------------------------------------------------
# A run with metrics at every checkpoint.

class _RecordingMetrics(SnapshotMetrics):
    """Also keeps G_ema's weights at every evaluation (what each checkpoint must hold)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.weights = []

    def __call__(self, G):
        self.weights.append([v.numpy().copy() for v in G.variables])
        return super().__call__(G)


@pytest.fixture(scope="module")
def metrics_run(phantom_data, tiny_judge, tmp_path_factory):
    """4 snapshots, keep 2; judge metrics, and a 'drift' space whose FID grows at every call, so the
    first snapshot is the best (fid_drift) and is rotated out of checkpoints/."""
    from classifier.model import load_classifier
    from tfstylegan.apps.evaluation.features import Judge
    from tfstylegan.training.loop import train

    judge = Judge(load_classifier(tiny_judge))
    calls = [0]

    def drift(images):
        calls[0] += 1
        rng = np.random.default_rng(0)
        return rng.normal(size=(len(images), 8)) + calls[0]

    sm = _RecordingMetrics(MetricsConfig(("fid", "kid", "pr", "is"), num_images=12, is_splits=2,
                                         best_metric="fid_drift"),
                           {"judge": judge.features_and_probs, "drift": drift}, verbose=False)
    run = tmp_path_factory.mktemp("snapshots") / "00000-tiny-all"
    final = {}
    stats = train(run, "tiny", phantom_data, train_overrides={"total_kimg": 0.032, "kimg_per_tick": 0.008},
                  verbose=False, keep_checkpoints=2, snapshot_metrics=sm,
                  on_finish=lambda t: final.update(G_ema=[v.numpy().copy() for v in t.G_ema.variables]))
    return run, sm, stats, final["G_ema"]


def _assert_weights(G, expected):
    assert len(G.variables) == len(expected)
    for v, e in zip(G.variables, expected):
        np.testing.assert_array_equal(v.numpy(), e, err_msg=v.path)


@pytest.mark.slow
def test_metrics_are_written_to_tensorboard_jsonl_and_best(metrics_run):
    run, sm, stats, _ = metrics_run
    keys = ["fid_judge", "kid_judge", "precision_judge", "recall_judge", "is_judge",
            "fid_drift", "kid_drift", "precision_drift", "recall_drift"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in rows] == ["ckpt-2", "ckpt-4", "ckpt-6", "ckpt-8"]
    assert [r["kimg"] for r in rows] == pytest.approx([0.008, 0.016, 0.024, 0.032])
    for r in rows:
        assert list(r["results"]) == keys and r["num_images"] == 12 and r["split"] == "train"
        res = r["results"]
        assert res["fid_judge"] >= 0 and res["kid_judge"] == res["kid_judge"]
        assert 0 <= res["precision_judge"] <= 1 and 0 <= res["recall_judge"] <= 1 and 1 <= res["is_judge"] <= 3
    drift = [r["results"]["fid_drift"] for r in rows]
    assert drift == sorted(drift) and drift[0] < drift[-1]
    assert stats["Metrics/fid_judge"] == pytest.approx(rows[-1]["results"]["fid_judge"])

    # TensorBoard: Metrics/<key> at step = images shown; the tick scalars on the same axis
    scalars, hparams = _events(run / "tensorboard")
    for k in keys:
        assert [s for s, _ in scalars[f"Metrics/{k}"]] == [8, 16, 24, 32], k
        assert [v for _, v in scalars[f"Metrics/{k}"]] == pytest.approx([r["results"][k] for r in rows], rel=1e-6)
    assert [s for s, _ in scalars["Progress/kimg"]] == [8, 16, 24, 32]
    assert [v for _, v in scalars["Progress/kimg"]] == pytest.approx([0.008, 0.016, 0.024, 0.032])
    metric_tags, values = _hparams_of(hparams)
    assert {f"Metrics/{k}" for k in keys} | {"Loss/G/loss", "Loss/D/loss"} <= set(metric_tags)
    assert values["preset"] == "tiny" and values["batch_size"] == 4 and values["resume"] == ""

    # best.json (run folder and best/) names the first snapshot; run.json records the settings
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "fid_drift" and best["checkpoint"] == "ckpt-2" and best["kimg"] == pytest.approx(0.008)
    assert best["value"] == pytest.approx(drift[0]) and best["results"] == rows[0]["results"]
    assert ckpt_lib.read_best(run) == best
    info = ckpt_lib.load_run_info(run)
    assert info["options"]["keep_checkpoints"] == 2
    assert info["options"]["metrics"]["best_metric"] == "fid_drift" and info["options"]["metrics"]["keys"] == keys


@pytest.mark.slow
def test_keep_checkpoints_and_specs_load_the_right_weights(metrics_run):
    from tfstylegan.apps import generation
    from tfstylegan.networks import Generator, seed_to_z

    run, sm, _, final = metrics_run
    ckpts = run / "checkpoints"
    assert ckpt_lib.checkpoint_names(ckpts) == ["ckpt-6", "ckpt-8"]  # keep 2; ckpt-2 and ckpt-4 rotated out
    assert ckpt_lib.checkpoint_names(ckpts / "best") == ["ckpt-2"]   # the best survives beside them
    assert ckpt_lib.resolve_checkpoint(f"{run}@best")[1] == str(ckpts / "best" / "ckpt-2")
    assert ckpt_lib.resolve_checkpoint(run / "ckpt-2")[1] == str(ckpts / "best" / "ckpt-2")
    with pytest.raises(UserError, match="no checkpoint ckpt-4; it has ckpt-6, ckpt-8, ckpt-2 \\(best\\)"):
        ckpt_lib.resolve_checkpoint(run / "ckpt-4")

    first, third, last = sm.weights[0], sm.weights[2], sm.weights[3]
    np.testing.assert_array_equal(last[0], final[0])
    assert not all(np.array_equal(a, b) for a, b in zip(first, last))
    for spec, expected in ((f"{run}@best", first), (run / "ckpt-2", first), (run / "ckpt-6", third),
                           (run / "checkpoints" / "ckpt-8", last), (run, last)):
        G, info = ckpt_lib.load_generator(spec)
        _assert_weights(G, expected)
        assert info["preset"]["name"] == "tiny"
    _, _, G_ema, _ = ckpt_lib.load_networks(f"{run}@best")
    _assert_weights(G_ema, first)

    # generate from RUN@best the way the applications load networks: the images of snapshot 1's weights
    G_best, _ = generation.load_network(f"{run}@best")
    reference = Generator(ckpt_lib.preset_of(ckpt_lib.load_run_info(run)).generator, name="reference")
    z = seed_to_z(range(4), G_best.z_dim)
    reference(z, None, noise_mode="const")
    for v, e in zip(reference.variables, first):
        v.assign(e)
    np.testing.assert_allclose(np.asarray(G_best(z, None, noise_mode="const")),
                               np.asarray(reference(z, None, noise_mode="const")), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The launcher: metrics flags, --keep_checkpoints 0, and --resume reusing the recorded flags.

def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "launchers.train_stylegan", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_launcher_resume_reuses_the_recorded_flags(phantom_data, tiny_judge, tmp_path):
    out = tmp_path / "runs"
    _launch("--data", phantom_data, "--out", out, "--preset", "tiny", "--kimg", 0.032, "--kimg_per_tick", 0.008,
            "--snapshot_ticks", 1, "--keep_checkpoints", 0, "--aug", "fixed", "--p", 0.2, "--seed", 3,
            "--metrics", "fid,pr", "--metrics_classifier", tiny_judge, "--metrics_images", 8)
    first = out / "00000-tiny-all-fixed"
    assert ckpt_lib.checkpoint_names(first / "checkpoints") == ["ckpt-2", "ckpt-4", "ckpt-6", "ckpt-8"]  # 0 = all
    assert len((first / "metrics.jsonl").read_text().splitlines()) == 4 and (first / "best.json").is_file()

    stdout = _launch("--resume", first, "--kimg", 0.04)  # nothing else repeated
    assert "resume: reusing the run's recorded flags" in stdout and "--metrics=fid,pr" in stdout
    second = out / "00001-tiny-all-fixed-resume"
    flags1 = ckpt_lib.load_run_info(first)["options"]["flags"]
    info2 = ckpt_lib.load_run_info(second)
    flags2 = info2["options"]["flags"]
    assert flags2 == dict(flags1, resume=str(first), kimg=0.04)
    t = info2["preset"]["train"]
    assert (t["seed"], t["aug"], t["aug_p"], t["total_kimg"]) == (3, "fixed", 0.2, 0.04)
    stats = [json.loads(x) for x in (second / "stats.jsonl").read_text().splitlines()]
    assert [x["Progress/kimg"] for x in stats] == pytest.approx([0.04])  # continued at kimg 0.032
    rows = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in rows] == ["ckpt-10"]
    assert list(rows[0]["results"]) == ["fid_judge", "precision_judge", "recall_judge"]
    # the resumed run has its HParams record too (config with the metrics, and where it resumed from)
    scalars, hparams = _events(second / "tensorboard")
    metric_tags, values = _hparams_of(hparams)
    assert "Metrics/fid_judge" in metric_tags and values["resume"] == str(first) and values["seed"] == 3
    assert [s for s, _ in scalars["Metrics/fid_judge"]] == [40]


def test_tensorboard_steps_are_kimg_as_the_official_stats_unless_ticks_are_shorter(tmp_path):
    from tfstylegan.training.summaries import RunReporter, tensorboard_step_unit

    assert tensorboard_step_unit(4.0) == "kimg" and tensorboard_step_unit(1.0) == "kimg"
    assert tensorboard_step_unit(0.25) == "images"
    for unit, expected in (("kimg", [4, 8]), ("images", [4000, 8000])):
        reporter = RunReporter(tmp_path / unit, step_unit=unit)
        for images in (4000, 8000):
            reporter.scalars({"Progress/kimg": images / 1000}, step=images)
            reporter.metrics({"results": {"fid_judge": 1.0}}, step=images)
        reporter.close()
        scalars, _ = _events(tmp_path / unit / "tensorboard")
        assert [s for s, _ in scalars["Progress/kimg"]] == expected
        assert [s for s, _ in scalars["Metrics/fid_judge"]] == expected
    with pytest.raises(ValueError, match="step_unit"):
        RunReporter(tmp_path / "x", step_unit="seconds")
