"""Reader (and writer) of the Figshare brain-tumor `.mat` files (Cheng et al., figshare 1512427).

Each slice is one MATLAB file holding a struct `cjdata` with fields
`image` (int16 [512, 512], raw scanner values), `label` (1 = meningioma, 2 = glioma,
3 = pituitary), `PID` (patient id as MATLAB chars), `tumorMask` (logical) and
`tumorBorder` ([x1, y1, x2, y2, ...]). Almost all files are MATLAB v7.3, i.e. HDF5
with a 512-byte MATLAB userblock, where every array is stored column-major: h5py
sees the transpose of what MATLAB shows, so `image`, `tumorMask` are transposed
back here. A few may be MATLAB v5, read by `scipy.io.loadmat`, which already returns
row-major arrays (no transpose). `cvind.mat` holds the 5 predefined patient-separated
cross-validation folds (`cvind`, one fold number 1-5 per slice, slice i = `i.mat`).

Sources: a folder of `.mat` files (searched recursively), the original zip files
(read member by member without extracting, including the outer figshare zip that
holds the four inner zips), or a single `.mat`/`.zip`. Several paths may be given
separated by commas.

`write_figshare_mat` writes the exact v7.3 layout (used by the phantom generator and
the tests), so built-in data goes through the same reader as real data.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from collections.abc import Callable

import numpy as np

from tfstylegan.data.classes import FIGSHARE_LABELS
from tfstylegan.utils.errors import UserError

REQUIRED_FIELDS = ("image", "label", "PID", "tumorMask")
CVIND_NAME = "cvind.mat"


@dataclasses.dataclass
class FigshareSlice:
    """One decoded slice.

    Attributes:
      image: int16 (or other numeric) [H, W], row-major, raw intensities.
      mask: uint8 [H, W] in {0, 1}, the tumor mask.
      label: Figshare label (1, 2 or 3).
      class_name: canonical class name of `label`.
      patient_id: decoded PID string.
      slice_id: file stem (e.g. '123' for 123.mat).
      source: where it came from, for messages (`path` or `archive.zip:member`).
      version: 'v7.3' or 'v5'.
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    class_name: str
    patient_id: str
    slice_id: str
    source: str
    version: str


@dataclasses.dataclass(frozen=True)
class MatEntry:
    """A `.mat` file inside a folder or a zip archive, not yet read.

    `name` is the display path used in messages and the manifest; `stem` the file stem;
    `open()` returns a path or a seekable binary file object that h5py and scipy accept.
    """

    name: str
    stem: str
    open: Callable[[], str | io.BytesIO]


def slice_sort_key(stem: str):
    """Numeric stems in numeric order ('2' < '10'), then the others by name."""
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def _zip_entries(zf: zipfile.ZipFile, label: str, out: list[MatEntry]) -> None:
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        base = os.path.basename(info.filename)
        if base.startswith(".") or "__MACOSX" in info.filename:
            continue
        lower = base.lower()
        if lower.endswith(".zip"):
            # An inner zip (the figshare download holds four): copied to a spooled temporary file
            # (memory up to 64 MiB, then disk) so its members can be read by random access.
            buf = tempfile.SpooledTemporaryFile(max_size=64 << 20)
            try:
                with zf.open(info) as member:
                    shutil.copyfileobj(member, buf, 1 << 20)
                buf.seek(0)
                inner = zipfile.ZipFile(buf)
            except (zipfile.BadZipFile, OSError) as e:
                raise UserError(f"{label}:{info.filename} is not a readable zip file ({e}).") from None
            _zip_entries(inner, f"{label}:{info.filename}", out)
        elif lower.endswith(".mat"):
            out.append(MatEntry(
                name=f"{label}:{info.filename}",
                stem=os.path.splitext(base)[0],
                open=(lambda zf=zf, info=info: io.BytesIO(zf.read(info))),
            ))


def list_mat_entries(source: str | os.PathLike) -> list[MatEntry]:
    """All `.mat` files (slices and `cvind.mat`) under `source`, sorted by slice number.

    `source` is a folder (searched recursively, `.zip` files inside are read too), a
    `.zip`, a `.mat`, or several of those separated by commas.
    """
    entries: list[MatEntry] = []
    for part in str(source).split(","):
        part = part.strip()
        if not part:
            continue
        path = Path(part)
        if not path.exists():
            raise UserError(f"--source {part} does not exist. Point it at the folder or zip files "
                            "of the Figshare dataset (or a folder of class subfolders).")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            lower = f.name.lower()
            if f.name.startswith("."):
                continue
            if lower.endswith(".mat"):
                entries.append(MatEntry(name=str(f), stem=f.stem, open=(lambda f=f: str(f))))
            elif lower.endswith(".zip"):
                try:
                    zf = zipfile.ZipFile(f)
                except (zipfile.BadZipFile, OSError) as e:
                    raise UserError(f"{f} is not a readable zip file ({e}). Re-download it.") from None
                _zip_entries(zf, str(f), entries)
    entries.sort(key=lambda e: slice_sort_key(e.stem))
    return entries


def _decode_pid(value) -> str:
    """PID as stored: uint16 char codes (v7.3), a str/bytes or a char array (v5)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00 ").strip()
    if isinstance(value, str):
        return value.strip("\x00 ").strip()
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return "".join(str(x) for x in arr.ravel()).strip("\x00 ").strip()
    codes = arr.astype(np.int64).ravel()
    return "".join(chr(int(c)) for c in codes if c > 0).strip()


def _label_to_class(label_value, name: str) -> tuple[int, str]:
    arr = np.asarray(label_value, dtype=np.float64).ravel()
    if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] != round(arr[0]):
        raise UserError(f"{name}: label {arr.tolist()} is not a single integer 1, 2 or 3 "
                        f"({', '.join(f'{k} = {v}' for k, v in FIGSHARE_LABELS.items())}). "
                        "Fix or remove the file, or pass --skip_bad.")
    label = int(arr[0])
    if label not in FIGSHARE_LABELS:
        raise UserError(f"{name}: unknown label {label}; Figshare labels are "
                        f"{', '.join(f'{k} = {v}' for k, v in FIGSHARE_LABELS.items())}. "
                        "Fix or remove the file, or pass --skip_bad.")
    return label, FIGSHARE_LABELS[label]


def _check_image(image: np.ndarray, mask: np.ndarray, name: str) -> None:
    if image.ndim != 2 or image.size == 0:
        raise UserError(f"{name}: cjdata.image has shape {image.shape}; expected a 2-D slice.")
    if image.dtype.kind not in "iuf" or (image.dtype.kind == "f" and not np.all(np.isfinite(image))):
        raise UserError(f"{name}: cjdata.image has dtype {image.dtype} or non-finite values; "
                        "expected integer intensities.")
    if mask.shape != image.shape:
        raise UserError(f"{name}: cjdata.tumorMask has shape {mask.shape} but the image is "
                        f"{image.shape}.")


def _read_v73(f, name: str) -> tuple[np.ndarray, np.ndarray, object, object]:
    import h5py  # here: h5py takes ~1 s to import; only .mat sources need it

    if "cjdata" not in f:
        raise UserError(f"{name}: no 'cjdata' struct in this .mat file (keys: {sorted(f.keys())}). "
                        "Is it a Figshare brain-tumor slice?")
    cj = f["cjdata"]
    if not isinstance(cj, h5py.Group):
        raise UserError(f"{name}: 'cjdata' is not a MATLAB struct.")
    for field in REQUIRED_FIELDS:
        if field not in cj:
            raise UserError(f"{name}: cjdata has no '{field}' field (has {sorted(cj.keys())}). "
                            "Fix or remove the file, or pass --skip_bad.")
    image = np.asarray(cj["image"][()]).T  # column-major on disk -> row-major
    mask = np.asarray(cj["tumorMask"][()]).T
    return image, mask, cj["label"][()], cj["PID"][()]


def _read_v5(fileobj, name: str) -> tuple[np.ndarray, np.ndarray, object, object]:
    import scipy.io  # here: scipy.io takes ~0.6 s to import; only MATLAB v5 files need it

    mat = scipy.io.loadmat(fileobj, simplify_cells=True)
    if "cjdata" not in mat or not isinstance(mat["cjdata"], dict):
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise UserError(f"{name}: no 'cjdata' struct in this .mat file (keys: {keys}). "
                        "Is it a Figshare brain-tumor slice?")
    cj = mat["cjdata"]
    for field in REQUIRED_FIELDS:
        if field not in cj:
            raise UserError(f"{name}: cjdata has no '{field}' field (has {sorted(cj)}). "
                            "Fix or remove the file, or pass --skip_bad.")
    # scipy.io already returns MATLAB's row/column order: no transpose.
    return np.asarray(cj["image"]), np.asarray(cj["tumorMask"]), cj["label"], cj["PID"]


def _open_mat(entry: MatEntry, read_h5: Callable, read_mat5: Callable):
    """Tries MATLAB v7.3 (HDF5) first, then v5; returns (result, version)."""
    import h5py  # here: h5py takes ~1 s to import; only .mat sources need it

    try:
        src = entry.open()
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{entry.name}: cannot read the file ({e}).") from None
    h5_error = None
    try:
        with h5py.File(src, "r") as f:
            return read_h5(f), "v7.3"
    except UserError:
        raise
    except Exception as e:  # not HDF5 (or corrupt HDF5): try MATLAB v5 below
        h5_error = e
    if hasattr(src, "seek"):
        src.seek(0)
    try:
        return read_mat5(src), "v5"
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"{entry.name} is not a readable MATLAB file: not HDF5/MATLAB v7.3 ({h5_error}) and not "
            f"MATLAB v5 ({type(e).__name__}: {e}). The file is corrupt or not a .mat; re-download it, "
            "or pass --skip_bad to leave it out.") from None


def read_slice(entry: MatEntry) -> FigshareSlice:
    """Reads and checks one Figshare slice; `UserError` naming the file when anything is wrong."""
    (image, mask, label_value, pid_value), version = _open_mat(
        entry, lambda f: _read_v73(f, entry.name), lambda s: _read_v5(s, entry.name))
    label, class_name = _label_to_class(label_value, entry.name)
    pid = _decode_pid(pid_value)
    if not pid:
        raise UserError(f"{entry.name}: empty PID; every slice needs its patient id.")
    mask = (np.asarray(mask) != 0).astype(np.uint8)
    _check_image(image, mask, entry.name)
    return FigshareSlice(image=image, mask=mask, label=label, class_name=class_name,
                         patient_id=pid, slice_id=entry.stem, source=entry.name, version=version)


def read_cvind(entry: MatEntry) -> np.ndarray:
    """The cross-validation fold (1-based) of every slice: int64 [num_slices]; slice i is `i.mat`."""

    def h5(f):
        if "cvind" not in f:
            raise UserError(f"{entry.name}: no 'cvind' variable (keys: {sorted(f.keys())}).")
        return np.asarray(f["cvind"][()]).ravel()

    def mat5(s):
        import scipy.io  # here: scipy.io takes ~0.6 s to import; only MATLAB v5 files need it

        m = scipy.io.loadmat(s)
        if "cvind" not in m:
            raise UserError(f"{entry.name}: no 'cvind' variable.")
        return np.asarray(m["cvind"]).ravel()

    folds, _ = _open_mat(entry, h5, mat5)
    folds = np.asarray(folds, dtype=np.float64)
    if folds.size == 0 or not np.all(np.isfinite(folds)) or np.any(folds < 1):
        raise UserError(f"{entry.name}: cvind must hold fold numbers >= 1.")
    return folds.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Writing the exact MATLAB v7.3 layout.

def _matlab_header() -> bytes:
    """The 128-byte MATLAB 7.3 header that sits at the start of the 512-byte HDF5 userblock."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(0))
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {stamp} HDF5 schema 1.00 ."
    text = text.encode("ascii").ljust(116, b" ")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"


def _set_class(obj, matlab_class: str) -> None:
    obj.attrs.create("MATLAB_class", np.bytes_(matlab_class))


def write_mat_v73(path: str | os.PathLike, variables: dict) -> None:
    """Writes `variables` as a MATLAB v7.3 file: HDF5, 512-byte userblock, column-major arrays.

    `variables`: name -> numpy array or a dict (a struct of arrays). Arrays are given in
    MATLAB's (row-major logical) order and stored transposed, as MATLAB does. dtype ->
    MATLAB class: int16 'int16', float64 'double', bool 'logical' (stored uint8),
    uint16 with name 'PID' or a `str` 'char' (uint16 codes, `MATLAB_int_decode` = 2).
    """
    import h5py  # here: h5py takes ~1 s to import; only .mat sources need it

    def put(group, name, value):
        if isinstance(value, dict):
            sub = group.create_group(name)
            _set_class(sub, "struct")
            for k, v in value.items():
                put(sub, k, v)
            return
        if isinstance(value, str):
            codes = np.array([[ord(ch) for ch in value]], dtype=np.uint16)  # MATLAB 1 x n
            ds = group.create_dataset(name, data=codes.T)
            _set_class(ds, "char")
            ds.attrs.create("MATLAB_int_decode", np.int32(2))
            return
        arr = np.asarray(value)
        if arr.ndim < 2:
            arr = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(1, 1)
        cls = {"int16": "int16", "float64": "double", "uint8": "uint8", "uint16": "uint16",
               "int32": "int32", "float32": "single", "bool": "logical"}.get(arr.dtype.name)
        if cls is None:
            raise ValueError(f"write_mat_v73: unsupported dtype {arr.dtype} for {name!r}.")
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        big = arr.size >= 4096  # MATLAB v7.3 deflate-compresses large variables in chunks
        ds = group.create_dataset(name, data=np.ascontiguousarray(arr.T),
                                  **(dict(compression="gzip", compression_opts=3) if big else {}))
        _set_class(ds, cls)
        if cls == "logical":
            ds.attrs.create("MATLAB_int_decode", np.int32(1))

    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for name, value in variables.items():
            put(f, name, value)
    with open(path, "r+b") as fh:
        fh.write(_matlab_header())


def write_figshare_mat(path: str | os.PathLike, image: np.ndarray, label: int, patient_id: str,
                       mask: np.ndarray, border: np.ndarray | None = None) -> None:
    """Writes one slice exactly as the Figshare files are laid out (MATLAB v7.3).

    Args:
      image: int16 [H, W] raw intensities (row-major; stored transposed).
      label: 1 meningioma, 2 glioma, 3 pituitary (stored float64 (1, 1)).
      patient_id: PID (stored as uint16 char codes, h5py shape (n, 1)).
      mask: [H, W] tumor mask (stored as MATLAB logical, transposed).
      border: float64 [k] points on the tumor border, [x1, y1, x2, y2, ...] (h5py shape (1, k)).
    """
    image = np.asarray(image)
    if image.dtype != np.int16:
        raise ValueError(f"Figshare images are int16. Received: dtype={image.dtype}")
    border = np.zeros([0], np.float64) if border is None else np.asarray(border, np.float64).ravel()
    write_mat_v73(path, {"cjdata": {
        "PID": str(patient_id),
        "image": image,
        "label": np.array([[float(label)]], dtype=np.float64),
        # MATLAB stores tumorBorder as k x 1, which h5py shows as (1, k).
        "tumorBorder": border.reshape(-1, 1),
        "tumorMask": np.asarray(mask) != 0,
    }})


def write_cvind(path: str | os.PathLike, folds: np.ndarray) -> None:
    """Writes `cvind.mat` (v7.3): `folds` int [num_slices], fold of slice i = folds[i - 1].

    Stored as MATLAB's num_slices x 1 double, i.e. h5py shape (1, num_slices) as in Figshare.
    """
    folds = np.asarray(folds, dtype=np.float64).reshape(-1, 1)
    write_mat_v73(path, {"cvind": folds})


_SLICE_STEM = re.compile(r"^\d+$")


def slice_number(stem: str) -> int | None:
    """Figshare slice number of a file stem ('123' -> 123), None for other names."""
    return int(stem) if _SLICE_STEM.match(stem) else None
