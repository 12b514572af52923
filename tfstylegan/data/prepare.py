"""`prepare(...)`: raw source -> prepared dataset (TFRecord shards, manifest, previews).

Steps: detect the source format; read every slice (Figshare `.mat`, class-folder images, or
DICOM series / NIfTI volumes listed in a labels CSV, `medical.py`), checking each and naming
the file on any problem; preprocess (crop, normalise, resize;
`preprocess.py`); split patient-wise; write `<out>/<split>/<class>-*.tfrecord`,
`manifest.json` and `preview_<class>.png` into a temporary folder renamed to `<out>` only
when everything succeeded (on any error nothing is written).

Splits are by patient id, globally: a patient's slices all go to one split, whatever their
labels. `split=(train, val, test)` fractions are applied per class (each patient counted
under the class of most of its slices) to the patients sorted by id and shuffled with
`seed`, so the split is deterministic and stratified. `fold=k` uses Figshare's
`cvind.mat` instead: test = fold k, val = fold k+1 (5 -> 1), train = the other folds;
cvind must itself be patient-separated (checked). A labels CSV gives the patient ids itself.

(Over 400 lines: one pipeline from any source to a prepared dataset; the readers, preprocessing and
TFRecord writing are their own modules.)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from tfstylegan.data import figshare, folders, medical
from tfstylegan.data.classes import ALL_CLASS_NAMES, SPLITS
from tfstylegan.data.preprocess import check_settings, preprocess_image, preprocess_mask
from tfstylegan.data.tfrecords import encode_png, make_example, write_shards
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, save_png
from tfstylegan.utils.io import atomic_dir, sha256_file, write_json
from tfstylegan.utils.progress import Progress

FORMAT_VERSION = 1
FORMATS = ("auto", "figshare", "folders", "csv")
PREVIEW_IMAGES = 16


@dataclasses.dataclass
class _Item:
    """One preprocessed slice, ready to serialise."""

    class_name: str
    patient_id: str
    slice_id: str
    source: str
    image: np.ndarray        # uint8/uint16 [R, R]
    mask_png: bytes          # b"" when the source has no mask
    fold: int | None = None


def parse_split(split: str | Sequence[float]) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); fractions >= 0 that sum to 1."""
    try:
        vals = [float(v) for v in (split.split(",") if isinstance(split, str) else split)]
    except (TypeError, ValueError):
        raise UserError(f"--split must be three numbers train,val,test such as 0.8,0.1,0.1. "
                        f"Received: split={split!r}") from None
    if len(vals) != 3 or any(v < 0 or v != v for v in vals) or abs(sum(vals) - 1.0) > 1e-6:
        raise UserError(f"--split must be three fractions train,val,test >= 0 summing to 1, "
                        f"e.g. 0.8,0.1,0.1. Received: split={split!r}")
    if vals[0] <= 0:
        raise UserError(f"--split needs a train fraction > 0. Received: split={split!r}")
    return tuple(vals)  # type: ignore[return-value]


def parse_percentiles(p: str | Sequence[float]) -> tuple[float, float]:
    """'0.5,99.5' -> (0.5, 99.5)."""
    try:
        vals = [float(v) for v in (p.split(",") if isinstance(p, str) else p)]
    except (TypeError, ValueError):
        vals = []
    if len(vals) != 2:
        raise UserError(f"--percentiles must be two numbers low,high such as 0.5,99.5. "
                        f"Received: percentiles={p!r}")
    return vals[0], vals[1]


def detect_format(source: str, entries: list | None = None) -> str:
    """'csv' if the source is a `.csv` file (a labels CSV), 'figshare' if it holds `.mat` files
    (also inside zips), else 'folders' if it holds class subfolders; `UserError` when it holds
    none of these. `entries`: the source's listed .mat files."""
    if medical.is_labels_csv(source):
        return "csv"
    entries = figshare.list_mat_entries(source) if entries is None else entries
    if any(e.stem.lower() != "cvind" for e in entries):
        return "figshare"
    if "," not in str(source) and folders.has_class_folders(source):
        return "folders"
    raise UserError(
        f"--source {source} holds no data: no Figshare .mat files (in folders or zips) and no class "
        f"subfolders named like {', '.join(sorted(set(folders.FOLDER_ALIASES)))}. Point --source at "
        "the Figshare download (folder or zips), at a folder of class subfolders (extract Kaggle zips "
        "first), or at a labels .csv listing DICOM series / NIfTI volumes.")


# ----------------------------------------------------------------------------------------------
# Reading.

class _Reader:
    """Collects items; raises on the first bad file unless `skip_bad`, which records it instead."""

    def __init__(self, skip_bad: bool, min_size: int, resolution: int, crop_fraction: float,
                 percentiles: tuple[float, float], bit_depth: int, square: str = "crop"):
        self.skip_bad = skip_bad
        self.min_size = min_size
        self.kw = dict(resolution=resolution, crop_fraction=crop_fraction, square=square)
        self.percentiles = percentiles
        self.bit_depth = bit_depth
        self.items: list[_Item] = []
        self.skipped: list[dict] = []

    def bad(self, file: str, error: UserError) -> None:
        if not self.skip_bad:
            raise error
        self.skipped.append({"file": file, "reason": str(error)})

    def check_size(self, image: np.ndarray, name: str) -> None:
        h, w = image.shape[:2]
        if min(h, w) < self.min_size:
            raise UserError(f"{name}: image is {h}x{w}, smaller than --min_size={self.min_size} px "
                            "(tiny image). Remove it, lower --min_size, or pass --skip_bad.")

    def add(self, image: np.ndarray, mask: np.ndarray | None, **meta) -> None:
        img = preprocess_image(image, percentiles=self.percentiles, bit_depth=self.bit_depth, **self.kw)
        mask_png = b"" if mask is None else encode_png(preprocess_mask(mask, **self.kw))
        self.items.append(_Item(image=img, mask_png=mask_png, **meta))


def _read_figshare(entries: list, reader: _Reader, progress: bool) -> tuple[np.ndarray | None, dict]:
    cvind_entries = [e for e in entries if e.stem.lower() == "cvind"]
    slices = [e for e in entries if e.stem.lower() != "cvind"]
    cvind = figshare.read_cvind(cvind_entries[0]) if cvind_entries else None
    versions: Counter = Counter()
    seen_ids: dict[str, str] = {}
    with Progress(len(slices), desc="reading .mat", unit="file", enabled=progress) as bar:
        for entry in slices:
            try:
                s = figshare.read_slice(entry)
                reader.check_size(s.image, entry.name)
                if s.slice_id in seen_ids:
                    raise UserError(f"{entry.name}: slice {s.slice_id} appears twice (also "
                                    f"{seen_ids[s.slice_id]}). Give --source only one copy of the dataset.")
            except UserError as e:
                reader.bad(entry.name, e)
                bar.update()
                continue
            bar.update()
            seen_ids[s.slice_id] = entry.name
            num = figshare.slice_number(s.slice_id)
            fold = int(cvind[num - 1]) if cvind is not None and num is not None and 1 <= num <= len(cvind) \
                else None
            reader.add(s.image, s.mask, class_name=s.class_name, patient_id=s.patient_id,
                       slice_id=s.slice_id, source=entry.name, fold=fold)
            versions[s.version] += 1
    info = {"mat_versions": dict(versions), "cvind": cvind_entries[0].name if cvind_entries else None,
            "patient_ids_known": True, "has_mask": True}
    return cvind, info


def _read_folders(source: str, reader: _Reader, progress: bool) -> dict:
    entries, class_dirs = folders.scan_folders(source)
    if not entries and not class_dirs:
        raise UserError(f"--source {source} holds no images and no class subfolders.")
    good = Counter()
    with Progress(len(entries), desc="reading images", unit="file", enabled=progress) as bar:
        for entry in entries:
            bar.update()  # counts files started: reading dominates, preprocessing is quick
            try:
                if entry.class_name is None:
                    parent = str(Path(entry.rel).parent)
                    raise UserError(
                        f"{entry.path}: folder {parent!r} is not a known class (unknown label). Name class "
                        f"folders one of {', '.join(sorted(folders.FOLDER_ALIASES))}, or pass --skip_bad.")
                image = folders.read_image(entry.path)
                reader.check_size(image, str(entry.path))
            except UserError as e:
                reader.bad(str(entry.path), e)
                continue
            stem = os.path.splitext(entry.rel)[0].replace(os.sep, "/")
            reader.add(image, None, class_name=entry.class_name, patient_id=stem, slice_id=stem,
                       source=str(entry.path))
            good[entry.class_name] += 1
    for cls in ALL_CLASS_NAMES:
        if cls in class_dirs and good[cls] == 0:
            where = ", ".join(str(Path(source) / d) for d in class_dirs[cls])
            reader.bad(where, UserError(
                f"{where}: class {cls!r} has no readable images (empty class). Add images, remove the "
                "folder, or pass --skip_bad."))
    return {"patient_ids_known": False, "has_mask": False,
            "note": "folder datasets carry no patient ids: each image is its own patient, so splits "
                    "cannot be patient-wise for the same patient scanned several times."}


def _read_csv(source: str, reader: _Reader, progress: bool, slice_axis: str) -> dict:
    rows = medical.read_labels(source)
    kinds: Counter = Counter()
    seen: dict[str, str] = {}
    rows_with_mask = 0
    base = Path(source).parent
    with Progress(len(rows), desc=f"reading {Path(source).name}", unit="row", enabled=progress) as bar:
        for line, raw in rows:
            bar.update()  # counts rows started: reading dominates, preprocessing is quick
            where = f"{source} line {line}"
            try:
                row = medical.parse_row(source, line, raw)
                kind, slices = medical.read_row(row, slice_axis)
                try:
                    rel = row.file.relative_to(base).as_posix()
                except ValueError:
                    rel = row.file.as_posix()
                for k, image, _ in slices:
                    reader.check_size(image, f"{where}: {row.file} slice {k}")
                    sid = f"{rel}:{k:04d}"
                    if sid in seen:
                        raise UserError(f"{where}: slice {k} of {row.file} is listed twice (also "
                                        f"{seen[sid]}). Give each slice once: fix the slice ranges.")
            except UserError as e:
                reader.bad(where, e)
                continue
            for k, image, mask in slices:
                seen[f"{rel}:{k:04d}"] = where
                reader.add(image, mask, class_name=row.class_name, patient_id=row.patient_id,
                           slice_id=f"{rel}:{k:04d}", source=str(row.file))
            kinds[kind] += 1
            rows_with_mask += row.mask is not None
    used = sum(kinds.values())
    return {"patient_ids_known": True, "has_mask": used > 0 and rows_with_mask == used,
            "rows": len(rows), "sources": dict(kinds), "rows_with_mask": rows_with_mask,
            "slice_axis": slice_axis}


# ----------------------------------------------------------------------------------------------
# Splitting.

def _stable_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2 ** 32)


def split_patients(patient_classes: dict[str, list[str]], fractions: tuple[float, float, float],
                   seed: int) -> dict[str, str]:
    """Assigns every patient to one split, stratified by class.

    Per class (a patient counts under the class of most of its slices), val and test get
    round(n * fraction) patients, at least one each when n >= 3 and their fraction is > 0;
    train gets the rest (at least one).

    Args:
      patient_classes: patient id -> the class names of its slices.
      fractions: (train, val, test), summing to 1.
      seed: the shuffle seed; the result depends only on it and the input.
    Returns:
      patient id -> 'train' | 'val' | 'test'.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for pid, classes in patient_classes.items():
        counts = Counter(classes)
        primary = min(counts, key=lambda c: (-counts[c], ALL_CLASS_NAMES.index(c)))
        by_class[primary].append(pid)
    out = {}
    for cls, pids in sorted(by_class.items()):
        pids = sorted(pids)
        order = np.random.default_rng(_stable_seed(seed, cls)).permutation(len(pids))
        n = len(pids)
        n_val, n_test = int(round(n * fractions[1])), int(round(n * fractions[2]))
        if n >= 3:  # a split asked for gets at least one patient when there are enough
            n_val = max(n_val, int(fractions[1] > 0))
            n_test = max(n_test, int(fractions[2] > 0))
        n_train = max(n - n_val - n_test, 1)  # train is never empty for a class with data
        n_trainval = min(n, n_train + n_val)
        for rank, idx in enumerate(order):
            out[pids[idx]] = "train" if rank < n_train else ("val" if rank < n_trainval else "test")
    return out


def split_shortfall(assignment: dict[str, str], fractions: tuple[float, float, float],
                    tolerance: float = 0.05) -> str | None:
    """A sentence when the patient split is further than `tolerance` from the fractions asked for, else None.

    Small data cannot follow fractions like 0.98,0.01,0.01: each class with >= 3 patients gives val
    and test one patient each (`split_patients`), so the user is told what the split became.
    (`prepare` allows one patient of the smallest class: 1/4 with 4 patients per class.)
    """
    n = len(assignment)
    got = [sum(1 for s in assignment.values() if s == name) for name in SPLITS]
    if n == 0 or all(abs(k / n - f) <= tolerance for k, f in zip(got, fractions)):
        return None
    asked = ",".join(f"{f:g}" for f in fractions)
    became = " / ".join(f"{name} {k} ({100 * k / n:.0f}%)" for name, k in zip(SPLITS, got))
    return (f"--split {asked} on {n} patients became {became}: per class, a split asked for gets at least one "
            "patient (val and test) and train at least one. Use more data, or --split 1,0,0 for no val/test.")


def _split_by_fold(items: list[_Item], fold: int, cvind_name: str | None) -> dict[str, str]:
    if cvind_name is None:
        raise UserError(f"--fold {fold} needs the Figshare cvind.mat in --source; it was not found. "
                        "Use --split instead, or add cvind.mat.")
    missing = [it.source for it in items if it.fold is None]
    if missing:
        raise UserError(f"{cvind_name} gives no fold for {missing[0]} ({len(missing)} slices without a "
                        "fold; slice i must be named i.mat within cvind's length). Use --split instead.")
    num_folds = max(it.fold for it in items)
    if not 1 <= fold <= num_folds:
        raise UserError(f"--fold must be in 1..{num_folds} (folds in {cvind_name}). Received: fold={fold}")
    patient_fold: dict[str, int] = {}
    for it in items:
        prev = patient_fold.setdefault(it.patient_id, it.fold)
        if prev != it.fold:
            raise UserError(f"{cvind_name} puts patient {it.patient_id} in folds {prev} and {it.fold}; "
                            "folds must be patient-separated. Use --split instead.")
    val_fold = fold % num_folds + 1
    return {pid: "test" if f == fold else ("val" if f == val_fold and num_folds > 2 else "train")
            for pid, f in patient_fold.items()}


# ----------------------------------------------------------------------------------------------
# Writing.

def _preview(items: list[_Item], bit_depth: int) -> np.ndarray:
    imgs = [it.image for it in items[:PREVIEW_IMAGES]]
    if bit_depth == 16:
        imgs = [(im >> 8).astype(np.uint8) for im in imgs]
    return image_grid(np.stack(imgs)[..., None], grid_w=min(4, len(imgs)), padding=2)


def prepare(source: str | os.PathLike, out: str | os.PathLike, format: str = "auto",
            resolution: int = 256, crop_fraction: float = 0.25, bit_depth: int = 8,
            split: str | Sequence[float] = (0.8, 0.1, 0.1), fold: int | None = None, seed: int = 0,
            skip_bad: bool = False, percentiles: str | Sequence[float] = (0.5, 99.5),
            shard_size: int = 1024, min_size: int = 64, overwrite: bool = False,
            progress: bool = True, square: str = "crop", slice_axis: str = "axial") -> dict:
    """Prepares a dataset from `source` into `out`; returns the manifest (also in `out/manifest.json`).

    Args:
      source: Figshare folder/zips/.mat files (comma-separated allowed), a folder of class folders,
        or a labels `.csv` listing DICOM series / NIfTI volumes (`tfstylegan.data.medical`).
      out: the output folder (must not exist unless `overwrite`).
      format: 'auto' | 'figshare' | 'folders' | 'csv' ('auto' picks 'csv' for a `.csv` source).
      resolution: output size (power of two; 256 by default, 32 is the study's first stage).
      crop_fraction: fraction cut from each side before resizing (0.25 = 128 px of 512).
      bit_depth: 8 or 16 (PNG depth of the stored images).
      split: (train, val, test) patient fractions, or '0.8,0.1,0.1'. Ignored with `fold`.
      fold: use cvind.mat fold k (1-based) as test and the next fold as val.
      seed: split shuffle seed.
      skip_bad: skip unreadable/invalid files (listed in the manifest) instead of failing.
      percentiles: per-image intensity percentiles mapped to black and white.
      shard_size: max examples per TFRecord shard.
      min_size: images with a side shorter than this are rejected as tiny.
      overwrite: replace an existing `out` (only once the new one is complete).
      progress: print progress lines to stderr.
      square: how a non-square slice becomes square: 'crop' (central crop of the longer side) or
        'pad' (pad the shorter side with the background).
      slice_axis: the axis NIfTI volumes are sliced along: 'axial' | 'coronal' | 'sagittal'.
    Raises:
      UserError: bad settings or bad input (naming the file); nothing is written then.
    """
    source, out = str(source), Path(out)
    pct = parse_percentiles(percentiles)
    check_settings(int(resolution), crop_fraction, int(bit_depth), pct, square)
    if slice_axis not in medical.SLICE_AXES:
        raise UserError(f"--slice_axis must be one of {', '.join(medical.SLICE_AXES)}. "
                        f"Received: slice_axis={slice_axis!r}")
    fractions = parse_split(split)
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}. Received: format={format!r}")
    if fold is not None and int(fold) < 1:
        raise UserError(f"--fold is 1-based (1..5 for Figshare). Received: fold={fold}")
    if int(shard_size) < 1:
        raise UserError(f"--shard_size must be >= 1. Received: shard_size={shard_size}")
    if int(min_size) < 1:
        raise UserError(f"--min_size must be >= 1. Received: min_size={min_size}")
    if out.exists() and not overwrite:
        raise UserError(f"Output folder {out} already exists. Choose another --out, delete it, or "
                        "pass --overwrite.")
    for part in source.split(","):
        if part.strip() and out.resolve() == Path(part.strip()).resolve():
            raise UserError(f"--out {out} is the --source folder; choose a different --out.")

    csv_source = format == "csv" or (format == "auto" and medical.is_labels_csv(source))
    entries = figshare.list_mat_entries(source) if format not in ("folders", "csv") and not csv_source \
        else []
    fmt = detect_format(source, entries) if format == "auto" else format
    if fmt in ("folders", "csv") and fold is not None:
        raise UserError(f"--fold needs Figshare data with cvind.mat; {fmt} datasets use --split.")
    reader = _Reader(skip_bad, int(min_size), int(resolution), float(crop_fraction), pct, int(bit_depth),
                     square)
    cvind_name = None
    if fmt == "figshare":
        _, info = _read_figshare(entries, reader, progress)
        cvind_name = info["cvind"]
    elif fmt == "csv":
        info = _read_csv(source, reader, progress, slice_axis)
    else:
        info = _read_folders(source, reader, progress)
    items = reader.items
    if not items:
        extra = f" All {len(reader.skipped)} files were skipped as bad." if reader.skipped else ""
        raise UserError(f"--source {source} ({fmt}) gave no usable slices.{extra} Check the path and format.")

    if fold is not None:
        assignment = _split_by_fold(items, int(fold), cvind_name)
    else:
        pc: dict[str, list[str]] = defaultdict(list)
        for it in items:
            pc[it.patient_id].append(it.class_name)
        assignment = split_patients(pc, fractions, int(seed))
        smallest = min(Counter(Counter(v).most_common(1)[0][0] for v in pc.values()).values())
        note = split_shortfall(assignment, fractions, tolerance=max(0.05, 1 / smallest))
        if note:
            print(f"warning: {note}", file=sys.stderr, flush=True)

    class_names = [c for c in ALL_CLASS_NAMES if any(it.class_name == c for it in items)]
    grouped: dict[tuple[str, str], list[_Item]] = defaultdict(list)
    for it in sorted(items, key=lambda it: (it.patient_id, figshare.slice_sort_key(it.slice_id))):
        grouped[(assignment[it.patient_id], it.class_name)].append(it)
    split_counts = {s: {c: len(grouped[(s, c)]) for c in class_names} for s in SPLITS}
    patients = {s: sorted({pid for pid, sp in assignment.items() if sp == s}) for s in SPLITS}

    settings = {"format": fmt, "resolution": int(resolution), "crop_fraction": float(crop_fraction),
                "bit_depth": int(bit_depth), "split": list(fractions) if fold is None else None,
                "fold": None if fold is None else int(fold), "seed": int(seed), "skip_bad": bool(skip_bad),
                "percentiles": list(pct), "shard_size": int(shard_size), "min_size": int(min_size),
                "square": square,
                "resize_filter": "PIL LANCZOS (float, antialiased); masks BOX + threshold 0.5"}
    manifest = {
        "format_version": FORMAT_VERSION,
        "resolution": int(resolution),
        "bit_depth": int(bit_depth),
        "channels": 1,
        "class_names": class_names,
        "has_mask": bool(info["has_mask"]),
        "counts": {c: sum(split_counts[s][c] for s in SPLITS) for c in class_names},
        "split_counts": split_counts,
        "num_patients": {s: len(patients[s]) for s in SPLITS},
        "patients": patients,
        "patient_ids_known": bool(info["patient_ids_known"]),
        "source": {"path": source, "format": fmt,
                   **{k: v for k, v in info.items() if k not in ("has_mask", "patient_ids_known")}},
        "settings": settings,
        "files": {},
        "skipped": reader.skipped,
    }

    # here: TensorFlow's start-up (seconds) after the sources are checked and before the progress clock starts
    import tensorflow as tf  # noqa: F401

    total = sum(len(v) for v in grouped.values())
    with atomic_dir(out, overwrite=overwrite) as tmp:
        with Progress(total, desc="writing shards", unit="img", enabled=progress) as bar:
            for s in SPLITS:
                for c in class_names:
                    group = grouped[(s, c)]
                    examples = []
                    for it in group:
                        examples.append(make_example(
                            encode_png(it.image), it.mask_png, ALL_CLASS_NAMES.index(c), c,
                            it.patient_id, it.slice_id, it.image.shape[0], it.image.shape[1]))
                        bar.update()
                    write_shards(tmp / s, c, examples, int(shard_size))
        for c in class_names:
            pool = grouped[("train", c)] or [it for s in SPLITS for it in grouped[(s, c)]]
            save_png(tmp / f"preview_{c}.png", _preview(pool, int(bit_depth)))
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                manifest["files"][p.relative_to(tmp).as_posix()] = sha256_file(p)
        write_json(tmp / "manifest.json", manifest)
    return manifest
