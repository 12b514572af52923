"""Writes the built-in phantom dataset (synthetic T1c slices, 3 tumor classes) in the Figshare layout.

Example:
  python -m launchers.make_phantom --out data/phantom_raw --patients_per_class 30 --slices_per_patient 4
  python -m launchers.prepare_data --source data/phantom_raw --out data/phantom32 --resolution 32

See `tfstylegan.data.phantom`.
"""

from absl import flags

from tfstylegan.data.phantom import write_phantom_dataset
from tfstylegan.utils.cli import run

_OUT = flags.DEFINE_string("out", None, "Output folder of .mat files (written atomically).", required=True)
_PATIENTS = flags.DEFINE_integer("patients_per_class", 30, "Phantom patients per tumor class.")
_SLICES = flags.DEFINE_integer("slices_per_patient", 4, "Slices per patient.")
_SEED = flags.DEFINE_integer("seed", 0, "Generator seed (same seed, same files).")
_SIZE = flags.DEFINE_integer("size", 512, "Slice size in pixels (Figshare: 512).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")
_WORKERS = flags.DEFINE_integer("workers", None, "Processes writing patients in parallel (default: one per core; "
                                "the files are the same for any number).")


def main(argv):
    summary = write_phantom_dataset(_OUT.value, num_patients_per_class=_PATIENTS.value,
                                    slices_per_patient=_SLICES.value, seed=_SEED.value, size=_SIZE.value,
                                    overwrite=_OVERWRITE.value, workers=_WORKERS.value)
    print(f"wrote {_OUT.value}: {summary['num_slices']} slices "
          f"({', '.join(f'{c} {n}' for c, n in summary['counts'].items())})")


if __name__ == "__main__":
    run(main)
