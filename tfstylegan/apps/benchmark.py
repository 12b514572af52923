"""Speed and memory of StyleGAN2 training and inference, measured on the real `Trainer` step functions.

`run_benchmark(BenchmarkOptions(...))` builds the `tfstylegan.training.trainer.Trainer` a
training run would build (same preset resolution, dtype policy, XLA and strategy handling),
feeds it synthetic reals through a prefetching `tf.data` pipeline, and measures after warm-up
(compilation), `repeats` times each, reporting the median and the spread:

- **full iteration**: one lazy-regularisation cycle, `r1_interval` (16) consecutive
  `Trainer.train_step` calls = 16 Gmain + 4 Greg + 16 Dmain + 1 Dreg + 16 EMA updates (+ ADA),
  the data fetch included, exactly as the training loop runs them; reported as s/kimg
  (seconds per 1000 real images shown to D) and img/s;
- **phases**: each phase step (Gmain, Greg, Dmain, Dreg, EMA) timed on its own;
- **generator inference**: `G_ema(z)` (random noise, no gradient) in img/s;
- **discriminator forward**: `D(img)` (no gradient) in img/s;
- **FLOPs per image**, counted by TensorFlow's graph profiler (`tf.compat.v1.profiler` with
  `ProfileOptionBuilder.float_operation()`, a multiply-add = 2 FLOPs) on the traced graphs of
  G forward, D forward and each training phase's compute (forward, losses and gradients), and
  the achieved FLOP/s = FLOPs/img x img/s. The count is of the graph as traced: it includes
  gradients TensorFlow later prunes as unused (e.g. D's weight gradients in the G step, a few
  percent) and counts 0 for ops without registered statistics (gathers, the optimizer update);
- **peak memory**: host (`ru_maxrss`) and GPU (`tf.config.experimental.get_memory_info`).

The report (a JSON-ready dict) has at least `s_per_kimg` and `generator_img_per_s` at the top
level. Comparing it with reference numbers and targets, and printing it, is `benchmark_report`'s job.

(Over 400 lines on purpose: every measurement shares the one trainer, the timing helpers and the report.)
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.config import get_preset, resolve_preset
from tfstylegan.data.classes import ClassLayout
from tfstylegan.training.distribute import get_strategy
from tfstylegan.training.trainer import build_trainer, ema_beta
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.memory import gpu_peak_memory_gb, host_peak_memory_gb, reset_gpu_peaks

DEVICES = ("auto", "cpu", "gpu")
PHASES = ("Gmain", "Greg", "Dmain", "Dreg", "EMA")
FLOPS_METHOD = ("tf.compat.v1.profiler float_operation() on the traced graphs (multiply-add = 2 FLOPs; "
                "gradients pruned later as unused are counted, ops without registered statistics count 0)")


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions:
    """What to measure.

    Attributes:
      preset: preset name (`tfstylegan.config.PRESET_NAMES`).
      batch_size: global batch; None = the preset's.
      xla: compile the phase computations and the inference functions with XLA; None = the preset's.
      fused_modconv: grouped-conv modulated convolutions; None = the preset's.
      mixed_precision: float16 in the highest-resolution blocks (as `train_stylegan --mixed_precision`).
      strategy: 'default' | 'mirrored' | 'multi_worker' (`tfstylegan.training.distribute`).
      device: 'cpu', 'gpu' (UserError without one) or 'auto' (a GPU when present).
      repeats: timed repetitions of every measurement (median and spread are reported).
      warmup: untimed full iterations before timing (the first one compiles).
      inference_batches: generator / discriminator calls per timed repetition.
      phases: also time each phase on its own.
      flops: count FLOPs with the graph profiler.
      profile_dir: write a TensorBoard profiler trace of one full iteration there.
      seed: seed of the networks and the synthetic data.
    """

    preset: str = "bench32"
    batch_size: int | None = None
    xla: bool | None = None
    fused_modconv: bool | None = None
    mixed_precision: bool = False
    strategy: str = "default"
    device: str = "auto"
    repeats: int = 5
    warmup: int = 1
    inference_batches: int = 8
    phases: bool = True
    flops: bool = True
    profile_dir: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.device not in DEVICES:
            raise UserError(f"--device must be one of {', '.join(DEVICES)}. Received: device={self.device!r}")
        if self.repeats < 1 or self.warmup < 1 or self.inference_batches < 1:
            raise UserError("--repeats, --warmup and --inference_batches must be >= 1 (warm-up compiles the "
                            f"steps). Received: repeats={self.repeats}, warmup={self.warmup}, "
                            f"inference_batches={self.inference_batches}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--batch must be >= 1 (or 0 for the preset's). Received: {self.batch_size}")


# ---------------------------------------------------------------------------------------------
# Small pure helpers.

def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements: {median, mean, min, max, std, n, values}."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("spread() needs at least one value.")
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "min": min(values),
            "max": max(values), "std": statistics.pstdev(values), "n": len(values), "values": values}


def s_per_kimg(seconds: float, images: int) -> float:
    """Seconds per 1000 images."""
    return seconds / (images / 1000.0)


def configure_runtime(device: str = "auto", intra_op_threads: int = 0, inter_op_threads: int = 0) -> str:
    """Chooses the device and thread pools before TensorFlow starts; returns 'cpu' or 'gpu'.

    `device='cpu'` hides the GPUs (when TensorFlow has not started yet; otherwise every op is
    placed on the CPU by `run_benchmark`). Threads 0 = TensorFlow's default (one per core).
    """
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}. Received: device={device!r}")
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:  # TensorFlow already initialised: the thread pools stay as they are
        pass
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise UserError("--device gpu: TensorFlow sees no GPU on this machine. Use --device cpu (or auto), or "
                        "install a CUDA-enabled TensorFlow and check `nvidia-smi`.")
    if device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
    if device == "auto":
        device = "gpu" if gpus else "cpu"
    return device


def graph_flops(concrete_function) -> int:
    """FLOPs of one call of a traced `tf.function` (TF graph profiler; multiply-add = 2)."""
    opts = (tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
            .with_empty_output().build())
    prof = tf.compat.v1.profiler.profile(graph=concrete_function.graph, run_meta=tf.compat.v1.RunMetadata(),
                                         cmd="op", options=opts)
    return int(prof.total_float_ops) if prof is not None else 0


def synthetic_reals(batch_size: int, resolution: int, channels: int, seed: int = 0, pool: int = 64):
    """Endless global batches `(img float32 [B, R, R, C] in [-1, 1], label int32 [B])` through tf.data.

    A fixed pool of smooth random images (cheap, deterministic), shuffled, batched and
    prefetched, so that fetching a batch costs what it costs in training: next() on a
    prefetched iterator.
    """
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1, 1, size=[pool, max(resolution // 4, 1), max(resolution // 4, 1), channels])
    imgs = tf.image.resize(low.astype(np.float32), [resolution, resolution], method="bilinear")
    imgs = tf.clip_by_value(imgs + rng.normal(0, 0.05, size=imgs.shape).astype(np.float32), -1, 1)
    ds = tf.data.Dataset.from_tensor_slices((imgs, tf.zeros([pool], tf.int32))).cache()
    ds = ds.shuffle(pool, seed=seed).repeat().batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# The benchmark.

def _resolve(options: BenchmarkOptions):
    """(preset resolved as `train()` resolves it, layout) for synthetic data of the preset's shape."""
    base = get_preset(options.preset)
    g = base.generator
    if options.fused_modconv is not None:
        base = dataclasses.replace(base, generator=g.replace(fused_modconv=bool(options.fused_modconv)))
    manifest = {"resolution": g.img_resolution, "has_mask": g.img_channels == 2}
    layout = ClassLayout(("synthetic",), 0, ())
    overrides = {"batch_size": options.batch_size, "xla": options.xla, "mixed_precision": options.mixed_precision}
    preset = resolve_preset(base, manifest, layout, with_mask=g.img_channels == 2, overrides=overrides)
    return preset, layout


def _sync(stats) -> None:
    """Waits for a step's results (reads them on the host), as the training loop does at each tick."""
    for v in (stats.values() if isinstance(stats, dict) else stats):
        np.asarray(v)


def _time_block(fn: Callable[[], Any], repeats: int, cpu_times: list[float] | None = None) -> list[float]:
    """Wall seconds of `repeats` calls of fn; appends each call's process CPU seconds to `cpu_times`."""
    times = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
    return times


def run_benchmark(options: BenchmarkOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measures one configuration; returns the report (see the module docstring).

    Call `configure_runtime` first when the device or thread pools matter (before any other
    TensorFlow use); `run_benchmark` calls it otherwise with `options.device`.
    """
    log = log or (lambda msg: None)
    device = configure_runtime(options.device)

    if options.device == "gpu" and not tf.config.list_logical_devices("GPU"):
        raise UserError("--device gpu: TensorFlow started without a visible GPU (CUDA_VISIBLE_DEVICES?).")
    preset, layout = _resolve(options)
    t = preset.train
    keras.utils.set_random_seed(options.seed)
    strategy = get_strategy(options.strategy)
    device_scope = tf.device("/GPU:0" if device == "gpu" else "/CPU:0") if options.strategy == "default" else None

    with (device_scope or _nullcontext()):
        log(f"building the trainer: preset {preset.name}, batch {t.batch_size}, xla {t.xla}, "
            f"fused_modconv {preset.generator.fused_modconv}, mixed precision {t.mixed_precision}, "
            f"{strategy.num_replicas_in_sync} replica(s) on {device}")
        trainer = build_trainer(preset, layout, strategy)
        B = trainer.batch
        cycle = max(t.r1_interval if t.r1_gamma > 0 else 1, t.pl_interval if t.pl_weight > 0 else 1)
        reals = iter(synthetic_reals(B, trainer.res, trainer.channels, options.seed))
        state = {"step": 0, "nimg": 0}

        def one_iteration():
            """`cycle` consecutive training steps, as `tfstylegan.training.loop._loop` runs them."""
            stats = None
            for _ in range(cycle):
                real, labels = next(reals)
                stats = trainer.train_step(real, labels, state["step"], state["nimg"])
                state["step"] += 1
                state["nimg"] += B
            _sync(stats)

        # -- warm-up: compiles every phase ---------------------------------------------------------
        t0 = time.perf_counter()
        for _ in range(options.warmup):
            one_iteration()
        warmup_seconds = time.perf_counter() - t0
        log(f"warm-up ({options.warmup} x {cycle} steps, compilation included): {warmup_seconds:.1f} s")
        reset_gpu_peaks()

        # -- the full iteration ------------------------------------------------------------------
        iter_times, iter_cpu = [], []
        load_before = _loadavg()
        for r in range(options.repeats):
            iter_times.append(_time_block(one_iteration, 1, iter_cpu)[0])
            log(f"full iteration {r + 1}/{options.repeats}: {iter_times[-1]:.2f} s "
                f"({s_per_kimg(iter_times[-1], cycle * B):.1f} s/kimg)")
        iter_images = cycle * B
        train_spk = s_per_kimg(statistics.median(iter_times), iter_images)

        if options.profile_dir:
            tf.profiler.experimental.start(options.profile_dir)
            try:
                one_iteration()
            finally:
                tf.profiler.experimental.stop()
            log(f"profiler trace of one full iteration written to {options.profile_dir}")

        # -- phases ---------------------------------------------------------------------------
        phases = {}
        if options.phases:
            phases = _time_phases(trainer, reals, options.repeats, cycle, state, ema_beta)
            log("phases (median s/call): " + ", ".join(f"{k} {v['seconds']['median']:.3f}"
                                                      for k, v in phases.items()))

        # -- inference ---------------------------------------------------------------------------
        gen, disc = _inference(trainer, options, log)
        memory = {"host_peak_gb": host_peak_memory_gb(), "gpu_peak_gb": gpu_peak_memory_gb()}

        flops = _flops(trainer, cycle) if options.flops else {}

    train_img_per_s = iter_images / statistics.median(iter_times)
    report: dict[str, Any] = {
        "s_per_kimg": train_spk,
        "img_per_s": train_img_per_s,
        "generator_img_per_s": gen["img_per_s"],
        "discriminator_img_per_s": disc["img_per_s"],
        "preset": preset.name,
        "batch_size": B,
        "resolution": trainer.res,
        "xla": bool(t.xla),
        "fused_modconv": bool(preset.generator.fused_modconv),
        "mixed_precision": bool(t.mixed_precision),
        "strategy": options.strategy,
        "num_replicas": trainer.num_replicas,
        "device": device,
        "repeats": options.repeats,
        "warmup_seconds": warmup_seconds,
        "iteration": {
            "steps": cycle, "images": iter_images,
            "phase_calls": _phase_calls(t, cycle),
            "aug": t.aug, "aug_p": float(trainer.pipe.p.numpy()), "style_mixing_prob": t.style_mixing_prob,
            "seconds": spread(iter_times),
            "s_per_kimg": spread([s_per_kimg(x, iter_images) for x in iter_times]),
            "img_per_s": spread([iter_images / x for x in iter_times]),
            "process_cpu_seconds": spread(iter_cpu),
            "load_average_before": load_before,
            "load_average_after": _loadavg(),
        },
        "phases": phases,
        "generator": gen,
        "discriminator": disc,
        "memory": memory,
        "environment": _environment(),
    }
    if flops:
        report["flops"] = flops
        report["train_flops_per_img"] = flops["train_per_img"]
        report["train_flop_per_s"] = flops["train_per_img"] * train_img_per_s
        gen["flops_per_img"] = flops["generator_per_img"]
        gen["flop_per_s"] = flops["generator_per_img"] * gen["img_per_s"]
        disc["flops_per_img"] = flops["discriminator_per_img"]
        disc["flop_per_s"] = flops["discriminator_per_img"] * disc["img_per_s"]
    return report


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _phase_calls(t, cycle: int) -> dict[str, int]:
    """How often each phase runs in one full iteration of `cycle` steps."""
    return {"Gmain": cycle,
            "Greg": sum(1 for s in range(cycle) if t.pl_weight > 0 and s % t.pl_interval == 0),
            "Dmain": cycle,
            "Dreg": sum(1 for s in range(cycle) if t.r1_gamma > 0 and s % t.r1_interval == 0),
            "EMA": cycle}


def _time_phases(trainer, reals, repeats: int, cycle: int, state: dict, ema_beta) -> dict[str, Any]:
    """Each phase step of the Trainer timed on its own (median over `repeats` calls, after one untimed)."""
    t = trainer.cfg
    real, _ = next(reals)
    real_d = trainer._distribute(real)
    c_real = None
    beta = tf.constant(ema_beta(state["nimg"], trainer.batch, t.ema_kimg, t.ema_rampup), tf.float32)

    def seed():
        return tf.transpose(trainer.rng.make_seeds(1))[0]

    calls = {
        "Gmain": lambda: trainer.gmain_step(seed()),
        "Greg": lambda: trainer.greg_step(seed()),
        "Dmain": lambda: trainer.dmain_step(seed(), real_d, c_real),
        "Dreg": lambda: trainer.dreg_step(seed(), real_d, c_real),
        "EMA": lambda: trainer.ema_step(beta),
    }
    counts = _phase_calls(t, cycle)
    out = {}
    for name, call in calls.items():
        if counts[name] == 0:
            continue

        def run(call=call):
            result = call()
            if result is not None:
                _sync(result)
            else:  # EMA returns nothing: read one updated variable
                np.asarray(trainer.G_ema.trainable_variables[0])

        run()
        times = _time_block(run, repeats)
        med = statistics.median(times)
        out[name] = {"seconds": spread(times), "calls_per_iteration": counts[name],
                     "seconds_per_iteration": med * counts[name]}
    total = sum(v["seconds_per_iteration"] for v in out.values())
    for v in out.values():
        v["share"] = v["seconds_per_iteration"] / total if total > 0 else 0.0
    return out


def _inference(trainer, options: BenchmarkOptions, log) -> tuple[dict, dict]:
    """G_ema(z) and D(img) throughput at the training batch size, without gradients."""
    B, xla = trainer.batch, trainer.cfg.xla
    G, D = trainer.G_ema, trainer.D
    c = G.one_hot(tf.zeros([B], tf.int32)) if trainer.c_dim else None

    @tf.function(jit_compile=xla)
    def generate(z):
        return G(z, c, noise_mode="random")

    @tf.function(jit_compile=xla)
    def discriminate(img):
        return D(img, c)

    z = tf.random.normal([B, trainer.z_dim], seed=options.seed)
    img = generate(z)
    np.asarray(discriminate(img))

    def gen_block():
        for _ in range(options.inference_batches):
            out = generate(z)
        np.asarray(out)

    def disc_block():
        for _ in range(options.inference_batches):
            out = discriminate(img)
        np.asarray(out)

    results = []
    for name, block in (("generator", gen_block), ("discriminator", disc_block)):
        times = _time_block(block, options.repeats)
        per_batch = [x / options.inference_batches for x in times]
        n = B * options.inference_batches
        res = {"img_per_s": n / statistics.median(times), "batch_size": B, "seconds_per_batch": spread(per_batch),
               "img_per_s_spread": spread([n / x for x in times]),
               "what": "G_ema(z), random noise, no gradient" if name == "generator" else "D(img), no gradient"}
        log(f"{name}: {res['img_per_s']:.1f} img/s")
        results.append(res)
    return results[0], results[1]


def _flops(trainer, cycle: int) -> dict[str, Any]:
    """FLOPs of G forward, D forward and each phase's compute, per image (graph profiler)."""
    B, L = trainer.batch, trainer.local_batch
    res, ch, t = trainer.res, trainer.channels, trainer.cfg
    G, D = trainer.G_ema, trainer.D
    c_spec = tf.TensorSpec([L, trainer.c_dim], tf.float32) if trainer.c_dim else None

    def plain(fn):
        """The phase's Python computation (the XLA wrapper removed), traced as a plain graph."""
        return tf.function(getattr(fn, "python_function", fn))

    gen = tf.function(lambda z: G(z, None if not trainer.c_dim else tf.one_hot(tf.zeros([L], tf.int32),
                                                                          trainer.c_dim), noise_mode="random"))
    disc = tf.function(lambda img: D(img, None if not trainer.c_dim else tf.one_hot(tf.zeros([L], tf.int32),
                                                                                trainer.c_dim)))
    seed_spec = tf.TensorSpec([2], tf.int64)
    rid = 0  # a Python int: replica 0's slices get static shapes, which the profiler needs to count
    img_spec = tf.TensorSpec([L, res, res, ch], tf.float32)
    # Each phase traced on one replica's inputs; FLOPs of the global batch = replicas x that.
    with trainer.strategy.scope():
        phase_flops = {
            "Gmain": graph_flops(plain(trainer._gmain_compute).get_concrete_function(seed_spec, rid)),
            "Greg": graph_flops(plain(trainer._greg_compute).get_concrete_function(
                seed_spec, rid, tf.TensorSpec([], tf.float32))) if t.pl_weight > 0 else 0,
            "Dmain": graph_flops(plain(trainer._dmain_compute).get_concrete_function(seed_spec, rid, img_spec, c_spec)),
            "Dreg": graph_flops(plain(trainer._dreg_compute).get_concrete_function(seed_spec, rid, img_spec, c_spec))
            if t.r1_gamma > 0 else 0,
        }
    phase_flops = {k: v * trainer.num_replicas for k, v in phase_flops.items()}
    counts = _phase_calls(t, cycle)
    per_iteration = sum(phase_flops[k] * counts[k] for k in phase_flops)
    return {
        "method": FLOPS_METHOD,
        "generator_per_img": graph_flops(gen.get_concrete_function(tf.TensorSpec([L, trainer.z_dim]))) / L,
        "discriminator_per_img": graph_flops(disc.get_concrete_function(img_spec)) / L,
        "phase_per_call": phase_flops,
        "train_per_iteration": per_iteration,
        "train_per_img": per_iteration / (cycle * B),
    }


def _environment() -> dict[str, Any]:
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = []
    for g in gpus:
        try:
            gpu_names.append(tf.config.experimental.get_device_details(g).get("device_name", g.name))
        except (ValueError, RuntimeError):
            gpu_names.append(g.name)
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": _cpu_model(), "cpu_count": os.cpu_count(),
            "intra_op_threads": intra, "inter_op_threads": inter,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "gpus": gpu_names}


def _loadavg() -> float | None:
    """1-minute load average (other processes competing for the cores make timings slower)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
