"""The tumor classes, in one canonical order used by data, training, classifier and metrics.

Figshare labels 1, 2, 3 are meningioma, glioma, pituitary (Cheng et al.); they map to
class indices 0, 1, 2. Kaggle-style folders may add 'notumor' as an optional fourth class.
"""

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
