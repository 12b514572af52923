"""Utility of synthetic data: train on synthetic, test on real (TSTR).

Three classifiers are trained with the same settings (`classifier.training.fit_classifier`)
and tested on the same real, patient-wise test split:

- `real`: the real training split only (the baseline);
- `real+synthetic`: the real training split plus the generated images (augmentation);
- `synthetic`: generated images only (train-on-synthetic, test-on-real).

The report gives each one's accuracy, balanced accuracy, macro F1 and confusion matrix, and
the accuracy differences to the baseline. A generator whose images carry the class
information gives `synthetic` an accuracy well above chance and `real+synthetic` about the
baseline or better.

The training helpers live in the sibling `classifier` package, imported when the experiment
runs, so that importing `tfstylegan.metrics` stays numpy-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from tfstylegan.utils.errors import UserError

SETTINGS = ("real", "real+synthetic", "synthetic")


def accuracy_differences(results: dict[str, dict[str, Any]], baseline: str = "real") -> dict[str, float]:
    """{'<setting> - real': accuracy difference} for every setting other than the baseline."""
    base = results[baseline]["accuracy"]
    return {f"{name} - {baseline}": float(r["accuracy"] - base) for name, r in results.items() if name != baseline}


def _check_set(images: np.ndarray, labels: np.ndarray, name: str, num_classes: int) -> None:
    if images.ndim != 4 or images.shape[-1] != 1 or len(images) != len(labels):
        raise ValueError(f"{name}: images must be [N, H, W, 1] with one label each. "
                         f"Received: images={images.shape}, labels={np.shape(labels)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}). "
                         f"Received: min={labels.min()}, max={labels.max()}")


def train_on_synthetic(real_train: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray],
                       real_val: tuple[np.ndarray, np.ndarray], real_test: tuple[np.ndarray, np.ndarray],
                       class_names: Sequence[str], config, settings: Sequence[str] = SETTINGS,
                       work_dir: str | os.PathLike | None = None, verbose: int = 0) -> dict[str, Any]:
    """Trains one classifier per setting and tests each on `real_test`.

    Args:
      real_train, synthetic, real_val, real_test: (images float32 [N, H, W, 1] in [-1, 1], labels int [N]),
        labels indexing `class_names`. Images of every set must have one size.
      class_names: the classifier's output classes.
      config: a `classifier.training.ClassifierConfig` (epochs, weights, input size, seed, ...).
      settings: a subset of `SETTINGS`.
      work_dir: where the classifiers are trained (a temporary folder, deleted, by default).
      verbose: Keras `fit` verbosity.

    Returns:
      {'settings': {name: {accuracy, balanced_accuracy, macro_f1, num_train, confusion_matrix, ...}},
       'differences': {'real+synthetic - real': ..., 'synthetic - real': ...} (when 'real' ran),
       'num_test', 'class_names', 'classifier': config dict}.
    """
    import tensorflow as tf

    from classifier.metrics import evaluate_classifier
    from classifier.model import load_classifier
    from classifier.training import fit_classifier

    class_names = [str(c) for c in class_names]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise UserError(f"Utility settings must be among {', '.join(SETTINGS)}. Received: {list(settings)}")
    sets = {"real_train": real_train, "synthetic": synthetic, "real_val": real_val, "real_test": real_test}
    sets = {k: (np.asarray(x, np.float32), np.asarray(y, np.int32)) for k, (x, y) in sets.items()}
    for name, (x, y) in sets.items():
        _check_set(x, y, name, len(class_names))
    if len(sets["real_test"][1]) == 0:
        raise UserError("The utility experiment needs a real test split; the dataset has no test images.")
    if len(sets["real_val"][1]) == 0:
        raise UserError("The utility experiment needs real validation images (val or test split).")

    def train_set(setting):
        if setting == "real":
            return sets["real_train"]
        if setting == "synthetic":
            return sets["synthetic"]
        return (np.concatenate([sets["real_train"][0], sets["synthetic"][0]]),
                np.concatenate([sets["real_train"][1], sets["synthetic"][1]]))

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="utility-", dir=work_dir) as tmp:
        for setting in settings:
            x, y = train_set(setting)
            if len(y) == 0:
                raise UserError(f"The utility setting {setting!r} has no training images.")
            counts = np.bincount(y, minlength=len(class_names))
            train_ds = tf.data.Dataset.from_tensor_slices((x, y))
            val_ds = tf.data.Dataset.from_tensor_slices(sets["real_val"])
            out = Path(tmp) / setting.replace("+", "_plus_")
            print(f"utility: training the '{setting}' classifier on {len(y)} images "
                  f"({dict(zip(class_names, counts.tolist()))})", flush=True)
            model_path, history = fit_classifier(config, train_ds, val_ds, class_names, counts, out, verbose=verbose)
            model = load_classifier(model_path)
            metrics = evaluate_classifier(model, *sets["real_test"], class_names=class_names,
                                          batch_size=config.batch_size)
            metrics.update(num_train=int(len(y)), train_counts=dict(zip(class_names, counts.tolist())),
                           epochs_run=len(history.get("loss", [])))
            results[setting] = metrics
    report: dict[str, Any] = {"settings": results, "num_test": int(len(sets["real_test"][1])),
                              "class_names": class_names, "classifier": config.to_dict()}
    report["differences"] = accuracy_differences(results) if "real" in results else {}
    return report
