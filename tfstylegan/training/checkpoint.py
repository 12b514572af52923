"""Run folders and checkpoints: the contract other modules use to find and load trained networks.

Layout (docs/ARCHITECTURE.md, "Training runs and checkpoints"):

    <run>/run.json                  the resolved settings (preset, classes, data, options)
    <run>/checkpoints/ckpt-<N>.*    tf.train.Checkpoint written by tf.train.CheckpointManager
    <run>/checkpoints/checkpoint    the manager's state file (which ckpt is the latest)
    <run>/checkpoints/run.json      a copy of run.json: a checkpoint folder is self-describing
    <run>/checkpoints/best/         the best snapshot by the run's --best_metric (a checkpoint folder
                                    of its own, hard links to the ckpt-N files: never rotated out)
    <run>/best.json                 which checkpoint is the best, its metric and value

Checkpoint specs (`resolve_checkpoint`), accepted wherever a checkpoint is loaded:
`RUN` (the latest checkpoint of a run folder, its checkpoints/ folder or an imported folder),
`RUN/ckpt-N` (that checkpoint, also when only the best/ copy is left) and `RUN@best`.

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

(Over 400 lines on purpose: everything that reads or writes a checkpoint, so that verification,
fall-back to an intact checkpoint and debris removal have one home.)
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfstylegan.config import Preset
from tfstylegan.networks import Generator, build_networks
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, remove_stale_temporaries, write_json

CHECKPOINT_DIR = "checkpoints"
RUN_INFO = "run.json"
BEST_DIR = "best"
BEST_INFO = "best.json"
_CKPT_NAME = re.compile(r"^ckpt-(\d+)$")
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
    """run.json of a run folder, its `checkpoints/` folder, or an imported checkpoint folder (or a spec of one)."""
    path = split_checkpoint_spec(path)[0]
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


def split_checkpoint_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """'RUN' -> (RUN, None); 'RUN@best' -> (RUN, 'best'); 'RUN/ckpt-N' or 'RUN/checkpoints/ckpt-N' -> (.., 'ckpt-N')."""
    s = os.fspath(spec)
    if s.endswith("@best"):
        return Path(s[:-len("@best")] or "."), "best"
    path = Path(s)
    if _CKPT_NAME.match(path.name) and not path.is_dir():
        return path.parent, path.name
    return path, None


def checkpoint_names(folder: str | os.PathLike) -> list[str]:
    """The complete `ckpt-N` checkpoints in a folder (those with an .index), by N."""
    names = [p.name[:-len(".index")] for p in Path(folder).glob("ckpt-*.index")]
    return sorted((n for n in names if _CKPT_NAME.match(n)), key=lambda n: int(n.split("-")[1]))


def resolve_checkpoint(spec: str | os.PathLike) -> tuple[Path, str]:
    """(folder, checkpoint prefix) of a spec: `RUN` (latest), `RUN/ckpt-N` or `RUN@best`.

    `folder` is what `load_run_info` reads; the prefix is what `tf.train.Checkpoint.restore` takes,
    e.g. ('runs/00000-x', 'runs/00000-x/checkpoints/ckpt-12').
    """
    folder, which = split_checkpoint_spec(spec)
    if which is None:
        return folder, latest_checkpoint(folder)
    ckpt_dir = checkpoint_dir(folder)
    best_dir = ckpt_dir / BEST_DIR
    if which == "best":
        prefix = tf.train.latest_checkpoint(str(best_dir)) if best_dir.is_dir() else None
        if prefix is None:
            raise UserError(f"{spec}: {folder} has no best snapshot ({best_dir} is missing): it was trained "
                            "without --metrics. Pass the run folder (its latest checkpoint) or RUN/ckpt-N.")
        return folder, prefix
    for d in (ckpt_dir, best_dir):
        if (d / f"{which}.index").is_file():
            return folder, str(d / which)
    known = checkpoint_names(ckpt_dir) + [f"{n} (best)" for n in checkpoint_names(best_dir)]
    raise UserError(f"{spec}: {ckpt_dir} has no checkpoint {which}; it has {', '.join(known) or 'none'}. "
                    f"Older checkpoints are rotated out (train_stylegan --keep_checkpoints).")


def read_best(path: str | os.PathLike) -> dict | None:
    """The best-snapshot record (metric, value, checkpoint, kimg, ...) of a run or checkpoint folder, or None."""
    folder = split_checkpoint_spec(path)[0]
    folder = folder / CHECKPOINT_DIR if (folder / CHECKPOINT_DIR).is_dir() else folder
    record = folder / BEST_DIR / BEST_INFO
    if not record.is_file():
        return None
    try:
        with open(record, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{record} is corrupt ({e}); delete the best/ folder to start the best record afresh.") \
            from None


def keep_best(ckpt_prefix: str, run_info: dict, record: dict) -> str:
    """Copies checkpoint `ckpt_prefix` into `<its folder>/best/` (outside the rotation); returns the copy's prefix.

    The files are hard links where the filesystem allows (no extra space; a rotated-out checkpoint
    then lives on in best/), copies otherwise. The folder is replaced atomically with its own
    `checkpoint` state file, run.json and best.json (`record`), so it loads as a checkpoint folder.
    """
    src = Path(ckpt_prefix)
    files = [f for f in src.parent.glob(src.name + ".*") if f.is_file()]
    if not any(f.name == src.name + ".index" for f in files):
        raise UserError(f"{ckpt_prefix} is not a complete checkpoint (no .index file).")
    best_dir = src.parent / BEST_DIR
    with atomic_dir(best_dir, overwrite=True) as tmp:
        for f in files:
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
        (tmp / "checkpoint").write_text(f'model_checkpoint_path: "{src.name}"\n'
                                        f'all_model_checkpoint_paths: "{src.name}"\n', encoding="utf-8")
        write_json(tmp / RUN_INFO, run_info)
        write_json(tmp / BEST_INFO, record)
    return str(best_dir / src.name)


def holds_training_state(spec: str | os.PathLike) -> bool:
    """True if the newest readable checkpoint of a spec is a training one (resume continues its run)."""
    folder, which = split_checkpoint_spec(spec)
    prefixes = [resolve_checkpoint(spec)[1]] if which else checkpoint_candidates(checkpoint_dir(folder))
    for prefix in prefixes:
        try:
            return is_training_checkpoint(prefix)
        except DAMAGE_ERRORS:
            continue
    return False


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
    """Restores the networks named in `networks` ({'G': G, ...}) from a checkpoint, nothing else.

    Every loader (generate, export, evaluate, project, resume from networks) comes through here:
    a damaged checkpoint or one holding NaN/inf weights (a diverged run) is refused with one line.
    """
    try:
        names = [n for n, _ in tf.train.list_variables(ckpt_prefix)]
        missing = [k for k in networks if not any(n.startswith(f"{k}/") for n in names)]
        if missing:
            raise UserError(f"{ckpt_prefix} has no {', '.join(missing)}; it is not a tfstylegan checkpoint.")
        status = networks_checkpoint(**networks).restore(ckpt_prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except DAMAGE_ERRORS as e:
        raise UserError(f"{ckpt_prefix} {describe_damage(e)}. {_other_checkpoints_hint(ckpt_prefix)}") from None
    bad = nonfinite_variables(networks)
    if bad:
        raise UserError(f"{ckpt_prefix} holds non-finite weights (NaN/inf in {len(bad)} tensors, e.g. {bad[0]}): "
                        "its run diverged before this snapshot and the model would give black or noise images. "
                        f"{_other_checkpoints_hint(ckpt_prefix)}")


def load_generator(path: str | os.PathLike, which: str = "G_ema"):
    """(Generator, run_info) restored from checkpoint spec `path` (`RUN`: latest, `RUN/ckpt-N`, `RUN@best`).

    `which` is 'G_ema' (the one to sample from) or 'G'.
    """
    if which not in ("G", "G_ema"):
        raise UserError(f"which must be 'G' or 'G_ema'. Received: which={which!r}")
    info = load_run_info(path)
    G = Generator(preset_of(info).generator, name=which)
    restore_networks(resolve_checkpoint(path)[1], {which: G})
    return G, info


def load_networks(path: str | os.PathLike):
    """(G, D, G_ema, run_info) restored from checkpoint spec `path` (`RUN`: latest, `RUN/ckpt-N`, `RUN@best`)."""
    info = load_run_info(path)
    G, D, G_ema = build_networks(preset_of(info))
    restore_networks(resolve_checkpoint(path)[1], {"G": G, "D": D, "G_ema": G_ema})
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


# -- integrity: damaged, non-finite and half-written checkpoints --------------------------------------------------

# What reading a damaged checkpoint raises: IndexError for a truncated .data file ("Read less bytes than
# requested"), DataLossError/OpError for a checksum mismatch, a damaged .index or a missing file.
DAMAGE_ERRORS = (tf.errors.OpError, IndexError)
_TF_TEMP = re.compile(r"^(ckpt-\d+_temp|checkpoint\.tmp[0-9a-f]+|.*\.tempstate\d*)$")


class DiskFull(UserError):
    """No space left while writing a checkpoint (the partial files are removed; older checkpoints are intact)."""


def describe_damage(error: BaseException) -> str:
    """One phrase for why a checkpoint cannot be read, e.g. 'is truncated (...)'."""
    msg = str(error).strip()
    if isinstance(error, IndexError) or "Read less bytes" in msg:
        return "is truncated (its .data file is shorter than its .index says: a copy or a write was cut off)"
    if "Checksum does not match" in msg:
        return "is damaged (a checksum does not match: a flipped bit or a partial overwrite)"
    if "sstable" in msg or "bad magic" in msg or "corrupt" in msg.lower():
        return "has a damaged .index file"
    if "No such file" in msg or isinstance(error, tf.errors.NotFoundError):
        missing = re.search(r"(\S+?);? No such file", msg)
        return f"is incomplete (missing {Path(missing.group(1)).name if missing else 'a file'})"
    first = msg.splitlines()[0][:200] if msg else ""
    return f"cannot be read ({type(error).__name__}: {first})"


def _other_checkpoints_hint(ckpt_prefix: str) -> str:
    folder, name = Path(ckpt_prefix).parent, Path(ckpt_prefix).name
    others = [n for n in reversed(checkpoint_names(folder)) if n != name]
    if not others:
        return "There is no other checkpoint beside it."
    return (f"Other checkpoints in {folder}: {', '.join(others)}; pass one as {folder}/{others[0]} "
            "(or resume training, which falls back to the newest intact one).")


def nonfinite_variables(networks: dict) -> list[str]:
    """'<net>/<layer path>' of every floating-point variable holding NaN or inf, for {'G': G, ...}."""
    bad = []
    for key, net in networks.items():
        for path, v in variables_by_path(net).items():
            if np.dtype(v.dtype).kind == "f" and not np.isfinite(np.asarray(v.numpy())).all():
                bad.append(f"{key}/{path}")
    return bad


def verify_checkpoint(ckpt_prefix: str) -> str | None:
    """Why a checkpoint is unusable, or None: reads every tensor (checksums verified) and checks it is finite."""
    try:
        reader = tf.train.load_checkpoint(ckpt_prefix)
        nonfinite = []
        for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
            value = reader.get_tensor(name)
            if dtype.is_floating and not np.isfinite(value).all():
                nonfinite.append(name.split("/.ATTRIBUTES")[0])
    except DAMAGE_ERRORS as e:
        return describe_damage(e)
    if nonfinite:
        return f"holds NaN/inf values ({len(nonfinite)} tensors, e.g. {nonfinite[0]}): its run had diverged"
    return None


def checkpoint_candidates(folder: str | os.PathLike) -> list[str]:
    """Checkpoint prefixes of a folder, newest first: those its `checkpoint` state file names, else every ckpt-N."""
    folder = Path(folder)
    state = tf.train.get_checkpoint_state(str(folder)) if (folder / "checkpoint").is_file() else None
    if state is None or not state.model_checkpoint_path:
        return [str(folder / n) for n in reversed(checkpoint_names(folder))]
    paths = [state.model_checkpoint_path] + [p for p in reversed(state.all_model_checkpoint_paths)
                                             if p != state.model_checkpoint_path]
    return [p if os.path.isabs(p) else str(folder / p) for p in paths]


def newest_intact_checkpoint(spec: str | os.PathLike, say=None) -> str:
    """The checkpoint to resume from: the newest intact one of a run (or exactly the one a spec names).

    Each damaged or non-finite checkpoint skipped is reported with one line through `say`
    (default: stderr), naming the checkpoint, why, and the one used instead.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    folder, which = split_checkpoint_spec(spec)
    if which is not None:  # RUN/ckpt-N or RUN@best: that one, or a clear refusal
        prefix = resolve_checkpoint(spec)[1]
        reason = verify_checkpoint(prefix)
        if reason is not None:
            raise UserError(f"{prefix} {reason}. {_other_checkpoints_hint(prefix)}")
        return prefix
    candidates = checkpoint_candidates(checkpoint_dir(folder))
    if not candidates:
        return latest_checkpoint(folder)  # raises the "no checkpoint yet" message
    skipped = []
    for prefix in candidates:
        reason = verify_checkpoint(prefix)
        if reason is None:
            for bad, why in skipped:
                say(f"warning: {bad} {why}; resuming from {Path(prefix).name}, the newest intact checkpoint.")
            return prefix
        skipped.append((prefix, reason))
    raise UserError(f"{checkpoint_dir(folder)} has no intact checkpoint: "
                    + "; ".join(f"{Path(p).name} {why}" for p, why in skipped)
                    + ". Start a new run (or resume from another run's checkpoint).")


def remove_checkpoint_debris(folder: str | os.PathLike) -> list[str]:
    """Deletes what killed saves left in a run's own checkpoint folder; returns the names removed.

    That is TensorFlow's temporaries (`ckpt-N_temp/`, `*.tempstate*`, `checkpoint.tmp*`), the
    toolkit's (`remove_stale_temporaries`) and `ckpt-N.*` files newer than every checkpoint the
    state file names (written by a save killed before the state file was updated: never used).
    Only call it on a folder this process owns (never on another run's folder used as --resume).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p.name for p in remove_stale_temporaries(folder)]
    state = tf.train.get_checkpoint_state(str(folder)) if (folder / "checkpoint").is_file() else None
    referenced = {Path(p).name for p in (state.all_model_checkpoint_paths if state else [])}
    if state is not None and state.model_checkpoint_path:
        referenced.add(Path(state.model_checkpoint_path).name)
    newest = max((int(n.split("-")[1]) for n in referenced if _CKPT_NAME.match(n)), default=-1)
    for entry in sorted(folder.iterdir()):
        stem = entry.name.split(".")[0]
        unreferenced_newer = (_CKPT_NAME.match(stem) and stem not in referenced and int(stem.split("-")[1]) > newest
                              and entry.is_file())
        if _TF_TEMP.match(entry.name) or unreferenced_newer:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name + "/")
            else:
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
    return removed


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # TensorFlow's writers report ENOSPC as ResourceExhaustedError (with an empty message in TF 2.21)
    return isinstance(error, tf.errors.ResourceExhaustedError) or "No space left" in str(error)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MB"


def disk_full_message(path: str | os.PathLike, needed_bytes: int | None, previous: str | None) -> str:
    """The one line shown when a write runs out of space."""
    path = Path(path)
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    need = f"it needs about {_mb(needed_bytes)}, " if needed_bytes else ""
    prev = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint was saved"
    return (f"No space left on device while writing {path} ({need}{_mb(free)} free there). The partial files "
            f"were removed and {prev}. Free some space, then resume the run (train_stylegan --resume <run>).")


def save_checkpoint(manager: tf.train.CheckpointManager, number: int, run_info: dict | None = None,
                    needed_bytes: int | None = None) -> str:
    """`manager.save(checkpoint_number=number)` (+ the run.json copy) that never leaves half a checkpoint.

    On any failure the partial `ckpt-N` files are removed (the state file still names the previous,
    complete checkpoint); a full disk raises `DiskFull` with the path and the space needed.
    """
    folder = Path(manager.directory)
    previous = manager.latest_checkpoint
    try:
        prefix = manager.save(checkpoint_number=number)
    except (tf.errors.OpError, OSError) as e:
        remove_checkpoint_debris(folder)
        if _is_disk_full(e):
            raise DiskFull(disk_full_message(folder / f"ckpt-{number}", needed_bytes, previous)) from None
        raise
    if run_info is not None:
        try:
            write_json(folder / RUN_INFO, run_info)
        except OSError as e:
            if _is_disk_full(e):
                raise DiskFull(disk_full_message(folder / RUN_INFO, None, prefix)) from None
            raise
    return prefix

