"""Exports generators and the classifier as SavedModels for TensorFlow Serving.

Example:
  python -m launchers.export --checkpoint runs/00003-auto-glioma-b16-ada --checkpoint runs/00004-auto-cond-b16-ada \
      --classifier runs/classifier/classifier.keras --out serving --version 1

writes `serving/generator_glioma/1/`, `serving/generator/1/` (conditional) and `serving/classifier/1/`.
The generator is the EMA generator with constant noise; see `tfstylegan.export.saved_model` for the
signatures (seed -> uint8 images; `from_z` for exact official z vectors). A request may hold at most
`--max_batch` samples.

All or nothing: every model is loaded and checked (damaged or NaN checkpoints refused) and every
target folder planned (two models aimed at one folder, or an existing version without
`--overwrite`, refused) before the first one is written; each is written atomically.
"""

import math

from absl import flags

from tfstylegan.utils.cli import run
from tfstylegan.utils.errors import UserError

_CHECKPOINTS = flags.DEFINE_multi_string("checkpoint", [], "Run, checkpoint or imported folder of a generator "
                                         "(repeat for several per-class models).")
_CLASSIFIER = flags.DEFINE_string("classifier", None, "classifier.keras written by train_classifier.")
_OUT = flags.DEFINE_string("out", None, "Model base folder: models go to <out>/<name>/<version>/.", required=True)
_NAME = flags.DEFINE_string("name", None, "Model name (only with a single model). Default: generator_<class>, "
                            "generator (conditional) or classifier.")
_VERSION = flags.DEFINE_integer("version", 1, "Model version folder (TF Serving serves the highest).")
_PSI = flags.DEFINE_float("truncation_psi", 1.0, "Truncation psi used when a request sends an empty "
                          "truncation_psi list.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing <out>/<name>/<version>/.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 64, "Most samples one generator request may ask for (a larger "
                                  "one is refused: it could run the server out of memory).", lower_bound=1)


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.export.saved_model import default_generator_name, export_classifier, export_generator, version_dir
    from tfstylegan.training.checkpoint import load_generator

    n_models = len(_CHECKPOINTS.value) + bool(_CLASSIFIER.value)
    if n_models == 0:
        raise UserError("Nothing to export: pass --checkpoint (generator) and/or --classifier.")
    if _NAME.value and n_models > 1:
        raise UserError(f"--name applies to a single model, but {n_models} are exported; drop --name to use "
                        "the default names.")
    if not math.isfinite(_PSI.value):
        raise UserError(f"--truncation_psi must be a finite number. Received: {_PSI.value}")
    # Load and check every model and plan every folder before writing any: no partial export.
    planned = []  # (source, folder, kind, model, info)
    for ckpt in _CHECKPOINTS.value:
        G, info = load_generator(ckpt, which="G_ema")
        name = _NAME.value or default_generator_name(info)
        planned.append((ckpt, version_dir(_OUT.value, name, _VERSION.value), "generator", G, info))
    if _CLASSIFIER.value:
        from classifier.model import load_classifier  # here: TensorFlow, only when a classifier is exported

        name = _NAME.value or "classifier"
        planned.append((_CLASSIFIER.value, version_dir(_OUT.value, name, _VERSION.value), "classifier",
                        load_classifier(_CLASSIFIER.value), None))
    seen = {}
    for source, path, *_ in planned:
        if path in seen:
            raise UserError(f"{seen[path]} and {source} would both be exported to {path}; export them separately "
                            "with --name, or with different --version.")
        seen[path] = source
        if path.exists() and not _OVERWRITE.value:
            raise UserError(f"{path} already exists (exported before?). Pass --overwrite to replace it, or another "
                            "--version. Nothing was written.")
    for _source, path, kind, model, info in planned:
        if kind == "generator":
            export_generator(model, _OUT.value, model_name=path.parent.name, version=_VERSION.value,
                             truncation_psi=_PSI.value, class_names=info.get("class_names") or (),
                             overwrite=_OVERWRITE.value, max_batch=_MAX_BATCH.value)
        else:
            export_classifier(model, _OUT.value, model_name=path.parent.name, version=_VERSION.value,
                              overwrite=_OVERWRITE.value)
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
