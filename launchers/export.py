"""Exports generators and the classifier as SavedModels for TensorFlow Serving.

Example:
  python -m launchers.export --checkpoint runs/00003-auto-glioma-b16-ada --checkpoint runs/00004-auto-cond-b16-ada \
      --classifier runs/classifier/classifier.keras --out serving --version 1

writes `serving/generator_glioma/1/`, `serving/generator/1/` (conditional) and `serving/classifier/1/`.
The generator is the EMA generator with constant noise; see `tfstylegan.export.saved_model` for the
signatures (seed -> uint8 images; `from_z` for exact official z vectors).
"""

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


def main(argv):
    from tfstylegan.export.saved_model import export_checkpoint_generator, export_classifier

    n_models = len(_CHECKPOINTS.value) + bool(_CLASSIFIER.value)
    if n_models == 0:
        raise UserError("Nothing to export: pass --checkpoint (generator) and/or --classifier.")
    if _NAME.value and n_models > 1:
        raise UserError(f"--name applies to a single model, but {n_models} are exported; drop --name to use "
                        "the default names.")
    for ckpt in _CHECKPOINTS.value:
        path = export_checkpoint_generator(ckpt, _OUT.value, model_name=_NAME.value, version=_VERSION.value,
                                           truncation_psi=_PSI.value, overwrite=_OVERWRITE.value)
        print(f"wrote {path}")
    if _CLASSIFIER.value:
        from classifier.model import load_classifier

        path = export_classifier(load_classifier(_CLASSIFIER.value), _OUT.value,
                                 model_name=_NAME.value or "classifier", version=_VERSION.value,
                                 overwrite=_OVERWRITE.value)
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
