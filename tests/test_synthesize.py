"""tfstylegan.apps.synthetic_dataset and launchers/synthesize.py: synthetic datasets in the prepared layout,
the privacy and quality filters, resume, and training on real + synthetic from the launchers."""

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import save_tiny
from PIL import Image

from tfstylegan.apps import generation
from tfstylegan.apps import synthetic_dataset as sd
from tfstylegan.apps.synthetic_dataset import filters as sd_filters  # where candidates() looks it up
from tfstylegan.config import get_preset
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["meningioma", "glioma", "pituitary"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """16x16 phantom data (4 held-out slices per class), tiny conditional and with-mask generators, and a judge
    whose glioma logit is the standardised top principal component of its features (so class probabilities
    vary from image to image, unlike a random head's ~1/3)."""
    import keras

    from classifier.model import build_classifier
    from tfstylegan.apps.evaluation.features import Judge
    from tfstylegan.data.phantom import write_phantom_dataset
    from tfstylegan.data.prepare import prepare

    root = tmp_path_factory.mktemp("synthesize")
    write_phantom_dataset(root / "raw", num_patients_per_class=6, slices_per_patient=2, size=64, progress=False)
    prepare(root / "raw", root / "data", resolution=16, progress=False)
    tiny = get_preset("tiny")
    cond = save_tiny(root / "cond", tiny.with_data(c_dim=3), CLASSES, None, True)
    masked = save_tiny(root / "gli_mask", tiny.with_data(img_channels=2), ["glioma"], "glioma", False, with_mask=True)
    keras.utils.set_random_seed(0)
    model = build_classifier(CLASSES, input_size=75, freeze_batchnorm=False)
    judge = Judge(model, batch_size=32)
    gen = generation.load_class_generators(str(cond))["glioma"]
    feats = judge.features_and_probs(generation.generate_images(gen, list(range(64)))[..., :1])[0].astype(np.float64)
    centred = feats - feats.mean(0)
    u = np.linalg.svd(centred, full_matrices=False)[2][0]
    scale = 1.0 / (centred @ u).std()
    kernel = np.zeros(model.head.kernel.shape, np.float32)
    kernel[:, 1] = u * scale
    model.head.kernel.assign(kernel)
    model.head.bias.assign(np.array([0.0, -float(feats.mean(0) @ u * scale), 0.0], np.float32))
    return {"root": root, "data": root / "data", "cond": cond, "masked": masked, "judge": judge, "model": model}


def _examples(out, class_name):
    from tfstylegan.data.tfrecords import read_examples

    return [e for p in sorted((out / "train").glob(f"{class_name}-*.tfrecord")) for e in read_examples(p)]


def _assert_same_slices(a, b):
    """Equal up to float round-off: another batch shape may move a value across a rounding step (1 grey level)."""
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))


def _pixels(out, class_name):
    from tfstylegan.data.tfrecords import decode_png

    return np.stack([decode_png(e["image"]) for e in _examples(out, class_name)])


# --- settings -------------------------------------------------------------------------------------------------

def test_config_validation_and_counts():
    with pytest.raises(UserError, match="num_per_class must be > 0"):
        sd.SyntheticDatasetConfig(num_per_class=0)
    with pytest.raises(UserError, match="num must be > 0"):
        sd.SyntheticDatasetConfig(match_ratios=True, num=-3)
    with pytest.raises(UserError, match="finite"):
        sd.SyntheticDatasetConfig(num_per_class=4, truncation_psi=float("nan"))
    with pytest.raises(UserError, match="privacy_percentile"):
        sd.SyntheticDatasetConfig(num_per_class=4, privacy_percentile=100)
    with pytest.raises(UserError, match="min_class_prob"):
        sd.SyntheticDatasetConfig(num_per_class=4, min_class_prob=1.0)
    with pytest.raises(UserError, match="not both"):
        sd.SyntheticDatasetConfig(num_per_class=4, match_ratios=True, num=10)
    # Figshare's train ratios 708 : 1426 : 930, 1000 slices: largest remainder keeps the sum exact
    counts = sd.class_counts(sd.SyntheticDatasetConfig(match_ratios=True, num=1000), CLASSES,
                             {"meningioma": 708, "glioma": 1426, "pituitary": 930})
    assert counts == {"meningioma": 231, "glioma": 465, "pituitary": 304} and sum(counts.values()) == 1000
    assert sd.class_counts(sd.SyntheticDatasetConfig(num_per_class=7), ["glioma"], {}) == {"glioma": 7}
    assert sd.compact_seeds([5, 0, 1, 2, 7, 8, 10]) == "0-2,5,7-8,10"
    assert sd.MAX_SEED == generation.MAX_SEED
    assert generation.parse_seeds(sd.compact_seeds([3, 4, 9])) == [3, 4, 9]


# --- the dataset ----------------------------------------------------------------------------------------------

def test_dataset_in_the_prepared_layout_with_provenance(assets, tmp_path):
    from tfstylegan.data.pipeline import load_arrays, load_dataset, read_manifest

    out = tmp_path / "synth"
    config = sd.SyntheticDatasetConfig(num_per_class=6, shard_size=4, batch_size=8, truncation_psi=0.7, png=True)
    manifest = sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config,
                                          classifier=assets["judge"], show_progress=False)
    assert not (tmp_path / ".synth.partial").exists()
    assert read_manifest(out) == json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["class_names"] == CLASSES and manifest["counts"] == {c: 6 for c in CLASSES}
    assert manifest["split_counts"]["train"] == {c: 6 for c in CLASSES} and not manifest["has_mask"]
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        f"{c}-0000{k}-of-00002.tfrecord" for c in CLASSES for k in (0, 1))
    for rel, digest in manifest["files"].items():  # every file is listed with its checksum
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    synthetic = manifest["synthetic"]
    assert synthetic["truncation_psi"] == 0.7 and synthetic["noise_mode"] == "const"
    assert synthetic["generators"]["glioma"]["class_id"] == 1 and synthetic["generators"]["glioma"]["conditional"]
    assert synthetic["filters"]["privacy"]["percentile"] == 1.0
    assert synthetic["filters"]["privacy"]["space"] == ["pixels", "judge features"]
    assert synthetic["privacy_report"] == "privacy/report.json" and "privacy/report.json" in manifest["files"]

    # read like real data, labels in the canonical order
    images, labels, pids = load_arrays(out, "train")
    assert images.shape == (18, 16, 16, 1) and -1 <= images.min() and images.max() <= 1
    assert sorted(np.bincount(labels).tolist()) == [6, 6, 6]
    x, y = next(iter(load_dataset(out, "train", batch_size=18, shuffle=True)))
    assert x.shape == (18, 16, 16, 1) and sorted(y.numpy().tolist()) == sorted(labels.tolist())

    # each slice is its seed's image (the same as `generate` makes), quantised to the dataset's 8 bits
    gen = generation.load_class_generators(str(assets["cond"]))["pituitary"]
    seeds = generation.parse_seeds(synthetic["seeds"]["pituitary"]["kept"])
    assert len(seeds) == 6
    expected = generation.to_pixels(generation.generate_images(gen, seeds, truncation_psi=0.7)[..., 0])
    _assert_same_slices(_pixels(out, "pituitary"), expected)
    assert [e["slice_id"] for e in _examples(out, "pituitary")] == [sd.slice_id("pituitary", s) for s in seeds]

    # PNG folder + CSV for other tools, with checksums
    rows = list(csv.DictReader(open(out / "slices.csv", encoding="utf-8")))
    assert len(rows) == 18 and {r["class"] for r in rows} == set(CLASSES)
    row = next(r for r in rows if r["class"] == "pituitary" and int(r["seed"]) == seeds[0])
    np.testing.assert_array_equal(np.asarray(Image.open(out / row["file"])), _pixels(out, "pituitary")[0])
    assert row["mask_file"] == "" and float(row["pixel_distance"]) > 0 and 0 < float(row["class_prob"]) < 1
    sums = dict(line.split("  ")[::-1] for line in (out / "png" / "SHA256SUMS").read_text().splitlines())
    assert len(sums) == 18 and sums[row["file"][len("png/"):]] == hashlib.sha256(
        (out / row["file"]).read_bytes()).hexdigest()
    report = json.loads((out / "privacy" / "report.json").read_text())
    for c in CLASSES:
        r = report["per_class"][c]
        assert r["kept"] == 6 and r["drawn"] == r["kept"] + r["dropped"] and r["threshold_pixels"] > 0
        assert len(r["closest_kept"]) == 6 and (out / "privacy" / f"closest_pairs_{c}.png").is_file()
        assert (out / f"preview_{c}.png").is_file()

    with pytest.raises(UserError, match="already exists"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, show_progress=False)


def test_privacy_filter_drops_planted_copies_and_keeps_independent_samples(assets, tmp_path, monkeypatch):
    """Seeds divisible by 3 return a training slice (exact, or with +-1 grey level of noise); the others are
    the tiny generator's own images, far from any training slice."""
    from tfstylegan.data.pipeline import load_arrays

    train, labels, _ = load_arrays(assets["data"], "train")
    real = sd.generate_candidates

    def planted(gen, seeds, psi, noise_mode):
        images = real(gen, seeds, psi, noise_mode)
        for i, s in enumerate(seeds):
            if s % 3 == 0:
                copy = train[(s // 3) % len(train)].copy()
                if s % 2:  # a near copy: +-1/127.5 in a few pixels
                    copy[::5, ::3] += np.where(copy[::5, ::3] < 0, 1, -1) / 127.5
                images[i, ..., :1] = copy
        return images

    monkeypatch.setattr(sd_filters, "generate_candidates", planted)
    out = tmp_path / "synth"
    config = sd.SyntheticDatasetConfig(num_per_class=8, shard_size=8, batch_size=8)
    sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, classifier=assets["judge"],
                               show_progress=False)
    report = json.loads((out / "privacy" / "report.json").read_text())
    train_px = np.round((train[..., 0] + 1) * 127.5).astype(np.int64)
    for c in CLASSES:
        r = report["per_class"][c]
        kept = generation.parse_seeds(r["seeds_kept"])
        dropped = generation.parse_seeds(r["seeds_dropped"])
        # seeds 0..11 drawn: the planted 0, 3, 6, 9 dropped (in pixels and in judge features), the rest kept
        assert kept == [1, 2, 4, 5, 7, 8, 10, 11] and dropped == [0, 3, 6, 9]
        assert r["dropped_privacy"] == r["dropped_privacy_pixels"] == r["dropped_privacy_features"] == 4
        assert r["drawn"] == 12 and r["rejected_quality"] == 0
        assert r["kept_to_train_pixels"]["min"] > r["threshold_pixels"]
        # nothing stored is a copy of a training slice
        stored = _pixels(out, c).reshape(8, -1).astype(np.int64)
        nearest = np.min(np.abs(stored[:, None] - train_px.reshape(1, len(train_px), -1)).sum(-1), axis=1)
        assert nearest.min() > 0
    closest = Image.open(out / "privacy" / "closest_pairs_glioma.png")
    assert closest.size[0] > 0  # pairs of (kept slice, its nearest training slice)
    assert report["totals"]["dropped_privacy"] == 12


def test_quality_filter_reports_the_rejection_rate_per_class(assets, tmp_path):
    judge = assets["judge"]
    gens = generation.load_class_generators(str(assets["cond"]))

    def class_probs(c, n):  # the judge's probability of class c for seeds 0..n-1, judged as the library does
        images = sd.generate_candidates(gens[c], list(range(0, (n + 7) // 8 * 8)), 1.0, "const")
        return np.concatenate([sd.judge_pixels(judge, sd.quantize(images[i:i + 8], 8), 8)[1]
                               for i in range(0, len(images), 8)])[:n, CLASSES.index(c)]

    # every class keeps about 40 % or more of its candidates, one class about 40 % only
    threshold = float(min(np.percentile(class_probs(c, 32), 60) for c in CLASSES))
    config = sd.SyntheticDatasetConfig(num_per_class=6, min_class_prob=threshold, privacy_percentile=0,
                                       batch_size=8, shard_size=8, max_draws_per_slice=30)
    out = tmp_path / "synth"
    sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, classifier=judge,
                               show_progress=False)
    report = json.loads((out / "privacy" / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    rejected = []
    for c in CLASSES:
        r = report["per_class"][c]
        drawn = r["drawn"]
        probs = class_probs(c, drawn)  # the same candidates, judged independently in the same batches
        assert r["rejected_quality"] == int(np.sum(probs < threshold)) and r["kept"] == 6
        assert r["quality_rejection_rate"] == pytest.approx(r["rejected_quality"] / drawn)
        assert generation.parse_seeds(r["seeds_kept"]) == [s for s in range(drawn) if probs[s] >= threshold]
        assert manifest["synthetic"]["privacy"][c]["quality_rejection_rate"] == r["quality_rejection_rate"]
        assert r["min_class_prob_kept"] >= threshold and r["dropped_privacy"] == 0
        rejected.append(r["rejected_quality"])
    assert sum(rejected) > 0, rejected  # the filter did something

    with pytest.raises(UserError, match="needs the judge"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], tmp_path / "x", config, show_progress=False)
    impossible = sd.SyntheticDatasetConfig(num_per_class=4, min_class_prob=0.999, privacy_percentile=0,
                                           batch_size=8, max_draws_per_slice=2)
    with pytest.raises(UserError, match="passed the filters after 8 candidates"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], tmp_path / "y", impossible,
                                   classifier=judge, show_progress=False)
    assert not (tmp_path / "y").exists() and not (tmp_path / ".y.partial").exists()


def test_interrupted_run_resumes_to_the_same_dataset(assets, tmp_path, monkeypatch):
    """Killed in the middle of glioma; the resumed run restarts inside a batch and still writes the same bytes."""
    config = sd.SyntheticDatasetConfig(num_per_class=10, shard_size=3, batch_size=4, png=True)
    whole = tmp_path / "whole"
    sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], whole, config, show_progress=False)

    real, calls = sd.generate_candidates, []

    def dies_on_the_fifth_batch(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    out = tmp_path / "resumed"
    monkeypatch.setattr(sd_filters, "generate_candidates", dies_on_the_fifth_batch)
    with pytest.raises(KeyboardInterrupt):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, show_progress=False)
    partial = tmp_path / ".resumed.partial"
    assert not out.exists()
    # meningioma took batches 1-3 (seeds 0-11, its 4 shards of 3, 3, 3, 1); glioma's batch 1 (seeds 0-3) filled
    # its first shard (0-2); batch 2 died. The resumed glioma starts at seed 3, inside batch 1.
    finished = sorted(p.name for p in (partial / "train").glob("*.tfrecord"))
    assert finished == ["glioma-00000-of-00004.tfrecord"] + [f"meningioma-0000{k}-of-00004.tfrecord" for k in range(4)]
    with pytest.raises(UserError, match="--resume"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, show_progress=False)
    other = sd.SyntheticDatasetConfig(num_per_class=10, shard_size=3, batch_size=4, png=True, truncation_psi=0.5)
    with pytest.raises(UserError, match="other settings"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, other, resume=True, show_progress=False)

    monkeypatch.setattr(sd_filters, "generate_candidates", real)
    sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], out, config, resume=True, show_progress=False)
    assert not partial.exists()
    files = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    for rel in files:
        if rel != "manifest.json":  # the manifest differs only in its creation time
            assert (whole / rel).read_bytes() == (out / rel).read_bytes(), rel
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (whole, out))
    a["synthetic"].pop("created"), b["synthetic"].pop("created")
    assert a == b


def test_mask_models_store_masks(assets, tmp_path):
    from tfstylegan.data.pipeline import load_dataset

    out = tmp_path / "synth"
    config = sd.SyntheticDatasetConfig(num_per_class=4, batch_size=4, png=True)
    manifest = sd.write_synthetic_dataset(f"glioma={assets['masked']}", assets["data"], out, config,
                                          show_progress=False)
    assert manifest["has_mask"] and manifest["class_names"] == ["glioma"]
    from tfstylegan.data.tfrecords import decode_png
    masks = np.stack([decode_png(e["mask"]) for e in _examples(out, "glioma")])
    assert masks.shape == (4, 16, 16) and set(np.unique(masks)) <= {0, 255}
    x, _ = next(iter(load_dataset(out, "train", batch_size=4, with_mask=True, shuffle=False)))
    assert x.shape == (4, 16, 16, 2)
    rows = list(csv.DictReader(open(out / "slices.csv", encoding="utf-8")))
    assert all(r["mask_file"].endswith("_mask.png") and (out / r["mask_file"]).is_file() for r in rows)

    without = sd.write_synthetic_dataset(f"glioma={assets['masked']}", assets["data"], tmp_path / "nomask",
                                         sd.SyntheticDatasetConfig(num_per_class=2, with_mask=False),
                                         show_progress=False)
    assert not without["has_mask"]
    with pytest.raises(UserError, match="make no tumor masks"):
        sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], tmp_path / "bad",
                                   sd.SyntheticDatasetConfig(num_per_class=2, with_mask=True), show_progress=False)


def test_evaluate_utility_writes_what_synthesize_writes(assets, tmp_path):
    """evaluate --utility's in-memory images make the dataset synthesize makes without filters (same slices, ids
    and labels; the pixels up to float round-off of the other batch shape)."""
    gens = generation.load_class_generators(str(assets["cond"]))
    images = {c: generation.generate_images(g, list(range(5)), batch_size=16)[..., :1] for c, g in gens.items()}
    sd.write_images_dataset(tmp_path / "from_evaluate", images, {c: list(range(5)) for c in images}, 8,
                            {"checkpoint": str(assets["cond"])}, shard_size=1024)
    sd.write_synthetic_dataset(str(assets["cond"]), assets["data"], tmp_path / "from_synthesize",
                               sd.SyntheticDatasetConfig(num_per_class=5, privacy_percentile=0), show_progress=False)
    for c in CLASSES:
        a, b = _examples(tmp_path / "from_evaluate", c), _examples(tmp_path / "from_synthesize", c)
        assert [(e["slice_id"], e["label"], e["class_name"]) for e in a] == [
            (e["slice_id"], e["label"], e["class_name"]) for e in b]
        _assert_same_slices(_pixels(tmp_path / "from_evaluate", c), _pixels(tmp_path / "from_synthesize", c))


# --- the launchers --------------------------------------------------------------------------------------------

def _launch(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_launcher_bad_inputs_exit_1_with_a_clear_message(assets, tmp_path):
    no_train = tmp_path / "no_train"
    shutil.copytree(assets["data"], no_train)
    shutil.rmtree(no_train / "train")
    manifest = json.loads((no_train / "manifest.json").read_text())
    manifest["split_counts"]["train"] = {c: 0 for c in manifest["class_names"]}
    (no_train / "manifest.json").write_text(json.dumps(manifest))
    common = [f"--out={tmp_path / 'out'}", "--quiet"]
    cases = {
        "missing checkpoint": ([f"--checkpoint={tmp_path / 'nope'}", f"--data={assets['data']}",
                                "--num_per_class=4"], "nope"),
        "data without train split": ([f"--checkpoint={assets['cond']}", f"--data={no_train}", "--num_per_class=4"],
                                     "no train split"),
        "N <= 0": ([f"--checkpoint={assets['cond']}", f"--data={assets['data']}", "--num_per_class=0"],
                   "--num_per_class must be > 0"),
        "non-finite psi": ([f"--checkpoint={assets['cond']}", f"--data={assets['data']}", "--num_per_class=4",
                            "--truncation_psi=nan"], "--truncation_psi must be a finite number"),
    }
    procs = {name: _launch("launchers.synthesize", *args, *common) for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, (name, stderr[-2000:])
        assert "error:" in stderr and cases[name][1] in stderr and "Traceback" not in stderr, (name, stderr[-2000:])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_launchers_synthesize_then_train_on_real_plus_synthetic(assets, tmp_path):
    """synthesize -> the utility experiment's real+synthetic classifier in-process -> the same classifier by hand
    with the recorded train_classifier command: same numbers, validated and tested on the real splits."""
    from classifier.training import ClassifierConfig
    from tfstylegan.apps.evaluation.utility import train_on_synthetic

    synth = tmp_path / "synth"
    proc = _launch("launchers.synthesize", f"--checkpoint={assets['cond']}", f"--data={assets['data']}",
                   f"--out={synth}", "--match_ratios", "--num=15", "--truncation_psi=0.8")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "kept 5 of" in stdout and (synth / "privacy" / "report.json").is_file()
    real = json.loads((assets["data"] / "manifest.json").read_text())
    real_train = real["split_counts"]["train"]
    assert json.loads((synth / "manifest.json").read_text())["counts"] == {c: 5 for c in CLASSES}

    config = ClassifierConfig(input_size=75, epochs=1, head_epochs=0, batch_size=16, weights="none", patience=0)
    report = train_on_synthetic(assets["data"], synth, config, settings=("real+synthetic",))
    result = report["settings"]["real+synthetic"]
    assert result["num_train"] == sum(real_train.values()) + 15
    assert result["split"] == report["test_split"] == "test"
    assert result["num_examples"] == report["num_test"] == sum(real["split_counts"]["test"].values())

    by_hand = tmp_path / "by_hand"
    argv = result["command"].replace("<out>/classifier_real_plus_synthetic", str(by_hand)).split()
    assert argv[:3] == ["python", "-m", "launchers.train_classifier"] and f"--extra_data={synth}" in argv
    proc = _launch(*argv[2:])
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    saved = json.loads((by_hand / "config.json").read_text())
    assert [s["data"] for s in saved["train_sources"]] == [str(assets["data"]), str(synth)]
    assert saved["train_counts"] == {c: real_train[c] + 5 for c in CLASSES}
    assert saved["val_split"] == "val" and saved["test_split"] == "test"
    metrics = json.loads((by_hand / "metrics.json").read_text())
    assert metrics["data"] == str(assets["data"]) and metrics["split"] == "test"  # real patient-wise test split
    for key in ("accuracy", "confusion_matrix", "macro_f1", "num_train", "train_counts"):
        assert metrics[key] == result[key], key  # the utility number, reproduced by hand
