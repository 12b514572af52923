"""Utility of synthetic data: train on synthetic, test on real (TSTR).

Three classifiers are trained with the same settings, each by running `launchers/train_classifier.py`
(`classifier.training.train_classifier`) in a fresh process, and each is validated and tested on the real
dataset's patient-wise val/test splits:

- `real`: the real training split only (the baseline);
- `real+synthetic`: the real training split plus the synthetic dataset (augmentation);
- `synthetic`: the synthetic dataset only (train-on-synthetic, test-on-real).

The synthetic images go through a prepared synthetic dataset (`tfstylegan.apps.synthetic_dataset`), and
each classifier is the launcher command the report records, so each number is reproducible by hand (and
`evaluate` records the `launchers/synthesize.py` command that writes the same synthetic slices). A fresh
process is what makes it so: Keras training inside a longer-lived process depends on what ran in it before
(measured: an InceptionV3 built earlier in the same process changed the first epoch's loss), while two
launcher runs of the same command give the same numbers on CPU.

The report gives each one's accuracy, balanced accuracy, macro F1 and confusion matrix, and the accuracy
differences to the baseline. A generator whose images carry the class information gives `synthetic` an
accuracy well above chance and `real+synthetic` about the baseline or better.

The training helpers live in the sibling `classifier` package.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.training import TrainingMixture, command_line
from tfstylegan.utils.errors import UserError

SETTINGS = ("real", "real+synthetic", "synthetic")


def accuracy_differences(results: dict[str, dict[str, Any]], baseline: str = "real") -> dict[str, float]:
    """{'<setting> - real': accuracy difference} for every setting other than the baseline."""
    base = results[baseline]["accuracy"]
    return {f"{name} - {baseline}": float(r["accuracy"] - base) for name, r in results.items() if name != baseline}


def mixture_of(setting: str, synthetic_dir: str | os.PathLike):
    """The `classifier.training.TrainingMixture` of a utility setting."""
    if setting not in SETTINGS:
        raise UserError(f"Utility settings must be among {', '.join(SETTINGS)}. Received: {setting!r}")
    if setting == "real":
        return TrainingMixture()
    return TrainingMixture(extra_data=(str(synthetic_dir),), real_train=setting == "real+synthetic")


def train_on_synthetic(data_dir: str | os.PathLike, synthetic_dir: str | os.PathLike, config,
                       settings: Sequence[str] = SETTINGS, work_dir: str | os.PathLike | None = None,
                       synthetic_name: str | None = None) -> dict[str, Any]:
    """Trains one classifier per setting with the train_classifier launcher; each is tested on the real test split.

    Args:
      data_dir: the real prepared dataset (train split for 'real' settings; val/test always).
      synthetic_dir: a prepared synthetic dataset (`tfstylegan.apps.synthetic_dataset`).
      config: a `classifier.training.ClassifierConfig` (epochs, weights, input size, seed, ...).
      settings: a subset of `SETTINGS`.
      work_dir: where the classifiers are trained (kept); a temporary folder (deleted) by default.
      synthetic_name: how the recorded commands name the synthetic dataset (default: `synthetic_dir`).

    Returns:
      {'settings': {name: {accuracy, balanced_accuracy, macro_f1, num_train, train_counts, confusion_matrix,
       command, ...}}, 'differences': {'real+synthetic - real': ..., 'synthetic - real': ...} (when 'real'
       ran), 'num_test', 'test_split', 'class_names', 'classifier': config dict}.
    """
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise UserError(f"Utility settings must be among {', '.join(SETTINGS)}. Received: {list(settings)}")
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        root = Path(work_dir) if work_dir is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="utility-")))
        for setting in settings:
            out = root / f"classifier_{setting.replace('+', '_plus_')}"
            argv = command_line(config, data_dir, out, mixture_of(setting, synthetic_dir))
            print(f"utility: training the '{setting}' classifier: {' '.join(argv)}", flush=True)
            proc = subprocess.run([sys.executable, *argv[1:]], env=dict(os.environ, PYTHONUNBUFFERED="1"))
            if proc.returncode != 0:
                raise UserError(f"The utility classifier '{setting}' failed (exit {proc.returncode}); its messages "
                                f"are above. Command: {' '.join(argv)}")
            metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
            shown = mixture_of(setting, synthetic_name or synthetic_dir)
            metrics["command"] = " ".join(command_line(config, data_dir, f"<out>/{out.name}", shown))
            results[setting] = metrics
    first = next(iter(results.values()))
    report: dict[str, Any] = {"settings": results, "num_test": int(first["num_examples"]),
                              "test_split": first["split"], "class_names": first["class_names"],
                              "classifier": config.to_dict()}
    report["differences"] = accuracy_differences(results) if "real" in results else {}
    return report
