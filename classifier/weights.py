"""Where the classifier's initial weights come from: `--weights imagenet | none | PATH`.

Nothing is ever downloaded (the toolkit runs offline):
- `imagenet`: Keras' own cache file for the notop InceptionV3,
  `$KERAS_HOME/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`
  (`KERAS_HOME` defaults to `~/.keras`). If it is not there the error says where to put
  it and where to fetch it (on a machine with internet: `IMAGENET_URL`, or run
  `keras.applications.InceptionV3(include_top=False)` once there and copy the cache file).
- `none`: random initialisation; logged as a warning, accuracy will be clearly lower.
- `PATH`: a local file, either
  - the notop backbone: a legacy `.h5` (the keras-applications format, like the ImageNet
    file) or a Keras 3 `.weights.h5` saved from `model.backbone`; or
  - a whole classifier: a `.keras` file or a `.weights.h5` saved from a `TumorClassifier`
    (its class count must match the dataset's).
  A missing, unreadable or incompatible file is a `UserError` naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from collections.abc import Sequence

import h5py
import keras
import numpy as np

from classifier.model import TumorClassifier, build_classifier, load_classifier
from tfstylegan.utils.errors import UserError

_log = logging.getLogger("tfstylegan.classifier")

IMAGENET_FILENAME = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                + IMAGENET_FILENAME)
WEIGHT_KINDS = ("none", "imagenet", "backbone", "classifier")


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """A resolved `--weights` value.

    Attributes:
      kind: 'none', 'imagenet' (the cached notop backbone), 'backbone' (a user notop
        backbone file) or 'classifier' (a whole TumorClassifier, `.keras` or `.weights.h5`).
      path: the local file (None for 'none').
    """

    kind: str
    path: Path | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "none"


def keras_models_dir() -> Path:
    """Keras' download cache for applications weights: `$KERAS_HOME/models` (default `~/.keras/models`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def imagenet_weights_path() -> Path:
    """The cached ImageNet notop InceptionV3 file; UserError (saying where to put it) if absent."""
    path = keras_models_dir() / IMAGENET_FILENAME
    if not path.is_file():
        raise UserError(
            f"--weights=imagenet needs the ImageNet InceptionV3 backbone in Keras' cache, but {path} does not "
            f"exist (nothing is downloaded). On a machine with internet, download {IMAGENET_URL} "
            f"(or run keras.applications.InceptionV3(include_top=False) there once and take it from "
            f"~/.keras/models/), then copy it to {path} (set KERAS_HOME to use another cache folder). "
            f"Or pass --weights=PATH to a local file, or --weights=none to train from scratch.")
    return path


def resolve_weights(spec: str | os.PathLike) -> WeightsSource:
    """Turns `--weights` ('imagenet', 'none' or a file path) into a `WeightsSource`, checking the file exists."""
    spec = str(spec).strip()
    if spec.lower() == "none":
        return WeightsSource("none")
    if spec.lower() == "imagenet":
        return WeightsSource("imagenet", imagenet_weights_path())
    if not spec:
        raise UserError("--weights is empty. Pass 'imagenet', 'none' or the path of a local weights file.")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"Weights file {path} does not exist. Pass --weights=imagenet (Keras' cached ImageNet "
                        f"backbone), --weights=none, or the path of a .h5 / .weights.h5 / .keras file.")
    if path.suffix == ".keras":
        return WeightsSource("classifier", path)
    if path.suffix != ".h5":
        raise UserError(f"Weights file {path} has an unknown format. Use a .h5 or .weights.h5 weights file "
                        f"(notop InceptionV3 backbone or a saved classifier) or a classifier .keras file.")
    try:
        with h5py.File(path, "r") as f:
            is_classifier = "backbone" in f and "head" in f
    except OSError as e:
        raise UserError(f"Weights file {path} is not a readable HDF5 file ({e}). It may be truncated; "
                        f"fetch it again.") from None
    return WeightsSource("classifier" if is_classifier else "backbone", path)


def build_with_weights(source: WeightsSource | str, class_names: Sequence[str], input_size: int = 299,
                       dropout: float = 0.2) -> TumorClassifier:
    """A built `TumorClassifier` initialised from `source` (a `WeightsSource` or a `--weights` string).

    BatchNormalization stays in inference mode for pretrained sources (transfer learning) and
    trains normally from random initialisation.
    """
    if not isinstance(source, WeightsSource):
        source = resolve_weights(source)
    class_names = tuple(class_names)
    model = build_classifier(class_names, input_size=input_size, dropout=dropout,
                             freeze_batchnorm=source.pretrained)
    if source.kind == "none":
        _log.warning("--weights=none: the InceptionV3 backbone starts from random weights. Expect clearly "
                     "lower accuracy than with ImageNet weights (--weights=imagenet) on the real dataset.")
    elif source.kind in ("imagenet", "backbone"):
        _load_backbone(model, source.path)
    else:
        _load_whole(model, source.path)
    return model


def _load_backbone(model: TumorClassifier, path: Path) -> None:
    try:
        model.backbone.load_weights(str(path))
    except Exception as e:  # Keras raises ValueError/KeyError/OSError for a mismatched file
        raise UserError(f"Weights file {path} does not fit the notop InceptionV3 backbone "
                        f"({type(e).__name__}: {_first_line(e)}). Pass the notop ('include_top=False') "
                        f"InceptionV3 weights, a TumorClassifier .keras/.weights.h5, or --weights=none.") from None


def _load_whole(model: TumorClassifier, path: Path) -> None:
    if path.suffix == ".keras":
        src = load_classifier(path)
        if src.num_classes != model.num_classes:
            raise UserError(f"Classifier {path} predicts {src.num_classes} classes {list(src.class_names)}; this "
                            f"dataset has {model.num_classes} {list(model.class_names)}. Use a classifier trained on "
                            f"the same classes, or its backbone only.")
        for dst_layer, src_layer in ((model.backbone, src.backbone), (model.head, src.head)):
            dst_layer.set_weights(src_layer.get_weights())
        return
    try:
        model.load_weights(str(path))
    except Exception as e:
        raise UserError(f"Classifier weights file {path} does not fit a {model.num_classes}-class TumorClassifier "
                        f"({type(e).__name__}: {_first_line(e)}). It must come from a classifier with the same "
                        f"number of classes.") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def weights_equal(a: keras.Model, b: keras.Model) -> bool:
    """True if two models hold identical weights (same order and values)."""
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb))
