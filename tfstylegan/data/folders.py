"""Reader of folder datasets: images in class subfolders (the Kaggle brain-tumor datasets).

Any folder below `--source` whose name is a known class alias (`glioma`, `glioma_tumor`,
`meningioma`, `meningioma_tumor`, `pituitary`, `pituitary_tumor`, `notumor`, `no_tumor`;
case-insensitive, see `classes.FOLDER_ALIASES`) is a class folder, wherever it sits, so
both `Training/glioma/` and `glioma/` work and folders with the same class are merged.
Images of any size, RGB, gray or 16-bit, become float gray [H, W] (ITU-R 601 luma for
RGB). An image outside any class folder means an unknown class and is an error.

These datasets have no patient ids: each image counts as its own patient (its path is
its id), so a patient-wise split is not possible and the manifest says so.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfstylegan.data.classes import FOLDER_ALIASES
from tfstylegan.utils.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    """An image file. `class_name` is canonical, or None if it lies outside any class folder."""

    path: Path
    rel: str
    class_name: str | None


def canonical_class(folder_name: str) -> str | None:
    """'Glioma_Tumor' -> 'glioma'; None for names that are not class aliases."""
    return FOLDER_ALIASES.get(folder_name.strip().lower().replace("-", "_").replace(" ", "_"))


def scan_folders(root: str | os.PathLike) -> tuple[list[ImageEntry], dict[str, list[str]]]:
    """Finds the images under `root`.

    Returns:
      entries: every image file, sorted by relative path, with its canonical class (or None).
      class_dirs: canonical class -> the class folders found (relative paths), including
        folders that hold no image (an empty class is reported by the caller).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--source {root} is not a folder; the folders format needs a folder of "
                        f"class subfolders ({', '.join(sorted(FOLDER_ALIASES))}).")
    entries: list[ImageEntry] = []
    class_dirs: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        d = Path(dirpath)
        rel_dir = d.relative_to(root)
        cls = None
        for part in reversed(rel_dir.parts):  # the nearest class folder above the file
            cls = canonical_class(part)
            if cls is not None:
                break
        if rel_dir.parts and canonical_class(rel_dir.parts[-1]) is not None:
            class_dirs.setdefault(canonical_class(rel_dir.parts[-1]), []).append(str(rel_dir))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            p = d / name
            entries.append(ImageEntry(path=p, rel=str(p.relative_to(root)), class_name=cls))
    entries.sort(key=lambda e: e.rel)
    return entries, class_dirs


def has_class_folders(root: str | os.PathLike) -> bool:
    """True if some folder below `root` is named like a class."""
    root = Path(root)
    if not root.is_dir():
        return False
    for _, dirnames, _ in os.walk(root):
        if any(canonical_class(d) is not None for d in dirnames):
            return True
    return False


def read_image(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """Any image file -> float32 gray [H, W] on its own scale (0-255 for 8-bit, 0-65535 for 16-bit).

    `UserError` naming the file if it cannot be decoded.
    """
    name = name or str(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
            elif im.mode in ("L", "P", "1", "LA", "PA"):
                arr = np.asarray(im.convert("L"), dtype=np.float32)
            else:
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
                arr = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{name}: cannot read the image ({type(e).__name__}: {e}). "
                        "Remove or replace it, or pass --skip_bad.") from None
    if arr.ndim != 2 or arr.size == 0:
        raise UserError(f"{name}: unexpected image shape {arr.shape}.")
    return arr

