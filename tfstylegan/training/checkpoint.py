"""Run folders and checkpoints: the contract other modules use to find and load trained networks.

Layout (docs/ARCHITECTURE.md, "Training runs and checkpoints"):

    <run>/run.json                  the resolved settings (preset, classes, data, options)
    <run>/checkpoints/ckpt-<N>.*    tf.train.Checkpoint written by tf.train.CheckpointManager
    <run>/checkpoints/checkpoint    the manager's state file (which ckpt is the latest)
    <run>/checkpoints/run.json      a copy of run.json: a checkpoint folder is self-describing

A *training* checkpoint holds G, D, G_ema, opt_G, opt_D, augment (the ADA pipe with `p`),
ada (the controller's accumulators), state (step, cur_nimg, tick, pl_mean) and rng (the
`tf.random.Generator` every training draw derives from). A *networks* checkpoint
(`save_networks`, used by the pretrained importer) holds only G, D and G_ema; training
resumes from it with fresh optimizers at kimg 0.

Atomicity: `CheckpointManager.save` writes the `ckpt-N` files first (under temporary names,
renamed when complete) and only then rewrites the `checkpoint` state file (write to a
temporary file + rename), so `tf.train.latest_checkpoint` never names a half-written
checkpoint, whenever the process dies.

The data iterator is not stored: the training stream is a pure function of (seed, number of
images consumed) (`tfstylegan.data.stream.RealImageStream`), so a resumed run
rebuilds it at `cur_nimg`; this keeps checkpoints small (no shuffle buffer or image cache).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

from tfstylegan.config import Preset
from tfstylegan.networks import Generator, build_networks
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, write_json

CHECKPOINT_DIR = "checkpoints"
RUN_INFO = "run.json"
NETWORK_KEYS = ("G", "D", "G_ema")


def variables_by_path(net) -> dict:
    """Every variable of a Keras network keyed by its layer path, e.g. 'synthesis/b16/conv0/weight'.

    Keras 3 keeps sub-layers held in Python lists (synthesis blocks, D blocks, mapping layers)
    out of the TF object graph, so `tf.train.Checkpoint(G=G)` alone would miss most weights;
    checkpoints therefore hold networks as these explicit path -> variable maps.
    """
    out = {}

    def walk(layer, prefix):
        for v in list(layer._trainable_variables) + list(layer._non_trainable_variables):
            out[prefix + v.name] = v
        for sub in layer._layers:
            walk(sub, f"{prefix}{sub.name}/")

    walk(net, "")
    if len(out) != len(net.variables):
        raise ValueError(f"{net.name}: {len(net.variables)} variables but {len(out)} unique layer paths.")
    return out


class NetworkVariables(tf.Module):
    """A checkpointable view of a network: `by_path` maps layer paths to its variables."""

    def __init__(self, net):
        super().__init__(name=net.name)
        self.by_path = variables_by_path(net)


def networks_checkpoint(**networks) -> tf.train.Checkpoint:
    """`tf.train.Checkpoint(G=NetworkVariables(G), ...)` for networks given by name."""
    return tf.train.Checkpoint(**{k: NetworkVariables(v) for k, v in networks.items()})


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """The folder holding `ckpt-N.*` for a run folder, its `checkpoints/` folder, or an imported folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist. Pass a run folder (runs/00000-...), its checkpoints/ "
                        "folder, or a folder written by launchers/import_pretrained.py.")
    if path.is_dir() and (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    if path.is_dir() and ((path / "checkpoint").is_file() or (path / RUN_INFO).is_file()):
        return path
    raise UserError(f"{path} is neither a run folder (with checkpoints/) nor a checkpoint folder (with a "
                    "'checkpoint' state file and run.json). Pass the folder made by train_stylegan or "
                    "import_pretrained.")


def load_run_info(path: str | os.PathLike) -> dict:
    """run.json of a run folder, its `checkpoints/` folder, or an imported checkpoint folder."""
    path = Path(path)
    candidates = [path / RUN_INFO] if path.is_dir() else []
    if not (candidates and candidates[0].is_file()):
        candidates = [checkpoint_dir(path) / RUN_INFO, checkpoint_dir(path).parent / RUN_INFO]
    for candidate in candidates:
        if candidate.is_file():
            try:
                with open(candidate, encoding="utf-8") as f:
                    info = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"{candidate} is corrupt ({e}); it should be the run.json written by "
                                "train_stylegan or import_pretrained.") from None
            if not isinstance(info, dict) or "preset" not in info:
                raise UserError(f"{candidate} has no 'preset'; it is not a tfstylegan run.json.")
            return info
    raise UserError(f"No {RUN_INFO} in {path} (or its checkpoints/ folder): it is not a tfstylegan run.")


def latest_checkpoint(path: str | os.PathLike) -> str:
    """Path prefix of the newest complete checkpoint (e.g. '.../checkpoints/ckpt-3')."""
    folder = checkpoint_dir(path)
    ckpt = tf.train.latest_checkpoint(str(folder))
    if ckpt is None:
        raise UserError(f"{folder} holds no checkpoint yet (no 'checkpoint' state file naming a ckpt-N). "
                        "The run was stopped before its first snapshot; start it again.")
    return ckpt


def is_training_checkpoint(ckpt_prefix: str) -> bool:
    """True if the checkpoint holds the full training state (optimizers, step, ...), not only networks."""
    return any(name.startswith("state/") for name, _ in tf.train.list_variables(ckpt_prefix))


def preset_of(run_info: dict) -> Preset:
    """The resolved `Preset` stored in run.json."""
    try:
        return Preset.from_dict(run_info["preset"])
    except (KeyError, TypeError) as e:
        raise UserError(f"run.json has a malformed 'preset' ({e}).") from None


def restore_networks(ckpt_prefix: str, networks: dict) -> None:
    """Restores the networks named in `networks` ({'G': G, ...}) from a checkpoint, nothing else."""
    missing = [k for k in networks if not any(n.startswith(f"{k}/") for n, _ in tf.train.list_variables(ckpt_prefix))]
    if missing:
        raise UserError(f"{ckpt_prefix} has no {', '.join(missing)}; it is not a tfstylegan checkpoint.")
    status = networks_checkpoint(**networks).restore(ckpt_prefix)
    status.expect_partial()
    status.assert_existing_objects_matched()


def load_generator(path: str | os.PathLike, which: str = "G_ema"):
    """(Generator, run_info) restored from the latest checkpoint of `path`.

    `which` is 'G_ema' (the one to sample from) or 'G'.
    """
    if which not in ("G", "G_ema"):
        raise UserError(f"which must be 'G' or 'G_ema'. Received: which={which!r}")
    info = load_run_info(path)
    G = Generator(preset_of(info).generator, name=which)
    restore_networks(latest_checkpoint(path), {which: G})
    return G, info


def load_networks(path: str | os.PathLike):
    """(G, D, G_ema, run_info) restored from the latest checkpoint of `path`."""
    info = load_run_info(path)
    G, D, G_ema = build_networks(preset_of(info))
    restore_networks(latest_checkpoint(path), {"G": G, "D": D, "G_ema": G_ema})
    return G, D, G_ema, info


def save_networks(out_dir: str | os.PathLike, run_info: dict, G, D, G_ema, overwrite: bool = False) -> Path:
    """Writes a resumable checkpoint folder holding only the networks (and run.json), atomically.

    Training resumed from it starts with fresh optimizers at kimg 0.
    """
    if "preset" not in run_info:
        raise UserError("save_networks: run_info needs a 'preset' (Preset.to_dict()).")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        manager = tf.train.CheckpointManager(networks_checkpoint(G=G, D=D, G_ema=G_ema), str(tmp),
                                             max_to_keep=1)
        manager.save(checkpoint_number=0)
        write_json(Path(tmp) / RUN_INFO, run_info)
    return out_dir
