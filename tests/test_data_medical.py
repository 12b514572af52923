"""Hospital data: DICOM series and NIfTI volumes with a labels CSV (tfstylegan.data.medical, prepare).

Every DICOM and NIfTI file here is written by the test with pydicom / nibabel: small slices
(40x48), a few per series, with the tags a scanner writes.
"""

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tfstylegan.data import medical, preprocess
from tfstylegan.data.prepare import prepare
from tfstylegan.data.tfrecords import decode_png, read_examples
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
H, W = 40, 48
FAST = dict(resolution=16, min_size=16, crop_fraction=0.0, progress=False)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _uid(*parts) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_dicom(path, pixels, *, series="S1", instance=None, position=None, orientation=AXIAL,
                slope=None, intercept=None, photometric="MONOCHROME2", per_frame=None):
    """Writes an MR DICOM file: `pixels` int16 [H, W] (one slice) or [F, H, W] (multi-frame, then
    `per_frame` = [(slope, intercept, position)] goes to the per-frame functional groups)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels, np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = _uid(path)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID = "anon"
    ds.StudyInstanceUID = _uid("study")
    ds.SeriesInstanceUID = _uid(series)
    if instance is not None:
        ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
        shared = Dataset()
        ori = Dataset()
        ori.ImageOrientationPatient = list(orientation)
        shared.PlaneOrientationSequence = Sequence([ori])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        groups = []
        for s, b, pos in per_frame:
            g, t, p = Dataset(), Dataset(), Dataset()
            t.RescaleSlope, t.RescaleIntercept = s, b
            p.ImagePositionPatient = [float(v) for v in pos]
            g.PixelValueTransformationSequence = Sequence([t])
            g.PlanePositionSequence = Sequence([p])
            groups.append(g)
        ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _slice(k, rng, h=H, w=W):
    """A slice whose content identifies k: a noisy head-like disc plus k bright pixels on row 0."""
    yy, xx = np.mgrid[:h, :w]
    img = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 2.5) ** 2, 800, 20)
    img = img + rng.integers(0, 100, (h, w))
    img[0, :] = 0
    img[0, :k + 1] = 1500
    return img.astype(np.int16)


def write_series(folder, n=4, seed=0, series="S1", shuffle=True):
    """`n` axial slices in `folder`, slice k at z = 5k mm; file names and InstanceNumbers run in
    another order than the positions, so only the positions give the right order."""
    rng = np.random.default_rng(seed)
    order = np.random.default_rng(seed + 1).permutation(n) if shuffle else np.arange(n)
    slices = [_slice(k, rng) for k in range(n)]
    for f, k in enumerate(order):
        write_dicom(Path(folder) / f"IM{f:04d}", slices[k], series=series, instance=n - k,
                    position=(-100.0, -120.0, 5.0 * k))
    return np.stack(slices)


def write_nifti(path, n=3, seed=0, mask=False):
    """An axial RAS volume [X=W, Y=H, Z=n] whose axial slice k (radiological view) is `_slice(k)`;
    returns those slices [n, H, W]. With `mask`, also writes `<stem>_mask.nii.gz` (a box)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    views = np.stack([_slice(k, rng) for k in range(n)])              # [Z, Y', X'] radiological
    data = np.transpose(views, (2, 1, 0))[::-1, ::-1, :]              # -> RAS [X, Y, Z]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), np.diag([0.9, 0.9, 5.0, 1.0])), str(path))
    if mask:
        m = np.zeros_like(views, np.uint8)
        m[:, 10:20, 30:40] = 1
        mdata = np.ascontiguousarray(np.transpose(m, (2, 1, 0))[::-1, ::-1, :])
        nib.save(nib.Nifti1Image(mdata, np.diag([0.9, 0.9, 5.0, 1.0])),
                 str(path).replace(".nii.gz", "_mask.nii.gz"))
    return views


def write_csv(path, rows, header="file,class,patient_id,slices,mask"):
    Path(path).write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return Path(path)


def _records(out):
    recs = defaultdict(list)
    for split in ("train", "val", "test"):
        for f in sorted((Path(out) / split).glob("*.tfrecord")):
            recs[split] += read_examples(f)
    return recs


# ---------------------------------------------------------------------------------------------
# DICOM.

def test_dicom_rescale_and_monochrome1(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4000, (H, W)).astype(np.int16)
    write_dicom(tmp_path / "a.dcm", raw, slope=2.5, intercept=-1024)
    out = medical.read_dicom(tmp_path / "a.dcm")
    assert out.shape == (1, H, W) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], raw.astype(np.float64) * 2.5 - 1024)
    write_dicom(tmp_path / "b.dcm", raw)  # no rescale tags: the stored values
    np.testing.assert_array_equal(medical.read_dicom(tmp_path / "b.dcm")[0], raw)
    write_dicom(tmp_path / "c.dcm", raw, slope=1, intercept=0, photometric="MONOCHROME1")
    np.testing.assert_array_equal(medical.read_dicom(tmp_path / "c.dcm")[0], -raw.astype(np.float32))


def test_dicom_series_ordered_by_position_then_instance(tmp_path):
    truth = write_series(tmp_path / "s", n=5)
    np.testing.assert_array_equal(medical.read_dicom(tmp_path / "s"), truth)
    # without positions, InstanceNumber orders the slices (here n - k: the reverse)
    rng = np.random.default_rng(3)
    slices = [_slice(k, rng) for k in range(4)]
    for f, k in enumerate([2, 0, 3, 1]):
        write_dicom(tmp_path / "i" / f"{f}.dcm", slices[k], instance=10 - k)
    np.testing.assert_array_equal(medical.read_dicom(tmp_path / "i"), np.stack(slices[::-1]))
    # sagittal and coronal series are ordered as canonical NIfTI: left to right, posterior to
    # anterior (DICOM x grows to the patient's left, y to posterior)
    for f, k in enumerate([1, 2, 0]):
        write_dicom(tmp_path / "sag" / f"{f}.dcm", slices[k], instance=f + 1, position=(3.0 * k, 0, 0),
                    orientation=(0, 1, 0, 0, 0, -1))
        write_dicom(tmp_path / "cor" / f"{f}.dcm", slices[k], instance=f + 1, position=(0, 3.0 * k, 0),
                    orientation=(1, 0, 0, 0, 0, -1))
    for name in ("sag", "cor"):
        np.testing.assert_array_equal(medical.read_dicom(tmp_path / name), np.stack(slices[2::-1]))


def test_dicom_multiframe_per_frame_rescale_and_order(tmp_path):
    rng = np.random.default_rng(1)
    frames = np.stack([_slice(k, rng) for k in range(3)])
    per_frame = [(2.0, 10.0, (0, 0, 10.0)), (1.0, 0.0, (0, 0, 0.0)), (0.5, -5.0, (0, 0, 5.0))]
    write_dicom(tmp_path / "mf.dcm", frames, per_frame=per_frame)
    out = medical.read_dicom(tmp_path / "mf.dcm")
    expect = [frames[i].astype(np.float64) * s + b for i, (s, b, _) in enumerate(per_frame)]
    np.testing.assert_array_equal(out, np.stack([expect[1], expect[2], expect[0]]))  # by z: 0, 5, 10


# ---------------------------------------------------------------------------------------------
# NIfTI.

def test_nifti_canonical_reorientation_and_axes(tmp_path):
    views = write_nifti(tmp_path / "ras.nii.gz", n=3)
    np.testing.assert_array_equal(medical.read_nifti(tmp_path / "ras.nii.gz")[0], views)
    # the same anatomy stored left-to-right flipped (LAS) and with axes permuted (z, x, y):
    ras = np.asarray(nib.load(str(tmp_path / "ras.nii.gz")).dataobj)
    aff = np.diag([0.9, 0.9, 5.0, 1.0])
    flip = aff @ np.array([[-1, 0, 0, W - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ras[::-1]), flip), str(tmp_path / "las.nii.gz"))
    perm = aff[:, [2, 0, 1, 3]]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.transpose(ras, (2, 0, 1))), perm),
             str(tmp_path / "zxy.nii"))
    for name in ("las.nii.gz", "zxy.nii"):
        np.testing.assert_array_equal(medical.read_nifti(tmp_path / name)[0], views)
    # the other axes, with superior at the top: a voxel at RAS (x, y, z) lands where the view says
    vol = np.zeros((5, 6, 7), np.float32)
    vol[1, 2, 3] = 1
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "dot.nii"))
    expect = {"axial": ((7, 6, 5), (3, 6 - 1 - 2, 5 - 1 - 1)),
              "coronal": ((6, 7, 5), (2, 7 - 1 - 3, 5 - 1 - 1)),
              "sagittal": ((5, 7, 6), (1, 7 - 1 - 3, 6 - 1 - 2))}
    for axis, (shape, where) in expect.items():
        s = medical.read_nifti(tmp_path / "dot.nii", axis)[0]
        assert s.shape == shape and s[where] == 1 and s.sum() == 1, axis
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7, 2), np.float32), np.eye(4)), str(tmp_path / "4d.nii"))
    with pytest.raises(UserError, match="4-D NIfTI with 2 volumes"):
        medical.read_nifti(tmp_path / "4d.nii")


# ---------------------------------------------------------------------------------------------
# The CSV through prepare(): patient-wise splits, slice ranges, masks, squaring.

def _hospital(tmp_path, patients=12):
    """`patients` patients over the three classes, alternating DICOM series and NIfTI volumes;
    patient 0 has two rows (a series and a volume); NIfTI rows use a slice range."""
    root = tmp_path / "hospital"
    rows = []
    classes = ["meningioma", "glioma_tumor", "Pituitary"]
    for p in range(patients):
        pid, cls = f"PAT{p:02d}", classes[p % 3]
        if p % 2 == 0:
            write_series(root / pid / "t1c", n=3, seed=p)
            rows.append((f"{pid}/t1c", cls, pid, "", ""))
        if p % 2 == 1 or p == 0:
            write_nifti(root / pid / "t1c.nii.gz", n=4, seed=p)
            rows.append((f"{pid}/t1c.nii.gz", cls, pid, "1-2", ""))
    return write_csv(root / "labels.csv", rows), rows


def test_csv_patient_wise_splits_and_manifest(tmp_path):
    csv_path, rows = _hospital(tmp_path)
    m = prepare(csv_path, tmp_path / "out", seed=1, **FAST)
    assert m["source"]["format"] == "csv" and m["patient_ids_known"] is True
    assert m["source"]["sources"] == {"dicom": 6, "nifti": 7} and m["source"]["rows"] == 13
    # patients p % 3 == 0 are meningioma (0, 3, 6, 9): series of 3 for even p, slices 1-2 of a volume
    # for odd p, both for patient 0
    assert m["counts"] == {"meningioma": 3 + 2 + 2 + 3 + 2, "glioma": 2 + 3 + 2 + 3, "pituitary": 3 + 2 + 3 + 2}
    where = defaultdict(set)
    slice_ids = []
    for split, recs in _records(tmp_path / "out").items():
        for r in recs:
            where[r["patient_id"]].add(split)
            slice_ids.append(r["slice_id"])
    assert len(where) == 12 and all(len(s) == 1 for s in where.values())  # no patient in two splits
    assert all(m["num_patients"][s] >= 1 for s in ("train", "val", "test"))
    assert {s for s in slice_ids if s.startswith("PAT01/")} == {"PAT01/t1c.nii.gz:0001",
                                                                "PAT01/t1c.nii.gz:0002"}
    assert sorted(s for s in slice_ids if s.startswith("PAT00/")) == [
        "PAT00/t1c.nii.gz:0001", "PAT00/t1c.nii.gz:0002", "PAT00/t1c:0000", "PAT00/t1c:0001", "PAT00/t1c:0002"]
    assert m["has_mask"] is False and m["settings"]["square"] == "crop"
    # the images are the preprocessed slices, in series order
    rec = next(r for recs in _records(tmp_path / "out").values() for r in recs
               if r["slice_id"] == "PAT02/t1c:0002")
    truth = write_series(tmp_path / "again", n=3, seed=2)[2]
    np.testing.assert_array_equal(decode_png(rec["image"]).squeeze(),
                                  preprocess.preprocess_image(truth, 16, crop_fraction=0.0))
    # a semicolon CSV (Excel in many locales) with other header spellings reads the same
    text = csv_path.read_text().replace(",", ";").replace("file;class;patient_id", "File;Class;Patient ID")
    (csv_path.parent / "semi.csv").write_text("\ufeff" + text)
    m2 = prepare(csv_path.parent / "semi.csv", tmp_path / "out2", seed=1, **FAST)
    assert m2["files"] == m["files"]


def test_csv_masks(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    rows = []
    for p in range(3):
        write_nifti(root / f"p{p}.nii.gz", n=2, seed=p, mask=True)
        rows.append((f"p{p}.nii.gz", "glioma", f"p{p}", "", f"p{p}_mask.nii.gz"))
    # a DICOM series with its mask as a DICOM series on the same grid
    write_series(root / "p3", n=2, seed=3, shuffle=False)
    mask = np.zeros((H, W), np.int16)
    mask[10:20, 30:40] = 1
    for k in range(2):
        write_dicom(root / "p3_mask" / f"{k}.dcm", mask, series="M", instance=k + 1,
                    position=(-100.0, -120.0, 5.0 * k))
    rows.append(("p3", "glioma", "p3", "", "p3_mask"))
    m = prepare(write_csv(root / "labels.csv", rows), tmp_path / "out", resolution=16, min_size=16,
                crop_fraction=0.0, square="pad", split="1,0,0", progress=False)
    assert m["has_mask"] is True and m["source"]["rows_with_mask"] == 4 and m["counts"] == {"glioma": 8}
    expect = preprocess.preprocess_mask(mask, 16, crop_fraction=0.0, square="pad")
    assert 0 < (expect > 0).sum() < 16 * 16 // 4
    for r in _records(tmp_path / "out")["train"]:
        np.testing.assert_array_equal(decode_png(r["mask"]).squeeze(), expect)
    # partial masks: the dataset does not claim masks (with_mask training would see empty ones)
    rows.append(("p9.nii.gz", "glioma", "p9", "", ""))
    write_nifti(root / "p9.nii.gz", n=1, seed=9)
    m = prepare(write_csv(root / "labels2.csv", rows), tmp_path / "out2", split="1,0,0", **FAST)
    assert m["has_mask"] is False and m["source"]["rows_with_mask"] == 4


def test_square_pad_vs_crop_on_non_square_slices(tmp_path):
    img = np.full((32, 64), 500.0)
    img[:, :8] = 900.0    # a bright band at the left edge: cropped away by 'crop', kept by 'pad'
    img[:, -8:] = 100.0   # a dark band at the right edge
    img[0, 16], img[0, 17] = 100.0, 900.0  # the same intensity window inside the central square
    window = preprocess.quantize((img - 100.0) / 800.0, 8)
    # resolutions equal to the squared sizes, so the resize is the identity and values are exact
    crop = preprocess.preprocess_image(img, 32, crop_fraction=0.0, percentiles=(0, 100), square="crop")
    np.testing.assert_array_equal(crop, window[:, 16:48])
    pad = preprocess.preprocess_image(img, 64, crop_fraction=0.0, percentiles=(0, 100), square="pad")
    assert (pad[:16] == 0).all() and (pad[48:] == 0).all()  # 32x64 -> 16 background rows above and below
    np.testing.assert_array_equal(pad[16:48], window)
    assert (pad[16:48, :8] == 255).all() and not (crop == 255)[:, :8].all()
    m = np.zeros((32, 64))
    m[:, :8] = 1
    assert (preprocess.preprocess_mask(m, 32, 0.0, square="crop") == 0).all()
    mp = preprocess.preprocess_mask(m, 64, 0.0, square="pad")
    assert (mp[16:48, :8] == 255).all() and mp.sum() == 32 * 8 * 255
    assert preprocess.crop_box(40, 48, 0.25, "pad") == (10, 30, 12, 36)
    assert preprocess.crop_box(40, 48, 0.25, "crop") == (10, 30, 14, 34)
    # through prepare: a tall NIfTI slice, both modes
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.transpose(img[None], (2, 1, 0))[::-1, ::-1]),
                             np.eye(4)), str(tmp_path / "v.nii"))
    csv_path = write_csv(tmp_path / "l.csv", [("v.nii", "glioma", "a", "", "")])
    for square in ("crop", "pad"):
        m = prepare(csv_path, tmp_path / square, resolution=16, min_size=16, crop_fraction=0.0,
                    percentiles="0,100", square=square, split="1,0,0", progress=False)
        rec = _records(tmp_path / square)["train"][0]
        np.testing.assert_array_equal(decode_png(rec["image"]).squeeze(),
                                      preprocess.preprocess_image(img, 16, 0.0, (0, 100), square=square))
        assert m["settings"]["square"] == square
    with pytest.raises(UserError, match="--square"):
        prepare(csv_path, tmp_path / "x", square="stretch", **FAST)


# ---------------------------------------------------------------------------------------------
# Bad input: a message naming the CSV line and the file, nothing written; --skip_bad lists it.

def _good_rows(root):
    write_nifti(root / "a.nii.gz", n=2, seed=0)
    write_series(root / "b", n=2, seed=1)
    return [("a.nii.gz", "glioma", "A", "", ""), ("b", "meningioma", "B", "", "")]


def _bad_case(root, kind):
    """Adds one bad row (line 4 of the CSV); returns (row, the path its message must name)."""
    if kind == "missing_file":
        return ("nowhere.nii.gz", "glioma", "C", "", ""), root / "nowhere.nii.gz"
    if kind == "not_dicom":
        (root / "c").mkdir()
        write_dicom(root / "c" / "1.dcm", np.zeros((H, W)), position=(0, 0, 0))
        (root / "c" / "notes.txt").write_text("scanned on Tuesday\n")
        return ("c", "glioma", "C", "", ""), root / "c" / "notes.txt"
    if kind == "corrupt_nifti":
        write_nifti(root / "c.nii.gz", n=2)
        data = (root / "c.nii.gz").read_bytes()
        (root / "c.nii.gz").write_bytes(data[:len(data) - 200])
        return ("c.nii.gz", "glioma", "C", "", ""), root / "c.nii.gz"
    if kind == "unknown_class":
        write_nifti(root / "c.nii.gz", n=1)
        return ("c.nii.gz", "astrocytoma", "C", "", ""), "astrocytoma"
    if kind == "empty_class":
        write_nifti(root / "c.nii.gz", n=1)
        return ("c.nii.gz", "", "C", "", ""), "c.nii.gz"
    if kind == "mask_shape":
        write_nifti(root / "c.nii.gz", n=2)
        write_nifti(root / "m.nii.gz", n=3)
        return ("c.nii.gz", "glioma", "C", "", "m.nii.gz"), root / "m.nii.gz"
    if kind == "slice_range":
        write_nifti(root / "c.nii.gz", n=2)
        return ("c.nii.gz", "glioma", "C", "1-5", ""), root / "c.nii.gz"
    if kind == "two_series":
        write_series(root / "c", n=2, series="S1")
        write_dicom(root / "c" / "other", np.zeros((H, W)), series="S2", instance=1)
        return ("c", "glioma", "C", "", ""), root / "c"
    raise ValueError(kind)


BAD_CASES = {
    "missing_file": "does not exist",
    "not_dicom": "not a DICOM file",
    "corrupt_nifti": "not a readable NIfTI volume",
    "unknown_class": "unknown class 'astrocytoma'",
    "empty_class": "empty class",
    "mask_shape": "wrong shape",
    "slice_range": "has 2 slice(s)",
    "two_series": "holds 2 series",
}


@pytest.mark.parametrize("kind", sorted(BAD_CASES))
def test_bad_csv_rows(tmp_path, kind):
    root = tmp_path / "h"
    root.mkdir()
    rows = _good_rows(root)
    bad_row, named = _bad_case(root, kind)
    csv_path = write_csv(root / "labels.csv", rows + [bad_row])
    with pytest.raises(UserError) as e:
        prepare(csv_path, tmp_path / "out", **FAST)
    msg = str(e.value)
    assert f"{csv_path} line 4" in msg and str(named) in msg and BAD_CASES[kind] in msg, msg
    assert not (tmp_path / "out").exists()
    m = prepare(csv_path, tmp_path / "out", skip_bad=True, **FAST)
    assert [s["file"] for s in m["skipped"]] == [f"{csv_path} line 4"]
    assert BAD_CASES[kind] in m["skipped"][0]["reason"] and m["counts"] == {"meningioma": 2, "glioma": 2}


@pytest.mark.parametrize("text,message", [
    ("file,class\na.nii.gz,glioma\n", "missing column(s) patient_id"),
    ("", "is empty"),
    ("file,class,patient_id\n", "no rows"),
    ("file,class,patient_id,slices\na.nii.gz,glioma,A,2-x\n", "is not a slice range"),
    ("file,class,patient_id\na.nii.gz,glioma,A,extra\n", "line 2: 4 values"),
])
def test_bad_csv_structure(tmp_path, text, message):
    write_nifti(tmp_path / "a.nii.gz", n=1)
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(UserError) as e:
        prepare(tmp_path / "labels.csv", tmp_path / "out", **FAST)
    assert str(tmp_path / "labels.csv") in str(e.value) and message in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()


def test_csv_settings(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", n=20)
    csv_path = write_csv(tmp_path / "l.csv", [("a.nii.gz", "glioma", "A", "", "")])
    with pytest.raises(UserError, match="--fold needs Figshare"):
        prepare(csv_path, tmp_path / "o", fold=1, **FAST)
    with pytest.raises(UserError, match="--slice_axis"):
        prepare(csv_path, tmp_path / "o", slice_axis="oblique", **FAST)
    with pytest.raises(UserError, match="does not exist"):
        prepare(tmp_path / "missing.csv", tmp_path / "o", **FAST)
    m = prepare(csv_path, tmp_path / "o", format="csv", slice_axis="coronal", split="1,0,0", **FAST)
    assert m["counts"] == {"glioma": H} and m["source"]["slice_axis"] == "coronal"  # coronal: Y = H slices


# ---------------------------------------------------------------------------------------------
# The launcher.

def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "launchers.prepare_data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two launcher subprocesses: 10 s on an idle 2-core machine, 22 s under load
def test_launcher_end_to_end_on_dicom_and_nifti(tmp_path):
    csv_path, _ = _hospital(tmp_path, patients=6)
    r = _launch("--source", str(csv_path), "--out", str(tmp_path / "out"), "--resolution", "16",
                "--min_size", "16", "--square", "pad", "--split", "0.5,0.25,0.25")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["source"]["format"] == "csv" and m["settings"]["square"] == "pad"
    assert sum(m["counts"].values()) == 3 * 3 + 4 * 2 and "reading labels.csv: 7/7" in r.stderr
    assert "wrote" in r.stdout
    bad = tmp_path / "hospital" / "PAT01" / "t1c.nii.gz"
    bad.write_bytes(b"not nifti")
    r = _launch("--source", str(csv_path), "--out", str(tmp_path / "out2"), "--min_size", "16")
    assert r.returncode == 1 and "error: " in r.stderr and str(bad) in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out2").exists()
