"""Train StyleGAN2 on a prepared dataset (one class, or one conditional model of all classes).

    python -m launchers.train_stylegan --data data/figshare256 --out runs --preset auto \
        --class_name glioma --kimg 5000 --mirror
    python -m launchers.train_stylegan --flagfile launchers/configs/figshare_256_glioma.cfg

Each run gets a numbered folder `<out>/00000-<desc>/` (run.json, checkpoints/, samples/,
tensorboard/, stats.jsonl). `--resume` takes a run folder, its checkpoints/ folder, or an
imported pretrained checkpoint (launchers/import_pretrained.py): a training checkpoint continues
exactly where it stopped (kimg and ADA p included); a networks-only one starts at kimg 0.
`--resume` also takes `RUN/ckpt-N` and `RUN@best`, and reuses the flags the resumed run recorded
(its run.json "options"): repeat only what should change, e.g. `--resume runs/00003-... --kimg 10000`.
Flags left unset keep the preset's (or, when resuming, the checkpoint's) values.

Snapshots and metrics (as the official `--metrics`): every `--snapshot_ticks` ticks a checkpoint
is written (the latest `--keep_checkpoints` are kept) and, with `--metrics fid,kid,pr,is`, scored
on `--metrics_images` generated vs real images in the judge's feature space
(`--metrics_classifier`) and/or ImageNet InceptionV3's (`--inception_weights`, a local file):
TensorBoard `Metrics/*`, `metrics.jsonl`, and `best.json` + `checkpoints/best/` for the best one
(`--best_metric`), loadable anywhere as `RUN@best`. `--snapshot_minutes` adds a checkpoint at the
first tick end that many minutes after the previous one, whatever the ticks.

Stopping: SIGTERM (schedulers, `docker stop`) or Ctrl-C saves a checkpoint after the current
step and exits with 143 or 130 (128 + the signal); resume with `--resume RUN`. A run that goes
NaN/inf stops with exit status 1, naming the tick and the last good checkpoint, and saves nothing
after it. Resuming from a damaged checkpoint falls back to the newest intact one, saying so.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from absl import flags

from tfstylegan.config import PRESET_NAMES
from tfstylegan.data.classes import class_layout
from tfstylegan.training.distribute import STRATEGY_NAMES
from tfstylegan.training.run_dirs import next_run_dir, run_description
from tfstylegan.utils import cli
from tfstylegan.utils.errors import UserError

_DATA = flags.DEFINE_string("data", None, "Prepared dataset folder (launchers/prepare_data.py).")
_OUT = flags.DEFINE_string("out", "runs", "Parent folder of the numbered run folders.")
_PRESET = flags.DEFINE_enum("preset", "auto", list(PRESET_NAMES), "Network/training preset.")
_CLASS = flags.DEFINE_string("class_name", None, "Train one class (the study's per-class models).")
_COND = flags.DEFINE_bool("conditional", False, "One class-conditional model of all classes.")
_MASK = flags.DEFINE_bool("with_mask", False, "Train on image + tumor mask (2 channels).")
_KIMG = flags.DEFINE_float("kimg", None, "Total training length in thousands of real images.")
_BATCH = flags.DEFINE_integer("batch", None, "Global batch size (over all replicas).")
_BATCH_GPU = flags.DEFINE_integer("batch_gpu", None, "Per-replica micro-batch (ADA's --batch-gpu): gradients are "
                                  "accumulated over micro-batches, so a smaller GPU trains the same --batch.",
                                  lower_bound=1)
_GAMMA = flags.DEFINE_float("gamma", None, "R1 regularisation weight.")
_AUG = flags.DEFINE_enum("aug", None, ["ada", "fixed", "none"], "Discriminator augmentation.")
_P = flags.DEFINE_float("p", None, "Augmentation probability for --aug fixed (initial p for ada).")
_TARGET = flags.DEFINE_float("target", None, "ADA target for the sign of D on reals (0.6).")
_ADA_KIMG = flags.DEFINE_float("ada_kimg", None, "ADA speed: kimg for p to go 0 -> 1 (500; 100 for transfer).")
_MIRROR = flags.DEFINE_bool("mirror", None, "Add x-flipped copies of the reals.")
_RESUME = flags.DEFINE_string("resume", None, "Run folder, its checkpoints/ folder, or an imported checkpoint.")
_FREEZE_D = flags.DEFINE_integer("freeze_d", None, "Freeze-D: keep this many highest-resolution D blocks fixed.")
_TICK = flags.DEFINE_float("kimg_per_tick", None, "Progress/TensorBoard interval in kimg.")
_SNAP = flags.DEFINE_integer("snapshot_ticks", None, "Checkpoint every this many ticks.")
_SNAP_MIN = flags.DEFINE_float("snapshot_minutes", 30.0, "Also checkpoint at the first tick end this many minutes "
                               "after the previous checkpoint (0: only every --snapshot_ticks).", lower_bound=0.0)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(STRATEGY_NAMES),
                              "tf.distribute strategy (multi_worker reads TF_CONFIG).")
_MP = flags.DEFINE_bool("mixed_precision", None, "mixed_float16 in the 4 top blocks (conv_clamp 256, loss scaling). "
                        "Default: on where a GPU is present for the presets that use it (auto, stylegan2, paper*, "
                        "cifar), off on CPU; --nomixed_precision turns it off.")
_TF32 = flags.DEFINE_bool("allow_tf32", None, "Allow TF32 matmuls/convolutions on Ampere+ GPUs (off by default, as "
                          "the reference: R1 and path length need float32 precision).")
_XLA = flags.DEFINE_bool("xla", None, "Compile the training phases with XLA (jit_compile).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed.")
_TB = flags.DEFINE_bool("tensorboard", True, "Write TensorBoard event files.")
_DETERMINISTIC = flags.DEFINE_bool("deterministic", False, "Deterministic TF ops (bit-exact resume on CPU).")
_KEEP = flags.DEFINE_integer("keep_checkpoints", 3, "Keep the latest this many checkpoints (0 = all); the best "
                             "one (--metrics) is kept beside them.", lower_bound=0)
_METRICS = flags.DEFINE_list("metrics", [], "Metrics at every checkpoint: fid, kid, pr (precision/recall), is "
                             "(judge only), e.g. --metrics fid,kid,pr.")
_METRICS_CLASSIFIER = flags.DEFINE_string("metrics_classifier", None, "The judge (classifier.keras) whose "
                                          "features --metrics use (launchers/train_classifier.py).")
_INCEPTION = flags.DEFINE_string("inception_weights", None, "Local notop ImageNet InceptionV3 weights (.h5) for "
                                 "--metrics on standard Inception features; nothing is downloaded.")
_METRICS_IMAGES = flags.DEFINE_integer("metrics_images", 256, "Real and generated images per metric evaluation "
                                       "(small for CPU; 10000+ on a GPU for stable FID).", lower_bound=2)
_METRICS_SPLIT = flags.DEFINE_enum("metrics_split", "train", ["train", "val"], "Real split the metrics compare with.")
_BEST = flags.DEFINE_string("best_metric", None, "The metric that picks checkpoints/best (e.g. fid_judge, "
                            "recall_inception); default: the first one computed.")

# Flags recorded in run.json "options" and reused by `--resume RUN` unless given again.
RECORDED_FLAGS = (
    "data", "out", "preset", "class_name", "conditional", "with_mask", "kimg", "batch", "gamma", "aug", "p",
    "target", "ada_kimg", "mirror", "resume", "freeze_d", "kimg_per_tick", "snapshot_ticks", "snapshot_minutes",
    "strategy",
    "mixed_precision", "allow_tf32", "xla", "seed", "tensorboard", "deterministic", "keep_checkpoints", "metrics",
    "metrics_classifier", "inception_weights", "metrics_images", "metrics_split", "best_metric", "batch_gpu")


def reuse_recorded_flags(resume: str) -> dict:
    """Sets every flag the resumed run recorded and this command line does not give; returns those set."""
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.training.checkpoint import load_run_info

    info = load_run_info(resume)
    recorded = dict((info.get("options") or {}).get("flags") or {})
    if recorded and info.get("data"):
        recorded["data"] = info["data"]  # the absolute path: the command may run from another folder
    reused = {}
    for name in RECORDED_FLAGS:
        if name == "resume" or name not in recorded or flags.FLAGS[name].present:
            continue
        if flags.FLAGS[name].value != recorded[name]:
            setattr(flags.FLAGS, name, recorded[name])
            reused[name] = recorded[name]
    return reused


def build_snapshot_metrics():
    """`SnapshotMetrics` from --metrics and its feature spaces (the judge, InceptionV3), or None."""
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.training.snapshot_metrics import MetricsConfig, SnapshotMetrics, parse_metrics

    metrics = parse_metrics(_METRICS.value)
    if not metrics:
        if _METRICS_CLASSIFIER.value or _INCEPTION.value or _BEST.value:
            raise UserError("--metrics_classifier, --inception_weights and --best_metric need --metrics "
                            "(e.g. --metrics fid,kid,pr).")
        return None
    config = MetricsConfig(metrics, num_images=_METRICS_IMAGES.value, split=_METRICS_SPLIT.value,
                           best_metric=_BEST.value)
    spaces = {}
    if _METRICS_CLASSIFIER.value:
        # here: TensorFlow, after the flags are parsed, and only with --metrics_classifier
        from classifier.model import load_classifier
        from tfstylegan.apps.evaluation.features import Judge

        spaces["judge"] = Judge(load_classifier(_METRICS_CLASSIFIER.value)).features_and_probs
    if _INCEPTION.value:
        from tfstylegan.apps.evaluation.features import InceptionFeatures  # here: only with --inception_weights

        spaces["inception"] = InceptionFeatures(_INCEPTION.value)
    return SnapshotMetrics(config, spaces)


def resumed_preset(resume: str) -> str | None:
    """The preset name a training checkpoint continues with (its own), or None for a networks-only one.

    A training checkpoint keeps its preset: another --preset is refused (not silently ignored).
    """
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.training import checkpoint as ckpt_lib

    if not ckpt_lib.holds_training_state(resume):
        return None
    stored = ckpt_lib.preset_of(ckpt_lib.load_run_info(resume)).name
    if flags.FLAGS["preset"].present and _PRESET.value != stored:
        raise UserError(f"--preset {_PRESET.value}: --resume {resume} continues a '{stored}' run, whose settings "
                        "come from its checkpoint. Drop --preset; change single settings with --kimg, --gamma, "
                        "--batch, ... (or start a new run to train with another preset).")
    return stored


def main(argv):
    del argv
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.training.guards import TrainingInterrupted
    from tfstylegan.training.loop import train

    for name in ("kimg", "gamma", "p", "target", "ada_kimg", "kimg_per_tick", "snapshot_minutes"):
        value = flags.FLAGS[name].value
        if value is not None and not math.isfinite(value):
            raise UserError(f"--{name} must be a finite number. Received: --{name}={value}")

    if _RESUME.value:
        reused = reuse_recorded_flags(_RESUME.value)
        if reused:
            print("resume: reusing the run's recorded flags " +
                  " ".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in reused.items()),
                  flush=True)
    if not _DATA.value:
        raise UserError("--data is required: a folder written by launchers/prepare_data.py.")
    if not Path(_DATA.value).is_dir():
        raise UserError(f"--data {_DATA.value} does not exist. Prepare a dataset with launchers/prepare_data.py.")
    overrides = {"total_kimg": _KIMG.value, "batch_size": _BATCH.value, "batch_gpu": _BATCH_GPU.value,
                 "r1_gamma": _GAMMA.value,
                 "aug": _AUG.value, "aug_p": _P.value, "ada_target": _TARGET.value, "ada_kimg": _ADA_KIMG.value,
                 "mirror": _MIRROR.value, "freeze_d": _FREEZE_D.value, "kimg_per_tick": _TICK.value,
                 "snapshot_ticks": _SNAP.value, "mixed_precision": _MP.value, "allow_tf32": _TF32.value,
                 "xla": _XLA.value,
                 "seed": _SEED.value}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # Validate the data and class choice before making a run folder.
    from tfstylegan.data.pipeline import read_manifest  # here: TensorFlow, as above

    class_layout(read_manifest(_DATA.value), _DATA.value, _CLASS.value, _COND.value)
    snapshot_metrics = build_snapshot_metrics()
    preset_name = (resumed_preset(_RESUME.value) if _RESUME.value else None) or _PRESET.value
    desc = run_description(preset_name, _CLASS.value, _COND.value, _MASK.value, overrides.get("batch_size"),
                           overrides.get("aug"), resumed=_RESUME.value is not None)
    run_dir = next_run_dir(_OUT.value, desc)
    print(f"run folder: {run_dir}", flush=True)
    options = {name: flags.FLAGS[name].value for name in RECORDED_FLAGS}
    try:
        train(run_dir, _PRESET.value, _DATA.value, class_name=_CLASS.value, conditional=_COND.value,
              with_mask=_MASK.value, resume=_RESUME.value, strategy=_STRATEGY.value, train_overrides=overrides,
              tensorboard=_TB.value, deterministic=_DETERMINISTIC.value, options={"flags": options},
              keep_checkpoints=_KEEP.value, snapshot_metrics=snapshot_metrics, snapshot_minutes=_SNAP_MIN.value)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr, flush=True)
        sys.exit(e.exit_code)  # 143 (SIGTERM) / 130 (SIGINT): an interrupted job, not a finished one
    except BaseException:
        if run_dir.is_dir() and not any(run_dir.iterdir()):  # stopped before writing anything: no empty folder
            run_dir.rmdir()
        raise
    print(f"done: {run_dir}", flush=True)


if __name__ == "__main__":
    cli.run(main)
