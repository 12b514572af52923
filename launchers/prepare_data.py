"""Prepares a dataset for training: Figshare .mat files / zips, class folders, or DICOM / NIfTI
listed in a labels CSV -> TFRecord shards.

Examples:
  python -m launchers.prepare_data --source ~/figshare_download --out data/figshare256
  python -m launchers.prepare_data --source brainTumorDataPublic_1-766.zip,...,cvind.mat \\
      --out data/f32 --resolution 32 --fold 1
  python -m launchers.prepare_data --source kaggle/Training --format folders --out data/kaggle
  python -m launchers.prepare_data --source hospital/labels.csv --out data/hospital256 --square pad

Writes `<out>/{train,val,test}/<class>-*.tfrecord`, `manifest.json` and `preview_<class>.png`
(docs/ARCHITECTURE.md, "Prepared dataset layout"); see `tfstylegan.data.prepare.prepare`.
"""

from absl import flags

from tfstylegan.data.prepare import prepare
from tfstylegan.utils.cli import run

_SOURCE = flags.DEFINE_string("source", None, "Figshare folder / zip files / .mat files (comma-separated "
                              "allowed), a folder of class subfolders, or a labels .csv (columns file, "
                              "class, patient_id, optional slices, mask) listing DICOM series / NIfTI "
                              "volumes.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (written atomically).", required=True)
_FORMAT = flags.DEFINE_enum("format", "auto", ["auto", "figshare", "folders", "csv"],
                            "Source format ('auto': csv for a .csv file, else figshare or folders).")
_RESOLUTION = flags.DEFINE_integer("resolution", 256, "Output resolution (power of two; 32 = the "
                                   "study's first stage).")
_CROP = flags.DEFINE_float("crop_fraction", 0.25, "Fraction cut from each side before resizing "
                           "(0.25 = 128 px of 512).")
_BIT_DEPTH = flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "PNG bit depth of the stored images.")
_SPLIT = flags.DEFINE_string("split", "0.8,0.1,0.1", "Patient-wise train,val,test fractions.")
_FOLD = flags.DEFINE_integer("fold", None, "Use cvind.mat fold k (1-5) as test, fold k+1 as val.")
_SEED = flags.DEFINE_integer("seed", 0, "Split seed.")
_SKIP_BAD = flags.DEFINE_bool("skip_bad", False,
                              "Skip bad files (listed in the manifest) instead of failing.")
_PERCENTILES = flags.DEFINE_string("percentiles", "0.5,99.5", "Per-image intensity percentiles "
                                   "mapped to black and white ('0,100' = min/max).")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 1024, "Max images per TFRecord shard.")
_MIN_SIZE = flags.DEFINE_integer("min_size", 64, "Reject images with a side shorter than this (px).")
_SQUARE = flags.DEFINE_enum("square", "crop", ["crop", "pad"], "Non-square slices: central crop of the "
                            "longer side, or pad the shorter side with the background.")
_SLICE_AXIS = flags.DEFINE_enum("slice_axis", "axial", ["axial", "coronal", "sagittal"],
                                "NIfTI volumes: the axis to slice along, after reorientation to RAS+ "
                                "(axial = the last axis).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


def main(argv):
    manifest = prepare(
        source=_SOURCE.value, out=_OUT.value, format=_FORMAT.value, resolution=_RESOLUTION.value,
        crop_fraction=_CROP.value, bit_depth=int(_BIT_DEPTH.value), split=_SPLIT.value,
        fold=_FOLD.value, seed=_SEED.value, skip_bad=_SKIP_BAD.value, percentiles=_PERCENTILES.value,
        shard_size=_SHARD_SIZE.value, min_size=_MIN_SIZE.value, overwrite=_OVERWRITE.value,
        square=_SQUARE.value, slice_axis=_SLICE_AXIS.value)
    total = sum(manifest["counts"].values())
    per_class = ", ".join(f"{c} {n}" for c, n in manifest["counts"].items())
    per_split = ", ".join(f"{s} {sum(v.values())}" for s, v in manifest["split_counts"].items())
    skipped = manifest["skipped"]
    print(f"wrote {_OUT.value}: {total} images ({per_class}); {per_split}"
          + (f"; skipped {len(skipped)} bad files (see manifest.json)" if skipped else ""))


if __name__ == "__main__":
    run(main)
