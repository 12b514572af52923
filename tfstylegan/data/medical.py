"""Hospital data: DICOM series and NIfTI volumes listed in a labels CSV.

The CSV (comma, semicolon or tab separated; UTF-8, an Excel BOM is fine) has one row per
image source, with a header naming its columns (case and spaces do not matter):

  file        a DICOM file (one slice, or a multi-frame file), a folder holding one DICOM
              series, a NIfTI volume (`.nii`, `.nii.gz`), or a 2-D image file (PNG, TIFF...);
              relative paths are relative to the CSV's folder.
  class       the tumor class: meningioma, glioma, pituitary or notumor (or the Kaggle
              aliases such as glioma_tumor, no_tumor).
  patient_id  the patient; all slices of a patient go to one split (also `patient`).
  slices      optional: `first-last` (inclusive) or one index `k`, 0-based along the slice
              axis in the order below; empty = every slice.
  mask        optional: the tumor mask on the same grid as `file` (same format family or
              any format with the same number and size of slices); nonzero = tumor.

Every source becomes a stack of slices float32 [S, H, W] on the scanner's scale:
- DICOM: `RescaleSlope`/`RescaleIntercept` applied (per frame for enhanced multi-frame
  files, from the per-frame or shared functional groups), MONOCHROME1 inverted so that
  bright is high, colour converted to luma. The slices of a series (files and frames) are
  ordered by their position along the slice normal (`ImagePositionPatient` projected on
  the cross product of the `ImageOrientationPatient` rows), directed as the NIfTI order
  below (inferior to superior, posterior to anterior, left to right, by the patient axis
  closest to the normal), or by `InstanceNumber` (then frame number) when positions are
  missing. Slices keep their stored rows and columns. A folder must hold one series, in one
  orientation, with one slice size.
- NIfTI: reoriented to the closest canonical (RAS+) orientation with nibabel's
  `as_closest_canonical`, then sliced along `slice_axis`: axial (the last axis, index 0 =
  inferior), coronal (index 0 = posterior) or sagittal (index 0 = patient's left).
  Slices are shown as radiologists view them (and as DICOM stores them): axial with
  anterior at the top and the patient's right on the left of the image, coronal and
  sagittal with superior at the top. A 4-D file must hold a single volume.

Anything wrong (missing file, not DICOM, unreadable NIfTI, unknown or empty class, a mask of
another shape, missing columns) is a `UserError` naming the CSV line and the file, with the
fix. `tfstylegan.data.prepare` turns these stacks into the prepared dataset.

(Over 400 lines on purpose: the DICOM and NIfTI readers share the CSV rows, the slice selection
and the error messages.)
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zlib
from pathlib import Path

import numpy as np

from tfstylegan.data.classes import FOLDER_ALIASES
from tfstylegan.data.folders import IMAGE_EXTENSIONS, canonical_class, read_image
from tfstylegan.utils.errors import UserError

REQUIRED_COLUMNS = ("file", "class", "patient_id")
OPTIONAL_COLUMNS = ("slices", "mask")
_COLUMN_ALIASES = {"patient": "patient_id", "patientid": "patient_id", "pid": "patient_id",
                   "label": "class", "class_name": "class", "slice_range": "slices", "path": "file"}
SLICE_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclasses.dataclass(frozen=True)
class LabelRow:
    """One parsed CSV row.

    Attributes:
      where: 'labels.csv line 4', for messages.
      file: the image source (absolute).
      class_name: canonical class name.
      patient_id: the patient.
      slices: (first, last) inclusive 0-based, or None for every slice.
      mask: the mask source (absolute), or None.
    """

    where: str
    file: Path
    class_name: str
    patient_id: str
    slices: tuple[int, int] | None
    mask: Path | None


@dataclasses.dataclass
class Stack:
    """Slices of one source: `slices` float32 [S, H, W]; `kind` 'dicom' | 'nifti' | 'image';
    `affine` the canonical voxel-to-world matrix of a NIfTI (else None)."""

    slices: np.ndarray
    kind: str
    affine: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# The CSV.

def _column_key(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _COLUMN_ALIASES.get(key, key)


def is_labels_csv(source: str | os.PathLike) -> bool:
    """True if `source` names a labels CSV (by its extension)."""
    return str(source).strip().lower().endswith(".csv")


def read_labels(csv_path: str | os.PathLike) -> list[tuple[int, dict[str, str]]]:
    """The rows of a labels CSV as (line number, {column: value}), blank lines dropped.

    Raises:
      UserError: the file is missing or unreadable, has no header, lacks a required column, or
        has no rows.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise UserError(f"--source {path} does not exist or is not a file. Point --source at the "
                        "labels CSV (columns file, class, patient_id; optional slices, mask).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the labels CSV ({type(e).__name__}: {e}). Save it as "
                        "UTF-8 text.") from None
    lines = text.splitlines()
    header = next((ln for ln in lines if ln.strip()), "")
    try:
        delimiter = csv.Sniffer().sniff(header, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(lines, delimiter=delimiter)
    columns: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if columns is None:
            columns = [_column_key(v) for v in values]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise UserError(
                    f"{path}: missing column(s) {', '.join(missing)} in the header line {line} "
                    f"(found: {', '.join(v.strip() for v in values)}). The first line must name the "
                    f"columns {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}.")
            continue
        if len(values) > len(columns):
            raise UserError(f"{path} line {line}: {len(values)} values but the header has {len(columns)} "
                            f"columns. Quote values that contain '{delimiter}'.")
        values = values + [""] * (len(columns) - len(values))
        rows.append((line, {c: v.strip() for c, v in zip(columns, values)}))
    if columns is None:
        raise UserError(f"{path} is empty. Write a header line ({', '.join(REQUIRED_COLUMNS)}, "
                        f"{', '.join(OPTIONAL_COLUMNS)}) and one row per DICOM series or NIfTI volume.")
    if not rows:
        raise UserError(f"{path} has a header but no rows. Add one row per DICOM series or NIfTI volume.")
    return rows


def parse_slices(text: str, where: str) -> tuple[int, int] | None:
    """'' -> None; '7' -> (7, 7); '10-20' -> (10, 20)."""
    text = text.strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split("-")]
    if len(parts) in (1, 2) and all(p.isdigit() for p in parts):
        first, last = int(parts[0]), int(parts[-1])
        if first <= last:
            return first, last
    raise UserError(f"{where}: slices {text!r} is not a slice range. Write first-last (0-based, "
                    "inclusive), e.g. 10-20, or one index, or leave it empty for every slice.")


def _resolve(base: Path, text: str) -> Path:
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else base / p


def parse_row(csv_path: str | os.PathLike, line: int, raw: dict[str, str]) -> LabelRow:
    """Checks one row: a non-empty known class, a patient id, an existing file (and mask)."""
    csv_path = Path(csv_path)
    where = f"{csv_path} line {line}"
    file_text = raw.get("file", "")
    if not file_text:
        raise UserError(f"{where}: the file column is empty. Give the DICOM file or series folder or "
                        "NIfTI volume of this row, or delete the row.")
    cls_text = raw.get("class", "")
    if not cls_text:
        raise UserError(f"{where}: empty class for {file_text}. Fill in one of meningioma, glioma, "
                        "pituitary, notumor, or delete the row.")
    class_name = canonical_class(cls_text)
    if class_name is None:
        raise UserError(f"{where}: unknown class {cls_text!r} for {file_text}. Use one of "
                        f"{', '.join(sorted(set(FOLDER_ALIASES.values())))} (aliases: "
                        f"{', '.join(sorted(k for k in FOLDER_ALIASES if k not in FOLDER_ALIASES.values()))}), "
                        "or pass --skip_bad.")
    patient_id = raw.get("patient_id", "")
    if not patient_id:
        raise UserError(f"{where}: empty patient_id for {file_text}. Patient ids keep a patient's slices "
                        "in one split: fill it in (an anonymised id is fine).")
    file = _resolve(csv_path.parent, file_text)
    if not file.exists():
        raise UserError(f"{where}: {file} does not exist (relative paths are relative to the CSV's "
                        "folder). Fix the path, delete the row, or pass --skip_bad.")
    mask_text = raw.get("mask", "")
    mask = _resolve(csv_path.parent, mask_text) if mask_text else None
    if mask is not None and not mask.exists():
        raise UserError(f"{where}: mask {mask} does not exist (relative paths are relative to the CSV's "
                        "folder). Fix the path, leave the mask empty, or pass --skip_bad.")
    return LabelRow(where=where, file=file, class_name=class_name, patient_id=patient_id,
                    slices=parse_slices(raw.get("slices", ""), where), mask=mask)


# ----------------------------------------------------------------------------------------------
# DICOM.

@dataclasses.dataclass
class _Frame:
    file: Path
    frame: int
    instance: int | None
    position: np.ndarray | None      # [3] mm
    orientation: np.ndarray | None   # [6] row and column direction cosines
    pixels: np.ndarray               # float32 [H, W], rescaled


def _functional_value(ds, frame: int, sequence: str, keyword: str):
    """`keyword` of frame `frame` from the per-frame functional groups, else the shared ones,
    else the top-level dataset (classic single-frame files); None if absent."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame),
                          ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq is not None and len(seq) > index and sequence in seq[index]:
            inner = seq[index][sequence].value
            if len(inner) and keyword in inner[0]:
                return inner[0][keyword].value
    return ds.get(keyword)


def _read_dicom_file(path: Path) -> tuple[list[_Frame], str | None]:
    """A DICOM file -> (its frames, its SeriesInstanceUID or None)."""
    # here: pydicom / nibabel (~0.4 s each to import) only for the sources that are DICOM / NIfTI
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise UserError(f"{path}: not a DICOM file (no 'DICM' marker after the 128-byte preamble). "
                        "Fix the path in the CSV, move other files out of the series folder, or pass "
                        "--skip_bad.") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: cannot read the DICOM file ({type(e).__name__}: {e}); it is corrupt "
                        "or truncated. Export it again, or pass --skip_bad.") from None
    if "PixelData" not in ds:
        raise UserError(f"{path}: DICOM file without pixel data (a DICOMDIR, report or presentation "
                        "state?). List only image files or series folders in the CSV.")
    try:
        arr = ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError, TypeError) as e:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise UserError(f"{path}: cannot decode the pixel data (transfer syntax {name}; "
                        f"{type(e).__name__}: {e}). Decompress the series first (e.g. gdcmconv --raw or "
                        "dcmdjpeg), or install a pydicom decoder plugin (pylibjpeg).") from None
    arr = np.asarray(arr)
    frames = int(ds.get("NumberOfFrames") or 1)
    if int(ds.get("SamplesPerPixel") or 1) > 1:  # colour: ITU-R 601 luma, as the folder reader
        arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != frames:
        raise UserError(f"{path}: pixel data of shape {arr.shape} does not match NumberOfFrames={frames}. "
                        "The file is inconsistent; export it again.")
    invert = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    instance = ds.get("InstanceNumber")
    out = []
    for i in range(frames):
        slope = _functional_value(ds, i, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional_value(ds, i, "PixelValueTransformationSequence", "RescaleIntercept")
        x = arr[i].astype(np.float64) * (1.0 if slope is None else float(slope)) + (
            0.0 if intercept is None else float(intercept))
        if invert:
            x = -x
        pos = _functional_value(ds, i, "PlanePositionSequence", "ImagePositionPatient")
        ori = _functional_value(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient")
        out.append(_Frame(
            file=path, frame=i, instance=None if instance in (None, "") else int(instance),
            position=None if pos is None or len(pos) != 3 else np.array(pos, np.float64),
            orientation=None if ori is None or len(ori) != 6 else np.array(ori, np.float64),
            pixels=x.astype(np.float32)))
    return out, ds.get("SeriesInstanceUID")


def _order_frames(frames: list[_Frame], name: str) -> list[_Frame]:
    if all(f.position is not None and f.orientation is not None for f in frames):
        o0 = frames[0].orientation
        for f in frames:
            if not np.allclose(f.orientation, o0, atol=1e-3):
                raise UserError(f"{name}: slices in different orientations ({f.file} differs from "
                                f"{frames[0].file}): the folder mixes a localizer or several series. "
                                "Keep one series per folder.")
        normal = np.cross(o0[:3], o0[3:])
        # DICOM positions are LPS+; point the normal along +R, +A or +S (whichever patient axis it
        # is closest to), so a series is ordered as the canonical NIfTI axis: index 0 = left,
        # posterior or inferior.
        axis = int(np.argmax(np.abs(normal)))
        normal = normal * np.sign(normal[axis]) * (-1.0 if axis < 2 else 1.0)
        return sorted(frames, key=lambda f: (round(float(normal @ f.position), 4), f.instance or 0, f.frame))
    if all(f.instance is not None for f in frames):
        return sorted(frames, key=lambda f: (f.instance, f.frame))
    if len({f.file for f in frames}) == 1:
        return frames  # one file: its frames in stored order
    raise UserError(f"{name}: cannot order the slices: some files have neither ImagePositionPatient "
                    "(with ImageOrientationPatient) nor InstanceNumber. Export the series with these "
                    "tags, or convert it to NIfTI (e.g. dcm2niix).")


def read_dicom(path: str | os.PathLike) -> np.ndarray:
    """A DICOM file or series folder -> float32 [S, H, W], rescaled and ordered (module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.name.upper() != "DICOMDIR")
        if not files:
            raise UserError(f"{path}: the DICOM series folder holds no files. Fix the path in the CSV.")
    else:
        files = [path]
    frames: list[_Frame] = []
    series: set[str] = set()
    for f in files:
        fr, uid = _read_dicom_file(f)
        frames += fr
        if uid:
            series.add(str(uid))
    if len(series) > 1:
        raise UserError(f"{path}: holds {len(series)} series (different SeriesInstanceUID). Put each "
                        "series in its own folder and give each its own CSV row.")
    shapes = {f.pixels.shape for f in frames}
    if len(shapes) > 1:
        a, b = frames[0], next(f for f in frames if f.pixels.shape != frames[0].pixels.shape)
        raise UserError(f"{path}: slices of different sizes ({a.file}: {a.pixels.shape}, {b.file}: "
                        f"{b.pixels.shape}). Keep one series per folder.")
    return np.stack([f.pixels for f in _order_frames(frames, str(path))])


# ----------------------------------------------------------------------------------------------
# NIfTI.

def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def canonical_slices(data: np.ndarray, axis: int) -> np.ndarray:
    """A RAS+ volume [X, Y, Z] -> slices [S, H, W] along `axis` (0 sagittal, 1 coronal, 2 axial),
    in the radiological view: axial [Z, Y, X] with anterior at the top and the patient's right on
    the left; coronal [Y, Z, X] and sagittal [X, Z, Y] with superior at the top."""
    if axis == 2:
        return np.transpose(data[::-1, ::-1, :], (2, 1, 0))
    if axis == 1:
        return np.transpose(data[::-1, :, ::-1], (1, 2, 0))
    if axis == 0:
        return np.transpose(data[:, ::-1, ::-1], (0, 2, 1))
    raise ValueError(f"axis must be 0, 1 or 2. Received: axis={axis}")


def read_nifti(path: str | os.PathLike, slice_axis: str = "axial") -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI file -> (float32 slices [S, H, W] along `slice_axis`, canonical affine [4, 4])."""
    # here: nibabel (~0.4 s to import) only for NIfTI sources
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    path = Path(path)
    if slice_axis not in SLICE_AXES:
        raise UserError(f"--slice_axis must be one of {', '.join(SLICE_AXES)}. Received: "
                        f"slice_axis={slice_axis!r}")
    try:
        img = nib.load(str(path))
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = nib.funcs.squeeze_image(img)
        if len(img.shape) == 4:
            raise UserError(f"{path}: a 4-D NIfTI with {img.shape[3]} volumes (time points or "
                            "contrasts). Save the one volume to use as its own file (e.g. fslroi) and list it.")
        if len(img.shape) not in (2, 3):
            raise UserError(f"{path}: NIfTI of shape {img.shape}; expected a 3-D volume.")
        if len(img.shape) == 2:
            img = nib.Nifti1Image(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
        img = nib.as_closest_canonical(img)
        data = img.get_fdata(dtype=np.float32)
    except UserError:
        raise
    except (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error, MemoryError) as e:
        raise UserError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {e}); it is corrupt, "
                        "truncated or not NIfTI. Convert or export it again, or pass --skip_bad.") from None
    if not np.isfinite(data).all():
        raise UserError(f"{path}: the volume holds NaN or infinite values. Replace them (e.g. with 0) "
                        "and save it again.")
    return np.ascontiguousarray(canonical_slices(data, SLICE_AXES[slice_axis])), img.affine


# ----------------------------------------------------------------------------------------------
# Rows.

def read_stack(path: str | os.PathLike, slice_axis: str = "axial") -> Stack:
    """Any supported source -> its `Stack`: a NIfTI volume, a 2-D image file, or DICOM
    (a folder is a series; any other file is read as DICOM)."""
    path = Path(path)
    if path.is_file() and is_nifti(path):
        slices, affine = read_nifti(path, slice_axis)
        return Stack(slices, "nifti", affine)
    if path.is_file() and path.name.lower().endswith(IMAGE_EXTENSIONS):
        return Stack(read_image(path)[None], "image")
    return Stack(read_dicom(path), "dicom")


def read_row(row: LabelRow, slice_axis: str = "axial"
             ) -> tuple[str, list[tuple[int, np.ndarray, np.ndarray | None]]]:
    """The slices a row selects: (kind, [(index, image float32 [H, W], mask [H, W] or None)]).

    Raises:
      UserError: unreadable source or mask, a slice range beyond the stack, or a mask whose
        number or size of slices differs from the image's.
    """
    try:
        stack = read_stack(row.file, slice_axis)
    except UserError as e:
        raise UserError(f"{row.where}: {e}") from None
    n = stack.slices.shape[0]
    first, last = row.slices if row.slices is not None else (0, n - 1)
    if last >= n:
        raise UserError(f"{row.where}: slices {first}-{last} but {row.file} has {n} slice(s) "
                        f"(0-{n - 1}{' along the ' + slice_axis + ' axis' if stack.kind == 'nifti' else ''}). "
                        "Fix the range or leave it empty for every slice.")
    masks = None
    if row.mask is not None:
        try:
            mstack = read_stack(row.mask, slice_axis)
        except UserError as e:
            raise UserError(f"{row.where}: mask: {e}") from None
        if mstack.slices.shape != stack.slices.shape:
            raise UserError(
                f"{row.where}: mask {row.mask} has {mstack.slices.shape[0]} slice(s) of "
                f"{mstack.slices.shape[1]}x{mstack.slices.shape[2]}, the image {row.file} has {n} of "
                f"{stack.slices.shape[1]}x{stack.slices.shape[2]} (wrong shape). Give the mask drawn on "
                "this image, on the same grid.")
        if stack.affine is not None and mstack.affine is not None and not np.allclose(
                stack.affine, mstack.affine, atol=1e-3):
            raise UserError(f"{row.where}: mask {row.mask} is not on the voxel grid of {row.file} (their "
                            "NIfTI affines differ). Resample the mask onto the image (nearest neighbour).")
        masks = mstack.slices
    return stack.kind, [(k, stack.slices[k], None if masks is None else masks[k])
                        for k in range(first, last + 1)]
