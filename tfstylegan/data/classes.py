"""The tumor classes, in one canonical order used by data, training, classifier and metrics.

Figshare labels 1, 2, 3 are meningioma, glioma, pituitary (Cheng et al.); they map to
class indices 0, 1, 2. Kaggle-style folders may add 'notumor' as an optional fourth class.
"""

from __future__ import annotations

import dataclasses

from tfstylegan.utils.errors import UserError

CLASS_NAMES = ("meningioma", "glioma", "pituitary")
OPTIONAL_CLASS_NAMES = ("notumor",)
ALL_CLASS_NAMES = CLASS_NAMES + OPTIONAL_CLASS_NAMES

SPLITS = ("train", "val", "test")
"""The prepared dataset's splits (patient-wise)."""

FIGSHARE_LABELS = {1: "meningioma", 2: "glioma", 3: "pituitary"}

# Folder names seen in the public Kaggle datasets -> canonical class name.
FOLDER_ALIASES = {
    "meningioma": "meningioma",
    "meningioma_tumor": "meningioma",
    "glioma": "glioma",
    "glioma_tumor": "glioma",
    "pituitary": "pituitary",
    "pituitary_tumor": "pituitary",
    "notumor": "notumor",
    "no_tumor": "notumor",
}


def class_index(name: str, class_names=CLASS_NAMES) -> int:
    """Index of a canonical class name; raises a ValueError that lists the valid names."""
    try:
        return list(class_names).index(name)
    except ValueError:
        raise ValueError(f"Unknown class {name!r}. Choose one of {', '.join(class_names)}.") from None


@dataclasses.dataclass(frozen=True)
class ClassLayout:
    """How the dataset's classes map onto the model.

    class_names: the classes the model knows (conditional: index = class id = label).
    c_dim: 0 (per-class or unconditional) or len(class_names).
    probs: [c_dim] frequency of each class in the training split (to sample fake labels).
    """

    class_names: tuple[str, ...]
    c_dim: int
    probs: tuple[float, ...]


def class_layout(manifest: dict, data_dir, class_name: str | None, conditional: bool) -> ClassLayout:
    """Resolves --class_name / --conditional against the dataset; UserError names the fix."""
    present = list(manifest["class_names"])
    counts = manifest["split_counts"].get("train", {})
    if class_name is not None and conditional:
        raise UserError("--class_name and --conditional exclude each other: train one class (the study's "
                        "per-class models) or one conditional model of all classes.")
    if class_name is not None:
        if class_name not in present:
            raise UserError(f"{data_dir} has no class {class_name!r}; it has {', '.join(present)}. "
                            f"Pass --class_name with one of them.")
        if int(counts.get(class_name, 0)) < 1:
            raise UserError(f"{data_dir} has no training images of class {class_name!r}.")
        return ClassLayout((class_name,), 0, ())
    if int(sum(int(v) for v in counts.values())) < 1:
        raise UserError(f"{data_dir} has no training images (split_counts['train'] is empty).")
    if not conditional:
        return ClassLayout(tuple(present), 0, ())
    unknown = [c for c in present if c not in ALL_CLASS_NAMES]
    if unknown:
        raise UserError(f"{data_dir} has classes {unknown} outside {ALL_CLASS_NAMES}; cannot train conditionally.")
    c_dim = max(ALL_CLASS_NAMES.index(c) for c in present) + 1
    names = ALL_CLASS_NAMES[:c_dim]
    total = sum(int(counts.get(c, 0)) for c in names)
    return ClassLayout(tuple(names), c_dim, tuple(int(counts.get(c, 0)) / total for c in names))
