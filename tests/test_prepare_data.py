"""prepare(...) and launchers/prepare_data.py: preprocessing, patient-wise splits, bad input, outputs."""

import json
import os
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfstylegan.data import figshare, preprocess
from tfstylegan.data.prepare import prepare, split_patients
from tfstylegan.data.tfrecords import decode_png, read_examples
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import sha256_file

REPO = Path(__file__).resolve().parents[1]
FAST = dict(resolution=16, progress=False)


def make_figshare(folder, patients, size=128, seed=0, cvind=None):
    """Writes slices `1.mat`... for `patients` = [(pid, label, num_slices)], in the v7.3 layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = 0
    for pid, label, k in patients:
        for _ in range(k):
            n += 1
            img = rng.integers(0, 2000, size=(size, size)).astype(np.int16)
            mask = np.zeros((size, size), np.uint8)
            mask[size // 2 - 8:size // 2 + 8, size // 2 - 4:size // 2 + 12] = 1
            figshare.write_figshare_mat(folder / f"{n}.mat", img, label, pid, mask)
    if cvind is not None:
        figshare.write_cvind(folder / "cvind.mat", cvind)
    return folder


def _patients(per_class=10, slices=2):
    return [(f"P{c}{i:02d}", c, slices) for c in (1, 2, 3) for i in range(per_class)]


def _shard_records(out):
    recs = defaultdict(list)
    for split in ("train", "val", "test"):
        for f in sorted((Path(out) / split).glob("*.tfrecord")) if (Path(out) / split).exists() else []:
            recs[split] += read_examples(f)
    return recs


def _nothing_written(tmp_path, out):
    assert not Path(out).exists()
    assert not [p for p in Path(out).parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# Preprocessing.

@pytest.mark.parametrize("h,w,box", [
    (512, 512, (128, 384, 128, 384)),   # the study: 128 px per side
    (256, 256, (64, 192, 64, 192)),     # proportional, not a fixed 128 px
    (300, 400, (75, 225, 125, 275)),    # 150 x 200 after the crop, then the central square
    (512, 512 + 1, (128, 384, 128, 384))])
def test_crop_box(h, w, box):
    assert preprocess.crop_box(h, w, 0.25) == box


@pytest.mark.parametrize("h,w", [(512, 512), (256, 256), (300, 400)])
def test_preprocess_ignores_the_cropped_border(h, w):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 1000, size=(h, w)).astype(np.int16)
    other = img.copy()
    top, bottom, left, right = preprocess.crop_box(h, w, 0.25)
    keep = np.zeros((h, w), bool)
    keep[top:bottom, left:right] = True
    other[~keep] = rng.integers(-30000, 30000, size=(~keep).sum())
    a = preprocess.preprocess_image(img, 32)
    b = preprocess.preprocess_image(other, 32)
    assert a.shape == (32, 32) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_crop_content_on_512():
    img = np.zeros((512, 512), np.int16)
    img[128:384, 128:384] = 100            # exactly the kept centre
    img[128:130, 128:384] = 1000           # a bright top row of the kept region
    out = preprocess.center_crop(img, 0.25)
    assert out.shape == (256, 256) and (out >= 100).all() and (out[:2] == 1000).all()


def test_resize_is_antialiased():
    checker = (np.indices((512, 512)).sum(0) % 2).astype(np.float32) * 1000  # 1-px checkerboard
    out = preprocess.preprocess_image(checker, 32, crop_fraction=0.25, percentiles=(0, 100))
    # an aliasing resize (nearest, or bilinear without a widened kernel) gives black/white; a proper
    # low-pass filter gives uniform mid-gray
    assert abs(out.astype(float).mean() - 127.5) < 3 and out.std() < 2


def test_percentile_normalisation():
    rng = np.random.default_rng(1)
    img = rng.normal(500, 50, size=(128, 128))
    spiky = img.copy()
    spiky[64, 64] = 30000  # one hot pixel does not change the window
    a = preprocess.preprocess_image(img, 128, crop_fraction=0, percentiles=(0.5, 99.5))
    b = preprocess.preprocess_image(spiky, 128, crop_fraction=0, percentiles=(0.5, 99.5))
    assert np.mean(np.abs(a.astype(int) - b.astype(int)) > 1) < 0.01
    assert a.min() == 0 and a.max() == 255 and np.mean(a == 255) < 0.01  # 0.5% clipped each end
    sixteen = preprocess.preprocess_image(img, 128, crop_fraction=0, bit_depth=16)
    assert sixteen.dtype == np.uint16 and sixteen.max() == 65535
    np.testing.assert_allclose(sixteen / 257.0, a, atol=1)


def test_mask_preprocessing():
    mask = np.zeros((512, 512), np.uint8)
    mask[200:300, 256:320] = 1
    m = preprocess.preprocess_mask(mask, 32)
    assert set(np.unique(m)) == {0, 255}
    ys, xs = np.nonzero(m)  # (200..300, 256..320) -> crop (72..172, 128..192) -> /8
    assert ys.min() == 9 and ys.max() == 21 and xs.min() == 16 and xs.max() == 23


# ---------------------------------------------------------------------------------------------
# Splits.

def test_split_patients_property():
    rng = np.random.default_rng(0)
    for trial in range(20):
        pc = {f"p{i}": list(rng.choice(["meningioma", "glioma", "pituitary"], size=rng.integers(1, 4)))
              for i in range(int(rng.integers(1, 60)))}
        a = split_patients(pc, (0.8, 0.1, 0.1), seed=trial)
        assert set(a) == set(pc) and set(a.values()) <= {"train", "val", "test"}
        assert a == split_patients(pc, (0.8, 0.1, 0.1), seed=trial)
    pc = {f"p{i}": ["glioma"] for i in range(30)} | {f"q{i}": ["pituitary"] for i in range(10)}
    a = split_patients(pc, (0.8, 0.1, 0.1), seed=0)
    per = defaultdict(lambda: defaultdict(int))
    for pid, s in a.items():
        per[pid[0]][s] += 1
    assert dict(per["p"]) == {"train": 24, "val": 3, "test": 3}
    assert dict(per["q"]) == {"train": 8, "val": 1, "test": 1}
    assert a != split_patients(pc, (0.8, 0.1, 0.1), seed=1)


def test_prepare_patient_wise_split(tmp_path):
    pats = _patients(per_class=10, slices=3)
    pats.append(("SHARED", 1, 2))
    pats.append(("SHARED", 2, 1))  # one id under two labels: still one split
    src = make_figshare(tmp_path / "src", pats)
    m = prepare(src, tmp_path / "out", seed=3, **FAST)
    recs = _shard_records(tmp_path / "out")
    where = defaultdict(set)
    for split, rs in recs.items():
        for r in rs:
            where[r["patient_id"]].add(split)
            assert r["height"] == r["width"] == 16
            assert decode_png(r["image"]).shape == (16, 16)
    assert all(len(s) == 1 for s in where.values()), {p: s for p, s in where.items() if len(s) > 1}
    assert len(where) == 31
    for split in ("train", "val", "test"):
        assert m["patients"][split] == sorted(p for p, s in where.items() if split in s)
        for cls in m["class_names"]:
            assert m["split_counts"][split][cls] == sum(r["class_name"] == cls for r in recs[split])
    assert m["counts"] == {"meningioma": 32, "glioma": 31, "pituitary": 30}
    assert m["num_patients"]["train"] >= 22 and m["num_patients"]["val"] >= 3
    # deterministic given the seed; another seed gives another split
    m2 = prepare(src, tmp_path / "out2", seed=3, **FAST)
    assert m2["patients"] == m["patients"] and m2["files"] == m["files"]
    assert prepare(src, tmp_path / "out3", seed=4, **FAST)["patients"] != m["patients"]


def test_prepare_fold_from_cvind(tmp_path):
    pats = _patients(per_class=5, slices=2)  # 15 patients, 30 slices
    folds = np.repeat(np.arange(15) % 5 + 1, 2)
    src = make_figshare(tmp_path / "src", pats, cvind=folds)
    m = prepare(src, tmp_path / "out", fold=2, **FAST)
    pid_fold = {pid: folds[2 * i] for i, (pid, _, _) in enumerate(pats)}
    assert m["patients"]["test"] == sorted(p for p, f in pid_fold.items() if f == 2)
    assert m["patients"]["val"] == sorted(p for p, f in pid_fold.items() if f == 3)
    assert len(m["patients"]["train"]) == 9
    with pytest.raises(UserError, match=r"--fold must be in 1\.\.5"):
        prepare(src, tmp_path / "o2", fold=6, **FAST)
    bad = folds.copy()
    bad[1] = 4  # patient 0 split over two folds
    src2 = make_figshare(tmp_path / "src2", pats, cvind=bad)
    with pytest.raises(UserError, match="patient-separated"):
        prepare(src2, tmp_path / "o3", fold=1, **FAST)
    nocv = make_figshare(tmp_path / "src3", pats)
    with pytest.raises(UserError, match="cvind.mat"):
        prepare(nocv, tmp_path / "o4", fold=1, **FAST)
    _nothing_written(tmp_path, tmp_path / "o4")


# ---------------------------------------------------------------------------------------------
# Outputs.

def test_outputs_manifest_previews_checksums(tmp_path):
    src = make_figshare(tmp_path / "src", _patients(per_class=4, slices=2))
    m = prepare(src, tmp_path / "out", shard_size=3, **FAST)
    out = tmp_path / "out"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    for key in ("format_version", "resolution", "bit_depth", "class_names", "has_mask", "counts",
                "split_counts", "patients", "source", "settings", "files", "skipped"):
        assert key in m
    assert m["class_names"] == ["meningioma", "glioma", "pituitary"] and m["has_mask"] is True
    assert m["settings"]["crop_fraction"] == 0.25 and m["source"]["format"] == "figshare"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(m["files"]) == [f for f in files if f != "manifest.json"]
    for rel, digest in m["files"].items():
        assert sha256_file(out / rel) == digest
    for cls in m["class_names"]:
        assert Image.open(out / f"preview_{cls}.png").mode == "L"
    train = sorted(p.name for p in (out / "train").iterdir())
    n = m["split_counts"]["train"]["glioma"]
    shards = -(-n // 3)
    assert [f for f in train if f.startswith("glioma")] == [
        f"glioma-{k:05d}-of-{shards:05d}.tfrecord" for k in range(shards)]
    rec = read_examples(out / "train" / train[0])[0]
    assert set(np.unique(decode_png(rec["mask"]))) <= {0, 255}
    assert rec["label"] == ["meningioma", "glioma", "pituitary"].index(rec["class_name"])


def test_zip_source_gives_identical_shards(tmp_path):
    src = make_figshare(tmp_path / "src", _patients(per_class=2, slices=2),
                        cvind=np.repeat(np.arange(6) % 5 + 1, 2))
    inner = tmp_path / "brainTumorDataPublic_1-12.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for p in sorted(src.glob("*.mat")):
            if p.name != "cvind.mat":
                z.write(p, p.name)
    outer = tmp_path / "download.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, inner.name)
        z.write(src / "cvind.mat", "cvind.mat")
    a = prepare(src, tmp_path / "a", **FAST)
    b = prepare(outer, tmp_path / "b", **FAST)
    assert a["files"] == b["files"] and b["source"]["cvind"].endswith("download.zip:cvind.mat")
    assert not (tmp_path / "1.mat").exists()


def test_bit_depth_16(tmp_path):
    src = make_figshare(tmp_path / "src", _patients(per_class=1, slices=1))
    m = prepare(src, tmp_path / "out", bit_depth=16, split="1,0,0", **FAST)
    rec = read_examples(next((tmp_path / "out" / "train").glob("*.tfrecord")))[0]
    assert decode_png(rec["image"]).dtype == np.uint16 and m["bit_depth"] == 16


def test_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    for cls, shape in (("glioma_tumor", (90, 120, 3)), ("meningioma", (300, 400)), ("no_tumor", (64, 64))):
        d = tmp_path / "src" / "Training" / cls
        d.mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, size=shape).astype(np.uint8)).save(d / f"{i}.jpg")
    m = prepare(tmp_path / "src", tmp_path / "out", **FAST)
    assert m["source"]["format"] == "folders" and m["has_mask"] is False
    assert m["class_names"] == ["meningioma", "glioma", "notumor"]
    assert m["counts"] == {"meningioma": 5, "glioma": 5, "notumor": 5}
    assert m["patient_ids_known"] is False
    rec = read_examples(next((tmp_path / "out" / "train").glob("notumor-*.tfrecord")))[0]
    assert rec["label"] == 3 and rec["mask"] == b"" and decode_png(rec["image"]).shape == (16, 16)


def test_overwrite(tmp_path):
    src = make_figshare(tmp_path / "src", _patients(per_class=1, slices=1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        prepare(src, tmp_path / "out", **FAST)
    prepare(src, tmp_path / "out", overwrite=True, **FAST)
    assert not (tmp_path / "out" / "old.txt").exists() and (tmp_path / "out" / "manifest.json").exists()


# ---------------------------------------------------------------------------------------------
# Bad input: a message naming the file, nothing written; --skip_bad lists what it skipped.

def _bad_figshare(tmp_path, kind):
    src = make_figshare(tmp_path / "src", _patients(per_class=2, slices=1))
    bad = src / "7.mat"
    if kind == "corrupt":
        data = (src / "1.mat").read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    elif kind == "not_hdf5":
        bad.write_text("<html>404 Not Found</html>\n" * 30)
    elif kind == "missing_field":
        import h5py
        figshare.write_figshare_mat(bad, np.zeros((128, 128), np.int16), 1, "PX", np.zeros((128, 128)))
        with h5py.File(bad, "r+") as f:
            del f["cjdata/label"]
    elif kind == "unknown_label":
        figshare.write_figshare_mat(bad, np.zeros((128, 128), np.int16), 7, "PX", np.zeros((128, 128)))
    elif kind == "tiny":
        figshare.write_figshare_mat(bad, np.ones((32, 32), np.int16), 1, "PX", np.zeros((32, 32)))
    return src, bad


FIGSHARE_CASES = {
    "corrupt": "not a readable MATLAB file",
    "not_hdf5": "not a readable MATLAB file",
    "missing_field": "cjdata has no 'label' field",
    "unknown_label": "unknown label 7",
    "tiny": "tiny image",
}


@pytest.mark.parametrize("kind", sorted(FIGSHARE_CASES))
def test_bad_figshare_input(tmp_path, kind):
    src, bad = _bad_figshare(tmp_path, kind)
    with pytest.raises(UserError) as e:
        prepare(src, tmp_path / "out", **FAST)
    assert str(bad) in str(e.value) and FIGSHARE_CASES[kind] in str(e.value)
    _nothing_written(tmp_path, tmp_path / "out")
    m = prepare(src, tmp_path / "out", skip_bad=True, **FAST)
    assert [s["file"] for s in m["skipped"]] == [str(bad)]
    assert FIGSHARE_CASES[kind] in m["skipped"][0]["reason"]
    assert sum(m["counts"].values()) == 6
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"] == m["skipped"]


def _folder_source(tmp_path):
    src = tmp_path / "src"
    for cls in ("glioma", "pituitary_tumor"):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((80, 80), 40 * i, np.uint8)).save(src / cls / f"{i}.png")
    return src


@pytest.mark.parametrize("kind,message", [
    ("unreadable", "cannot read the image"),
    ("tiny", "tiny image"),
    ("empty_class", "empty class"),
    ("unknown_folder", "not a known class"),
])
def test_bad_folder_input(tmp_path, kind, message):
    src = _folder_source(tmp_path)
    if kind == "unreadable":
        bad = src / "glioma" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    elif kind == "tiny":
        bad = src / "glioma" / "small.png"
        Image.fromarray(np.zeros((20, 30), np.uint8)).save(bad)
    elif kind == "empty_class":
        bad = src / "meningioma_tumor"
        bad.mkdir()
    else:
        bad = src / "cats" / "c.png"
        bad.parent.mkdir()
        Image.fromarray(np.zeros((80, 80), np.uint8)).save(bad)
    with pytest.raises(UserError) as e:
        prepare(src, tmp_path / "out", **FAST)
    assert str(bad) in str(e.value) and message in str(e.value)
    _nothing_written(tmp_path, tmp_path / "out")
    m = prepare(src, tmp_path / "out", skip_bad=True, **FAST)
    assert [s["file"] for s in m["skipped"]] == [str(bad)] and message in m["skipped"][0]["reason"]
    assert m["counts"] == {"glioma": 3, "pituitary": 3}


def test_no_data(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")
    for fmt in ("auto", "figshare", "folders"):
        with pytest.raises(UserError, match=f"{tmp_path / 'empty'}.*(no data|no usable|no images)"):
            prepare(tmp_path / "empty", tmp_path / "out", format=fmt, **FAST)
        _nothing_written(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="does not exist"):
        prepare(tmp_path / "missing", tmp_path / "out", **FAST)


def test_all_files_bad_is_no_data_even_with_skip_bad(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "1.mat").write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="no usable slices. All 1 files were skipped"):
        prepare(tmp_path / "src", tmp_path / "out", skip_bad=True, **FAST)
    _nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("kw,flag", [
    (dict(resolution=48), "--resolution"), (dict(crop_fraction=0.5), "--crop_fraction"),
    (dict(bit_depth=12), "--bit_depth"), (dict(split="0.8,0.3,0.1"), "--split"),
    (dict(split="a,b"), "--split"), (dict(percentiles="99,1"), "--percentiles"),
    (dict(format="dicom"), "--format"), (dict(fold=0), "--fold"), (dict(shard_size=0), "--shard_size")])
def test_bad_settings(tmp_path, kw, flag):
    src = make_figshare(tmp_path / "src", _patients(per_class=1, slices=1))
    args = dict(FAST) | kw
    with pytest.raises(UserError, match=flag):
        prepare(src, tmp_path / "out", **args)


# ---------------------------------------------------------------------------------------------
# The launcher.

def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "launchers.prepare_data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_launcher_bad_input_exits_nonzero(tmp_path):
    src, bad = _bad_figshare(tmp_path, "corrupt")
    r = _launch("--source", str(src), "--out", str(tmp_path / "out"), "--resolution", "16")
    assert r.returncode == 1
    assert "error: " in r.stderr and str(bad) in r.stderr and "Traceback" not in r.stderr
    _nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_launcher_end_to_end(tmp_path):
    src = make_figshare(tmp_path / "src", _patients(per_class=3, slices=1))
    r = _launch("--source", str(src), "--out", str(tmp_path / "out"), "--resolution", "32",
                "--split", "0.6,0.2,0.2", "--seed", "5", "--bit_depth", "16")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["resolution"] == 32 and m["bit_depth"] == 16 and m["settings"]["seed"] == 5
    assert "wrote" in r.stdout and "reading .mat: 9/9" in r.stderr
