"""The built-in phantom: deterministic, the real Figshare v7.3 layout, classes that can be told apart."""

import hashlib
from collections import Counter

import h5py
import numpy as np
import pytest

from tfstylegan.data import figshare, phantom
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.data.preprocess import preprocess_image, preprocess_mask
from tfstylegan.utils.errors import UserError


def test_patient_is_deterministic_and_seed_dependent():
    a = phantom.phantom_patient("glioma", 3, seed=1, slices_per_patient=3, size=128)
    b = phantom.phantom_patient("glioma", 3, seed=1, slices_per_patient=3, size=128)
    c = phantom.phantom_patient("glioma", 3, seed=2, slices_per_patient=3, size=128)
    assert len(a) == 3
    for (ia, ma, ba), (ib, mb, bb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(a[0][0], c[0][0])
    assert not np.array_equal(a[0][0], a[1][0])  # slices of one patient differ


@pytest.mark.parametrize("cls", CLASS_NAMES)
def test_slice_contents(cls):
    for img, mask, border in phantom.phantom_patient(cls, 0, seed=0, slices_per_patient=2, size=256):
        assert img.shape == (256, 256) and img.dtype == np.int16
        assert mask.shape == (256, 256) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        assert img.min() >= 0 and img.max() > 200  # raw scanner-like values, not 0-255 pixels
        assert border.ndim == 1 and border.size == 64
        rows, cols = border[0::2] - 1, border[1::2] - 1  # 1-based points on the tumor outline
        rows, cols = (np.clip(np.rint(v).astype(int), 0, 255) for v in (rows, cols))
        assert mask[rows, cols].mean() > 0.8
        # the tumor lies inside the study's central crop (0.25 per side)
        ys, xs = np.nonzero(mask)
        inner = (ys >= 64) & (ys < 192) & (xs >= 64) & (xs < 192)
        assert inner.mean() > 0.3, cls
        # background (corners) is dark, the head is bright
        assert img[:8, :8].mean() < 0.1 * img[96:160, 96:160].mean()


def _features(img, mask):
    """Tumor size, position and enhancement pattern after the study's preprocessing."""
    x = preprocess_image(img, 64).astype(np.float32) / 255
    m = preprocess_mask(mask, 64) > 0
    ys, xs = np.nonzero(m)
    inside = x[m]
    med = np.median(x)
    return [m.mean(), abs(xs.mean() / 64 - 0.5), np.abs(xs / 64 - 0.5).min(), inside.mean() / med,
            inside.std() / med]


def test_classes_are_separable():
    """A nearest-centroid classifier on simple tumor features, tested on held-out patients."""
    feats, labels, patients = [], [], []
    for ci, cls in enumerate(CLASS_NAMES):
        for pi in range(10):
            for img, mask, _ in phantom.phantom_patient(cls, pi, seed=0, slices_per_patient=2, size=128):
                feats.append(_features(img, mask))
                labels.append(ci)
                patients.append(pi)
    f, y, p = np.array(feats), np.array(labels), np.array(patients)
    train, test = p < 6, p >= 6
    mu, sd = f[train].mean(0), f[train].std(0)
    z = (f - mu) / sd
    centroids = np.stack([z[train & (y == k)].mean(0) for k in range(3)])
    pred = np.argmin(((z[test, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (pred == y[test]).mean()
    assert accuracy >= 0.75, (accuracy, Counter(zip(y[test].tolist(), pred.tolist())))
    # and the classes differ the way the anatomy says
    area = {k: f[y == k, 0].mean() for k in range(3)}
    assert area[2] < 0.5 * min(area[0], area[1])          # pituitary: small
    assert f[y == 2, 1].max() < 0.05                        # pituitary: midline
    assert f[y == 1, 4].mean() > 2 * f[y == 0, 4].mean()    # glioma: heterogeneous ring vs homogeneous


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_dataset_layout_and_folds(tmp_path):
    summary = phantom.write_phantom_dataset(tmp_path / "ph", num_patients_per_class=5,
                                            slices_per_patient=2, seed=0, size=128, progress=False)
    out = tmp_path / "ph"
    assert summary["num_slices"] == 30 and summary["counts"] == {c: 10 for c in CLASS_NAMES}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{i}.mat" for i in range(1, 31)] + ["cvind.mat", "phantom.json"])
    assert not list(tmp_path.glob(".*"))  # no temporary folder left
    with open(out / "1.mat", "rb") as f:
        assert f.read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(out / "1.mat", "r") as f:
        cj = f["cjdata"]
        assert f.userblock_size == 512
        assert cj["image"].dtype == np.int16 and cj["image"].shape == (128, 128)
        assert cj["label"].dtype == np.float64 and cj["label"].shape == (1, 1)
        assert cj["PID"].dtype == np.uint16 and cj["PID"].shape[1] == 1
        assert cj["tumorBorder"].dtype == np.float64 and cj["tumorBorder"].shape[0] == 1
        assert cj["tumorMask"].attrs["MATLAB_class"] == b"logical"
        assert cj["image"].attrs["MATLAB_class"] == b"int16"
    # through the real reader
    entries = figshare.list_mat_entries(out)
    slices = [figshare.read_slice(e) for e in entries if e.stem != "cvind"]
    assert Counter(s.class_name for s in slices) == {c: 10 for c in CLASS_NAMES}
    assert len({s.patient_id for s in slices}) == 15
    folds = figshare.read_cvind([e for e in entries if e.stem == "cvind"][0])
    assert sorted(set(folds.tolist())) == [1, 2, 3, 4, 5] and len(folds) == 30
    fold_of = {}
    for s in slices:
        assert fold_of.setdefault(s.patient_id, folds[int(s.slice_id) - 1]) == folds[int(s.slice_id) - 1]
    # every fold holds each class (stratified)
    for k in range(1, 6):
        assert {s.class_name for s in slices if folds[int(s.slice_id) - 1] == k} == set(CLASS_NAMES)


def test_write_dataset_is_byte_identical_on_rerun_and_for_any_worker_count(tmp_path):
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        phantom.write_phantom_dataset(tmp_path / name, num_patients_per_class=2, slices_per_patient=2,
                                      seed=7, size=64, progress=False, workers=workers)
    files = sorted((tmp_path / "a").iterdir())
    assert len(files) == 3 * 2 * 2 + 2  # slices, cvind.mat, phantom.json
    for p in files:
        assert _sha(p) == _sha(tmp_path / "b" / p.name) == _sha(tmp_path / "c" / p.name), p.name


def test_write_dataset_refuses_existing_and_bad_args(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FileExistsError):
        phantom.write_phantom_dataset(tmp_path / "x", 1, 1, size=64, progress=False)
    with pytest.raises(UserError, match="patients_per_class"):
        phantom.write_phantom_dataset(tmp_path / "y", 0, 1, size=64, progress=False)
    with pytest.raises(UserError, match="workers"):
        phantom.write_phantom_dataset(tmp_path / "y", 1, 1, size=64, progress=False, workers=0)
    assert not (tmp_path / "y").exists()
