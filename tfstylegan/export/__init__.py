"""Serving export (TF Serving SavedModels) and import of the official StyleGAN2 TF1 pickles.

- `saved_model`: `export_generator`, `export_classifier`, `export_checkpoint_generator`.
- `legacy`: `load_official_pickle` (restricted unpickler, runs no code from the file),
  `convert_official_pickle`, `import_official_pickle`.
"""

from tfstylegan.export.legacy import (RestrictedUnpickler, convert_official_pickle, import_official_pickle,
                                      load_official_pickle)
from tfstylegan.export.saved_model import (export_checkpoint_generator, export_classifier, export_generator,
                                           seed_to_z_tf)

__all__ = ["RestrictedUnpickler", "load_official_pickle", "convert_official_pickle", "import_official_pickle",
           "export_generator", "export_classifier", "export_checkpoint_generator", "seed_to_z_tf"]
