"""The StyleGAN2 training loop (stylegan2-ada-pytorch `training_loop.py`): `train(...)`.

Run folder, resume, ticks with progress lines, sample grids, checkpoints, TensorBoard and stats.jsonl
around the `Trainer` (trainer.py) and its phases (phases.py).

Data: the real-image stream (`tfstylegan.data.stream.RealImageStream`) is a pure function of (seed,
images consumed), so a resumed run restarts the stream at `cur_nimg` without storing an iterator.
Each worker reads the whole global batch and feeds each local replica its slice.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.config import Preset, get_preset, resolve_preset
from tfstylegan.data.classes import class_layout
from tfstylegan.data.pipeline import read_manifest
from tfstylegan.data.stream import RealImageStream
from tfstylegan.networks import seed_to_z
from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training import guards
from tfstylegan.training.distribute import get_strategy
from tfstylegan.training.snapshot_metrics import BestSnapshot, SnapshotMetrics, metrics_row
from tfstylegan.training.summaries import RunReporter, grid_uint8, tensorboard_step_unit, tick_line
from tfstylegan.training.trainer import Trainer, build_trainer
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import remove_stale_temporaries, write_json
from tfstylegan.utils.memory import gpu_peak_memory_gb, host_peak_memory_gb

GRID_W, GRID_H = 8, 4  # fixed-seed sample grid (per class when conditional)
MAX_TO_KEEP = 3  # default --keep_checkpoints


def _is_chief(strategy) -> bool:
    """True on the worker that writes outputs (the only one without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True
    jobs = resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs)


def _networks_shape_check(info_preset: Preset, preset: Preset, source) -> None:
    g0, g1 = info_preset.generator, preset.generator
    for field in ("img_resolution", "img_channels", "c_dim"):
        if getattr(g0, field) != getattr(g1, field):
            raise UserError(f"--resume {source}: its networks have {field}={getattr(g0, field)} but this run "
                            f"needs {field}={getattr(g1, field)} (from the dataset and --conditional/--with_mask). "
                            "Resume from a matching checkpoint or change the data/flags.")


def train(run_dir: str | os.PathLike, preset: Preset | str, data_dir: str | os.PathLike, *,
          class_name: str | None = None, conditional: bool = False, with_mask: bool = False,
          resume: str | os.PathLike | None = None, strategy: str | tf.distribute.Strategy = "default",
          train_overrides: dict | None = None, tensorboard: bool = True, deterministic: bool = False,
          verbose: bool = True, options: dict | None = None, on_finish=None, keep_checkpoints: int = MAX_TO_KEEP,
          snapshot_metrics: SnapshotMetrics | None = None, snapshot_minutes: float | None = None) -> dict:
    """Trains StyleGAN2 into `run_dir` (created if missing); returns the last tick's stats.

    Stops early (tfstylegan.training.guards) with `guards.TrainingDiverged` when the run produces NaN/inf
    (nothing saved after the last good checkpoint) and with `guards.TrainingInterrupted` after SIGTERM or
    SIGINT (a checkpoint saved at the next step boundary; resuming continues exactly).

    Args:
      run_dir: the run folder (run.json, checkpoints/, samples/, tensorboard/, stats.jsonl).
        If it already holds checkpoints (a run that was killed), training continues from the
        latest one unless `resume` names another source.
      preset: a `Preset` or a preset name; adapted to the data's resolution and channels.
      data_dir: a prepared dataset (`launchers/prepare_data.py`).
      class_name: train one class (the study's per-class models); None = all classes.
      conditional: one model for all classes (c_dim = number of classes).
      with_mask: image + tumor mask as two channels.
      resume: a run folder, its checkpoints/ folder, or an imported pretrained checkpoint folder.
        A training checkpoint continues exactly (step, kimg, ADA p, optimizers, RNG; its preset
        is used, with `train_overrides` applied); a networks-only one starts at kimg 0 with
        fresh optimizers.
      strategy: 'default' | 'mirrored' | 'multi_worker' or a `tf.distribute.Strategy`.
      train_overrides: TrainConfig fields to change, e.g. {'batch_size': 8, 'total_kimg': 100}.
      tensorboard: write TensorBoard event files.
      deterministic: `tf.config.experimental.enable_op_determinism()` (bit-exact resume on CPU).
      verbose: print one progress line per tick.
      options: extra entries recorded in run.json "options" (e.g. the launcher's flags).
      on_finish: optional callable given the `Trainer` when training ends (tests, notebooks).
      keep_checkpoints: how many of the latest checkpoints to keep (0 = all); the best one (with
        `snapshot_metrics`) is kept beside them in checkpoints/best/.
      snapshot_metrics: metrics computed at every checkpoint (`SnapshotMetrics`, built by the
        caller with its feature spaces): TensorBoard `Metrics/*`, metrics.jsonl, best.json.
      snapshot_minutes: also checkpoint at the first tick end at least this many minutes after the
        previous checkpoint (None or 0: only every `snapshot_ticks` ticks).
    """
    run_dir = Path(run_dir)
    data_dir = Path(data_dir)
    if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 0:
        raise UserError(f"--keep_checkpoints must be an integer >= 0 (0 keeps all). Received: {keep_checkpoints!r}")
    manifest = read_manifest(data_dir)
    layout = class_layout(manifest, data_dir, class_name, conditional)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if isinstance(strategy, str):
        strategy_name = strategy
        strategy = get_strategy(strategy)
    else:
        strategy_name = type(strategy).__name__

    if snapshot_minutes is not None and not (math.isfinite(snapshot_minutes) and snapshot_minutes >= 0):
        raise UserError(f"--snapshot_minutes must be a number >= 0 (0: off). Received: {snapshot_minutes}")

    own_ckpt_dir = run_dir / ckpt_lib.CHECKPOINT_DIR
    if _is_chief(strategy):  # a killed run, started again: its half-written saves and files
        removed = ckpt_lib.remove_checkpoint_debris(own_ckpt_dir)
        removed += [f"{p.parent.name}/{p.name}" for folder in (run_dir, run_dir / "samples")
                    for p in remove_stale_temporaries(folder)]
        if removed:
            print(f"removed what an interrupted run left in {run_dir}: {', '.join(removed)}", flush=True)
    if resume is None and (own_ckpt_dir / "checkpoint").is_file():
        resume = run_dir  # a killed run, started again: continue it
    resume_ckpt, full_resume = None, False
    if resume is not None:
        resume_info = ckpt_lib.load_run_info(resume)
        resume_ckpt = ckpt_lib.newest_intact_checkpoint(resume)
        full_resume = ckpt_lib.is_training_checkpoint(resume_ckpt)
        stored = ckpt_lib.preset_of(resume_info)
        if full_resume:
            if (resume_info.get("class_name"), bool(resume_info.get("conditional"))) != (class_name, conditional):
                raise UserError(f"--resume {resume} was trained with class_name={resume_info.get('class_name')!r}, "
                                f"conditional={resume_info.get('conditional')}; pass the same settings.")
            preset = dataclasses.replace(stored, train=stored.train.replace(
                **{k: v for k, v in (train_overrides or {}).items() if v is not None}))
            train_overrides = None
        else:
            base = (get_preset(preset, resolution=int(manifest["resolution"]), num_gpus=strategy.num_replicas_in_sync)
                    if isinstance(preset, str) else preset)
            preset = dataclasses.replace(base, generator=stored.generator, discriminator=stored.discriminator)
    preset = resolve_preset(preset, manifest, layout, with_mask, train_overrides,
                            num_replicas=strategy.num_replicas_in_sync)
    if resume is not None:
        _networks_shape_check(stored, preset, resume)

    keras.utils.set_random_seed(preset.train.seed)  # the initial weights
    trainer = build_trainer(preset, layout, strategy)
    is_chief = _is_chief(strategy)
    if snapshot_metrics is not None and is_chief:
        snapshot_metrics.prepare(data_dir, class_name, with_mask)  # the real features, once

    ckpt = trainer.checkpoint()
    if resume_ckpt is not None:
        if full_resume:
            ckpt.restore(resume_ckpt).assert_existing_objects_matched()
        else:
            ckpt_lib.restore_networks(resume_ckpt, {"G": trainer.G, "D": trainer.D, "G_ema": trainer.G_ema})

    run_info = {"preset": preset.to_dict(), "class_names": list(layout.class_names), "class_name": class_name,
                "conditional": bool(conditional), "with_mask": bool(with_mask), "data": str(data_dir.resolve()),
                "options": {"strategy": strategy_name, "num_replicas": trainer.num_replicas,
                            "resume": str(resume) if resume is not None else None,
                            "tensorboard": bool(tensorboard), "deterministic": bool(deterministic),
                            "keep_checkpoints": keep_checkpoints,
                            "metrics": snapshot_metrics.describe() if snapshot_metrics is not None else None,
                            **(options or {})}}
    ckpt_dir = run_dir / ckpt_lib.CHECKPOINT_DIR
    scratch = None
    if is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / ckpt_lib.RUN_INFO, run_info)
    else:  # non-chief workers save too (collectives) but into a scratch folder
        scratch = Path(tempfile.mkdtemp(prefix="tfstylegan-worker-"))
        ckpt_dir = scratch
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=keep_checkpoints or None)
    reporter = RunReporter(run_dir, tensorboard=tensorboard, enabled=is_chief,
                           step_unit=tensorboard_step_unit(trainer.cfg.kimg_per_tick))
    try:
        with guards.StopSignals() as stop:
            last = _loop(trainer, manager, reporter, run_info, data_dir, class_name, with_mask,
                         verbose and is_chief, is_chief, snapshot_metrics if is_chief else None,
                         stop=stop, snapshot_minutes=snapshot_minutes or 0.0, last_good=resume_ckpt)
        if on_finish is not None:
            on_finish(trainer)
        return last
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ckpt_lib.DiskFull(ckpt_lib.disk_full_message(e.filename or run_dir, None,
                                                           manager.latest_checkpoint)) from None
    finally:
        reporter.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _hparams(preset: Preset, run_info: dict) -> dict:
    t = preset.train
    return {"preset": preset.name, "resolution": preset.generator.img_resolution,
            "channels": preset.generator.img_channels, "c_dim": preset.generator.c_dim,
            "class_name": run_info["class_name"] or "", "conditional": run_info["conditional"],
            "batch_size": t.batch_size, "gamma": t.r1_gamma, "g_lr": t.g_lr, "d_lr": t.d_lr, "aug": t.aug,
            "ada_target": t.ada_target, "mirror": t.mirror, "freeze_d": t.freeze_d, "ema_kimg": t.ema_kimg,
            "mixed_precision": t.mixed_precision, "xla": t.xla, "seed": t.seed, "batch_gpu": t.batch_gpu,
            "tensorboard_step": tensorboard_step_unit(t.kimg_per_tick),
            "resume": run_info["options"].get("resume") or ""}


# The scalars the HParams dashboard compares runs by (plus Metrics/<key> with --metrics).
HPARAM_METRICS = ("Loss/G/loss", "Loss/D/loss", "Progress/augment", "Progress/kimg")


def _loop(trainer: Trainer, manager, reporter: RunReporter, run_info: dict, data_dir, class_name, with_mask,
          verbose: bool, is_chief: bool, snapshot_metrics: SnapshotMetrics | None = None, *,
          stop: guards.StopSignals | None = None, snapshot_minutes: float = 0.0, last_good: str | None = None) -> dict:
    t, state = trainer.cfg, trainer.state
    step, cur_nimg, tick = int(state.step.numpy()), int(state.cur_nimg.numpy()), int(state.tick.numpy())
    total_nimg = int(round(t.total_kimg * 1000))
    stream = RealImageStream(data_dir, class_name, with_mask, t.mirror, t.seed, trainer.batch, cur_nimg)
    grid_z = seed_to_z(range(GRID_W * GRID_H), trainer.z_dim)

    if is_chief and cur_nimg == 0:
        reals, first = [], RealImageStream(data_dir, class_name, with_mask, t.mirror, t.seed, trainer.batch)
        for _ in range(math.ceil(GRID_W * GRID_H / trainer.batch)):
            reals.append(next(first)[0].numpy())
        reporter.png("reals.png", grid_uint8(np.concatenate(reals)[:GRID_W * GRID_H], GRID_W))
    metric_tags = [f"Metrics/{k}" for k in snapshot_metrics.keys] if snapshot_metrics is not None else []
    reporter.hparams(_hparams(trainer.preset, run_info), metrics=list(HPARAM_METRICS) + metric_tags)
    best = None
    if snapshot_metrics is not None:  # continue the best record of a restarted run
        best = BestSnapshot.from_record(snapshot_metrics.best_metric, ckpt_lib.read_best(manager.directory))

    checkpoint_bytes = sum(int(np.prod(v.shape)) * np.dtype(getattr(v.dtype, "name", v.dtype)).itemsize
                           for vs in guards.checkpointed_variables(trainer).values() for v in vs)
    last_save_time = time.monotonic()
    agree = guards.AgreedStop(trainer.strategy) if guards.num_workers(trainer.strategy) > 1 else None

    def save():
        nonlocal last_good, last_save_time
        state.step.assign(step)
        state.cur_nimg.assign(cur_nimg)
        state.tick.assign(tick)
        prefix = ckpt_lib.save_checkpoint(manager, step, run_info if is_chief else None, checkpoint_bytes)
        last_good, last_save_time = prefix, time.monotonic()
        return prefix

    def check_finite(step_stats: list[dict]) -> None:
        """Stops the run (nothing saved) if the state went NaN/inf or no step of this tick had finite losses."""
        bad_state = guards.nonfinite_state(trainer)
        bad_steps = guards.count_nonfinite_steps(step_stats)
        if not bad_state and bad_steps < len(step_stats):
            if bad_steps and verbose:
                print(f"warning: tick {tick}: {bad_steps} of {len(step_stats)} steps had non-finite losses; the "
                      "weights stayed finite, training goes on (it stops if a whole tick has none finite).",
                      flush=True)
            return
        what = (f"non-finite values (NaN/inf) in {len(bad_state)} tensors, e.g. {bad_state[0]}" if bad_state
                else f"non-finite losses in all {len(step_stats)} steps of the tick")
        good = (f"the last good checkpoint is {last_good}" if last_good
                else "no checkpoint had been saved yet")
        raise guards.TrainingDiverged(
            f"training diverged at tick {tick} (kimg {cur_nimg / 1000:g}, step {step}): {what}. Nothing was saved "
            f"from this point; {good}. Lower --gamma or the learning rate (or turn off --mixed_precision)"
            + (f" and resume from it (--resume {last_good})." if last_good else " and start again."))

    def evaluate_snapshot(prefix: str) -> dict:
        """Metrics of the checkpoint just saved; keeps it as the best one if it beats the record."""
        start = time.perf_counter()
        results = snapshot_metrics(trainer.G_ema)
        name = Path(prefix).name
        row = metrics_row(results, kimg=cur_nimg / 1000, step=step, tick=tick, checkpoint=name,
                          config=snapshot_metrics.config, num_images=snapshot_metrics.num_real,
                          seconds=time.perf_counter() - start)
        reporter.metrics(row, step=cur_nimg)
        is_best = best.improves(results[best.key])
        if is_best:
            best.value = results[best.key]
            record = {"metric": best.key, "value": best.value, "lower_is_better": best.lower_is_better,
                      "checkpoint": name, "path": f"{ckpt_lib.CHECKPOINT_DIR}/{ckpt_lib.BEST_DIR}/{name}",
                      "kimg": cur_nimg / 1000, "step": step, "tick": tick, "results": results}
            ckpt_lib.keep_best(prefix, run_info, record)
            write_json(reporter.run_dir / ckpt_lib.BEST_INFO, record)
        if verbose:
            values = " ".join(f"{k} {v:.4g}" for k, v in results.items())
            print(f"metrics {name} kimg {cur_nimg / 1000:g}: {values}{' (best)' if is_best else ''} "
                  f"[{time.perf_counter() - start:.1f}s]", flush=True)
        return {f"Metrics/{k}": v for k, v in results.items()}

    def snapshot_images():
        grids = trainer.sample_grids(grid_z)
        tb = {name: grid_uint8(imgs, GRID_W) for name, imgs in grids.items()}
        reporter.images("samples", tb, step=cur_nimg)
        # named by images seen (not integer kimg), so ticks shorter than 1 kimg do not overwrite each other
        reporter.png(f"fakes{cur_nimg:09d}.png", np.concatenate(list(tb.values()), axis=0))

    last = {}
    tick_start_nimg, tick_start_time = cur_nimg, time.perf_counter()
    tick_stats: dict[str, list] = {}
    step_stats: list[dict] = []
    done = cur_nimg >= total_nimg
    while not done:
        real, labels = next(stream)
        stats = trainer.train_step(real, labels, step, cur_nimg)
        step_stats.append(stats)
        for k, v in stats.items():
            tick_stats.setdefault(k, []).append(v)
        step += 1
        cur_nimg += trainer.batch
        done = cur_nimg >= total_nimg
        signum = stop.signum if stop is not None else None  # a signal: close the tick here, save, stop
        if agree is not None:
            signum = agree(signum)
        stopping = signum is not None
        if not done and not stopping and cur_nimg < tick_start_nimg + t.kimg_per_tick * 1000:
            continue
        # -- end of a tick --
        tick += 1
        means = {k: float(np.mean([float(x) for x in v])) for k, v in tick_stats.items()}
        elapsed = time.perf_counter() - tick_start_time
        tick_nimg = cur_nimg - tick_start_nimg
        sec_per_kimg = elapsed / max(tick_nimg / 1000, 1e-9)
        p = float(trainer.pipe.p.numpy())
        last = {"Progress/tick": tick, "Progress/kimg": cur_nimg / 1000, "Progress/step": step,
                "Progress/augment": p, "Progress/pl_mean": float(trainer.state.pl_mean.numpy()),
                "Loss/G/loss": means.get("G_loss", float("nan")), "Loss/D/loss": means.get("D_loss", float("nan")),
                "Loss/r1_penalty": means.get("r1_penalty", float("nan")),
                "Loss/pl_penalty": means.get("pl_penalty", float("nan")),
                "Loss/signs/real": means.get("real_sign", float("nan")),
                "Loss/signs/fake": means.get("fake_sign", float("nan")),
                "Timing/sec_per_tick": elapsed, "Timing/sec_per_kimg": sec_per_kimg,
                "Timing/img_per_sec": tick_nimg / max(elapsed, 1e-9),
                "Resources/peak_host_mem_gb": host_peak_memory_gb()}
        gpu = gpu_peak_memory_gb()
        if gpu is not None:
            last["Resources/peak_gpu_mem_gb"] = gpu
        reporter.scalars(last, step=cur_nimg)
        if verbose:
            print(tick_line(tick, cur_nimg / 1000, t.total_kimg, sec_per_kimg, last["Timing/img_per_sec"],
                            last["Loss/G/loss"], last["Loss/D/loss"], p), flush=True)
        check_finite(step_stats)
        if stopping and not done:  # (a signal during the last step: the run ends normally, saved below)
            prefix = save()
            raise guards.TrainingInterrupted(
                signum, f"stopped by {guards.signal_name(signum)} at tick {tick} (kimg {cur_nimg / 1000:g}, "
                f"step {step}); saved {prefix}. Resume with --resume {reporter.run_dir}.", prefix)
        if done or tick % max(t.image_snapshot_ticks, 1) == 0:
            snapshot_images()
        scheduled = done or tick % max(t.snapshot_ticks, 1) == 0
        if scheduled or (snapshot_minutes > 0 and time.monotonic() - last_save_time >= snapshot_minutes * 60):
            prefix = save()
            if snapshot_metrics is not None and scheduled:
                last.update(evaluate_snapshot(prefix))
        tick_stats, step_stats = {}, []
        tick_start_nimg, tick_start_time = cur_nimg, time.perf_counter()
    return last
