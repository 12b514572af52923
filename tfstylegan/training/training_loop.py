"""The StyleGAN2 training loop (stylegan2-ada-pytorch `training_loop.py` + `loss.py` semantics).

One iteration ("step") consumes one global batch of reals and runs the phases of ADA:

    Gmain   every step                  non-saturating G loss on D(augment(G(z, c)))
    Greg    every pl_interval steps     path length, batch / pl_batch_shrink, gain pl_interval
    Dmain   every step                  logistic D loss on augmented reals and fakes; ADA signs;
                                        the tracked w_avg is updated from this phase's fakes
    Dreg    every r1_interval steps     R1 * gamma / 2 * r1_interval on augmented reals, the
                                        gradient taken w.r.t. the non-augmented reals

then G_ema <- lerp(G, G_ema, beta) with beta = 0.5 ** (batch / max(ema_nimg, 1e-8)),
ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup), buffers (w_avg, noise_const) copied.
Adam's lr and betas are corrected for lazy regularisation: lr * c, beta ** c,
c = interval / (interval + 1). ADA steers the augmentation strength p from the sign of D on
reals towards `ada_target` (tfstylegan.augment.AdaController).

Distribution (`tf.distribute`): every phase is one `tf.function` that calls `strategy.run` on a
replica function; the replica function runs the phase's compute (forward, losses, gradients) as
one function, XLA-compiled with `--xla`, and then `optimizer.apply` (Keras all-reduces gradients
with SUM). Per-sample losses are reduced once with `tf.nn.compute_average_loss(...,
global_batch_size)`. ADA, w_avg, pl_mean and the EMA update in the cross-replica context.

Randomness: each step draws its seeds from one checkpointed `tf.random.Generator` on the host.
Latents, class labels, style mixing, path-length noise and augmentation are drawn for the
*global* batch with the counter-based hash generators of `tfstylegan.augment` (identical
eagerly and under XLA, where TF's stateless ops differ) and each replica takes its slice, so
N replicas see exactly what one device sees with the same global batch. The synthesis noise
inputs come from `noise_seed` (TF stateless normal, folded with the replica id).

Data: the real-image stream (`RealImageStream`) is a pure function of (seed, images consumed): epoch e is the
training split shuffled with seed (seed, e) (doubled by x-flips with `mirror`), so a resumed
run restarts the stream at `cur_nimg` without storing an iterator. Each worker reads the whole
global batch and feeds each local replica its slice.

`pl_mean` semantics under several replicas: each replica penalises its lengths against the
mean it updated from its own slice (as ADA's per-GPU `pl_mean`); the stored `pl_mean` is the
replicas' average, which equals the single-device update.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstylegan import losses
from tfstylegan.augment import AdaController, AugmentPipe, random_normal, random_uniform
from tfstylegan.config import Preset, get_preset
from tfstylegan.data.classes import ALL_CLASS_NAMES
from tfstylegan.data.pipeline import load_dataset, read_manifest
from tfstylegan.networks import Discriminator, Generator, seed_to_z
from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training.distribute import get_strategy
from tfstylegan.training.summaries import (RunReporter, device_memory_gb, grid_uint8, host_memory_gb,
                                           tick_line)
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import write_json

GRID_W, GRID_H = 8, 4  # fixed-seed sample grid (per class when conditional)
MAX_TO_KEEP = 3

# TrainConfig fields a user may override when resuming a training checkpoint.
TRAIN_OVERRIDE_FIELDS = tuple(f.name for f in dataclasses.fields(get_preset("tiny").train))


# ---------------------------------------------------------------------------------------------
# Pure helpers (tested directly).

def lazy_adam_hparams(lr: float, betas: tuple[float, float], epsilon: float, interval: int) -> dict:
    """Adam settings with the lazy-regularisation correction (StyleGAN2 appendix B).

    With the regulariser applied every `interval` steps, c = interval / (interval + 1) and
    Adam uses lr * c, beta1 ** c, beta2 ** c (c = 1 when interval <= 1).
    """
    c = interval / (interval + 1) if interval > 1 else 1.0
    return {"learning_rate": lr * c, "beta_1": betas[0] ** c, "beta_2": betas[1] ** c, "epsilon": epsilon}


def ema_beta(cur_nimg: int, batch_size: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """G_ema decay for the step that starts at `cur_nimg` images (ADA's ramp-up).

    ema_nimg = ema_kimg * 1000, or min(that, cur_nimg * ema_rampup) with ramp-up;
    beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8)) (half-life ema_nimg images).
    """
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def make_optimizer(lr: float, betas, epsilon: float, interval: int, mixed_precision: bool):
    """Adam (lazy-regularisation corrected), wrapped in a LossScaleOptimizer under mixed precision."""
    opt = keras.optimizers.Adam(**lazy_adam_hparams(lr, tuple(betas), epsilon, interval))
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _subseed(seed: tf.Tensor, k: int) -> tf.Tensor:
    """An independent seed [2] derived from `seed` [2] (int64) for stream `k`."""
    return seed + tf.constant([0, 7919 * (k + 1)], tf.int64)


def _replica_slice(x: tf.Tensor, rid, n_local: int) -> tf.Tensor:
    """Rows [rid * n_local, (rid + 1) * n_local) of a global-batch tensor, with a static batch size."""
    return tf.ensure_shape(x[rid * n_local:(rid + 1) * n_local], [n_local] + x.shape[1:].as_list())


# ---------------------------------------------------------------------------------------------
# Data.

@dataclasses.dataclass(frozen=True)
class ClassLayout:
    """How the dataset's classes map onto the model.

    class_names: the classes the model knows (conditional: index = class id = label).
    c_dim: 0 (per-class or unconditional) or len(class_names).
    probs: [c_dim] frequency of each class in the training split (to sample fake labels).
    """

    class_names: tuple[str, ...]
    c_dim: int
    probs: tuple[float, ...]


def class_layout(manifest: dict, data_dir, class_name: str | None, conditional: bool) -> ClassLayout:
    """Resolves --class_name / --conditional against the dataset; UserError names the fix."""
    present = list(manifest["class_names"])
    counts = manifest["split_counts"].get("train", {})
    if class_name is not None and conditional:
        raise UserError("--class_name and --conditional exclude each other: train one class (the study's "
                        "per-class models) or one conditional model of all classes.")
    if class_name is not None:
        if class_name not in present:
            raise UserError(f"{data_dir} has no class {class_name!r}; it has {', '.join(present)}. "
                            f"Pass --class_name with one of them.")
        if int(counts.get(class_name, 0)) < 1:
            raise UserError(f"{data_dir} has no training images of class {class_name!r}.")
        return ClassLayout((class_name,), 0, ())
    if int(sum(int(v) for v in counts.values())) < 1:
        raise UserError(f"{data_dir} has no training images (split_counts['train'] is empty).")
    if not conditional:
        return ClassLayout(tuple(present), 0, ())
    unknown = [c for c in present if c not in ALL_CLASS_NAMES]
    if unknown:
        raise UserError(f"{data_dir} has classes {unknown} outside {ALL_CLASS_NAMES}; cannot train conditionally.")
    c_dim = max(ALL_CLASS_NAMES.index(c) for c in present) + 1
    names = ALL_CLASS_NAMES[:c_dim]
    total = sum(int(counts.get(c, 0)) for c in names)
    return ClassLayout(tuple(names), c_dim, tuple(int(counts.get(c, 0)) / total for c in names))


class RealImageStream:
    """Global batches of reals `(img float32 [B, H, W, C] in [-1, 1], label int32 [B])`, forever.

    The stream is a pure function of (data, seed): epoch e is the training split (plus its
    x-flipped copy with `mirror`, as ADA's --mirror doubles the dataset) in the order of a
    full-buffer shuffle seeded by (seed, e); batches run across epoch boundaries. Starting at
    `start_nimg` images gives exactly the continuation of the stream that started at 0, reading
    at most one epoch to get there, so no iterator state needs checkpointing.
    """

    def __init__(self, data_dir, class_name: str | None, with_mask: bool, mirror: bool, seed: int,
                 batch_size: int, start_nimg: int = 0):
        manifest = read_manifest(data_dir)
        counts = manifest["split_counts"].get("train", {})
        n = int(counts.get(class_name, 0)) if class_name else int(sum(int(v) for v in counts.values()))
        base = load_dataset(data_dir, split="train", class_name=class_name, batch_size=None, shuffle=False,
                            mirror=False, with_mask=with_mask, repeat=False, cache=True)
        if mirror:
            base = base.concatenate(base.map(lambda x, y: (tf.reverse(x, axis=[1]), y)))
            n *= 2
        if n < 1:
            raise UserError(f"{data_dir} has no training images{' of ' + class_name if class_name else ''}.")
        self.base, self.n, self.seed, self.batch_size = base, n, int(seed), int(batch_size)
        self.epoch, offset = divmod(int(start_nimg), n)
        self._it = self._epoch_iterator(self.epoch, offset)
        self._carry = None

    def _epoch_iterator(self, epoch: int, skip: int):
        ds = self.base.shuffle(self.n, seed=(self.seed * 1_000_003 + epoch) % (2 ** 31 - 1),
                               reshuffle_each_iteration=False)
        return iter(ds.skip(skip).batch(self.batch_size).prefetch(2))

    def __iter__(self):
        return self

    def __next__(self) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels, need = [], [], self.batch_size
        while need > 0:
            if self._carry is None:
                try:
                    self._carry = next(self._it)
                except StopIteration:
                    self.epoch += 1
                    self._it = self._epoch_iterator(self.epoch, 0)
                    continue
            img, lab = self._carry
            images.append(img[:need])
            labels.append(lab[:need])
            self._carry = (img[need:], lab[need:]) if img.shape[0] > need else None
            need -= int(images[-1].shape[0])
        if len(images) == 1:
            return images[0], labels[0]
        return tf.concat(images, axis=0), tf.concat(labels, axis=0)


# ---------------------------------------------------------------------------------------------
# Configuration.

def resolve_preset(preset: Preset | str, manifest: dict, layout: ClassLayout, with_mask: bool,
                   overrides: dict | None = None) -> Preset:
    """The preset adapted to the data (resolution, channels, classes) with TrainConfig overrides.

    Mixed precision with a preset that has no fp16 blocks gets the ADA setting: the 4 highest
    resolutions in float16 and conv_clamp 256.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    bad = sorted(set(overrides) - set(TRAIN_OVERRIDE_FIELDS))
    if bad:
        raise UserError(f"Unknown training options {bad}. Known: {', '.join(TRAIN_OVERRIDE_FIELDS)}.")
    if with_mask and not manifest["has_mask"]:
        raise UserError("--with_mask needs tumor masks, but the dataset has none (manifest has_mask=false). "
                        "Train without --with_mask or prepare a dataset that has masks (Figshare).")
    preset = preset.with_data(img_resolution=int(manifest["resolution"]), img_channels=2 if with_mask else 1,
                              c_dim=layout.c_dim)
    train = preset.train.replace(**overrides)
    g, d = preset.generator, preset.discriminator
    if train.mixed_precision:
        if g.num_fp16_res == 0:
            g = g.replace(num_fp16_res=min(4, g.num_blocks), conv_clamp=g.conv_clamp or 256)
        if d.num_fp16_res == 0:
            d = d.replace(num_fp16_res=min(4, len(d.block_resolutions) + 1), conv_clamp=d.conv_clamp or 256)
    return dataclasses.replace(preset, generator=g, discriminator=d, train=train)


def _check_batch(train, d_config, num_replicas: int) -> int:
    """Validates the global batch against replicas, minibatch-std groups and PL shrink; returns per-replica."""
    batch = train.batch_size
    if batch % num_replicas:
        raise UserError(f"--batch {batch} is not divisible by the {num_replicas} replicas; use a multiple of "
                        f"{num_replicas} (e.g. --batch {num_replicas * max(1, batch // num_replicas)}).")
    local = batch // num_replicas
    group = min(d_config.mbstd_group_size, local)
    if local % group:
        raise UserError(f"The per-replica batch {local} (--batch {batch} over {num_replicas} replicas) is not "
                        f"divisible by the minibatch-stddev group {d_config.mbstd_group_size}; use a --batch "
                        f"that gives a multiple of {d_config.mbstd_group_size} per replica.")
    if train.pl_weight > 0 and local % train.pl_batch_shrink:
        raise UserError(f"The per-replica batch {local} is not divisible by pl_batch_shrink "
                        f"{train.pl_batch_shrink}; use an even --batch per replica.")
    return local


def _is_chief(strategy) -> bool:
    """True on the worker that writes outputs (the only one without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True
    jobs = resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs)


# ---------------------------------------------------------------------------------------------
# The trainer.

class TrainState(tf.Module):
    """Scalars the loop needs to resume: step, images seen, ticks done, path-length mean."""

    def __init__(self):
        super().__init__(name="state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.cur_nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_nimg")
        self.tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="tick")
        self.pl_mean = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="pl_mean")


class Trainer:
    """Networks, optimizers, ADA and the per-phase step functions of one training run.

    Args:
      preset: the resolved preset (data resolution, channels and classes already applied).
      layout: class layout (c_dim and fake-label frequencies).
      strategy: a `tf.distribute.Strategy`.
    """

    def __init__(self, preset: Preset, layout: ClassLayout, strategy: tf.distribute.Strategy):
        self.preset, self.layout, self.strategy = preset, layout, strategy
        self.cfg = t = preset.train
        self.num_replicas = strategy.num_replicas_in_sync
        self.batch = t.batch_size
        self.local_batch = _check_batch(t, preset.discriminator, self.num_replicas)
        self.pl_batch = self.batch // t.pl_batch_shrink
        self.mixed_precision = t.mixed_precision
        g_cfg = preset.generator
        self.res, self.channels, self.z_dim, self.c_dim = (g_cfg.img_resolution, g_cfg.img_channels,
                                                           g_cfg.z_dim, g_cfg.c_dim)
        with strategy.scope():
            self.G = Generator(preset.generator, name="G")
            self.D = Discriminator(preset.discriminator, name="D")
            self.G_ema = Generator(preset.generator, name="G_ema")
            if t.freeze_d:
                self.D.freeze_blocks(t.freeze_d)
            self.opt_G = make_optimizer(t.g_lr, t.betas, t.epsilon, t.pl_interval if t.pl_weight > 0 else 1,
                                        t.mixed_precision)
            self.opt_D = make_optimizer(t.d_lr, t.betas, t.epsilon, t.r1_interval if t.r1_gamma > 0 else 1,
                                        t.mixed_precision)
            self.opt_G.build(self.G.trainable_variables)
            self.opt_D.build(self.D.trainable_variables)
            self.pipe = AugmentPipe.from_spec(t.augment_pipe, p=t.aug_p if t.aug != "none" else 0.0)
            self.ada = AdaController(self.pipe, batch_size=t.batch_size, target=t.ada_target,
                                     ada_interval=t.ada_interval, ada_kimg=t.ada_kimg)
            self.state = TrainState()
        self.rng = tf.random.Generator.from_seed(t.seed)  # host-side: the seeds of every step
        self._copy_G_to_ema()
        probs = np.asarray(layout.probs if layout.c_dim else [1.0], np.float32)
        self._class_cdf = tf.constant(np.cumsum(probs)[:-1], tf.float32)  # [c_dim - 1]

        def compile_(fn):
            return tf.function(fn, jit_compile=True) if t.xla else fn

        self._gmain_compute = compile_(self._gmain)
        self._greg_compute = compile_(self._greg)
        self._dmain_compute = compile_(self._dmain)
        self._dreg_compute = compile_(self._dreg)
        self.gmain_step = tf.function(self._gmain_step)
        self.greg_step = tf.function(self._greg_step)
        self.dmain_step = tf.function(self._dmain_step)
        self.dreg_step = tf.function(self._dreg_step)
        self.ema_step = tf.function(self._ema_step)

    # -- checkpointing ------------------------------------------------------------------------
    def checkpoint(self) -> tf.train.Checkpoint:
        """The full training state as one `tf.train.Checkpoint`."""
        nets = {k: ckpt_lib.NetworkVariables(v) for k, v in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema))}
        return tf.train.Checkpoint(**nets, opt_G=self.opt_G, opt_D=self.opt_D, augment=self.pipe, ada=self.ada,
                                   state=self.state, rng=self.rng)

    def _copy_G_to_ema(self) -> None:
        for v_ema, v in zip(self.G_ema.variables, self.G.variables):
            v_ema.assign(v)

    # -- random inputs (global batch, sliced per replica) -------------------------------------
    def _replica_id(self) -> tf.Tensor:
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.cast(rid, tf.int32)

    def _latents(self, seed, n_global: int, rid) -> tuple[tf.Tensor, tf.Tensor | None]:
        """z [n_local, z_dim] and one-hot c [n_local, c_dim] (or None) for this replica."""
        n_local = n_global // self.num_replicas
        z = _replica_slice(random_normal(_subseed(seed, 0), n_global, self.z_dim), rid, n_local)
        c = None
        if self.c_dim:
            u = random_uniform(_subseed(seed, 1), n_global, 1)  # [N, 1]
            labels = tf.reduce_sum(tf.cast(u >= self._class_cdf[None, :], tf.int32), axis=1)
            c = tf.one_hot(_replica_slice(labels, rid, n_local), self.c_dim, dtype=tf.float32)
        return z, c

    def _mapping(self, z, c, seed, n_global: int, rid):
        """(ws [n_local, num_ws, w_dim] after style mixing, the unmixed ws for the w_avg update)."""
        ws = unmixed = self.G.mapping(z, c)
        if self.cfg.style_mixing_prob > 0:
            n_local = n_global // self.num_replicas
            z2 = _replica_slice(random_normal(_subseed(seed, 2), n_global, self.z_dim), rid, n_local)
            ws = losses.style_mix(ws, self.G.mapping(z2, c), self.cfg.style_mixing_prob, _subseed(seed, 3))
        return ws, unmixed

    def _noise_seed(self, seed, rid):
        return _subseed(seed, 4) + tf.stack([tf.constant(0, tf.int64), tf.cast(rid, tf.int64)])

    def _augment(self, img, seed, n_global: int, rid):
        """ADA on this replica's slice of a global batch (the same draws as on one device)."""
        if self.cfg.aug == "none":
            return img
        n_local = n_global // self.num_replicas
        params = self.pipe.draw_params(n_global, self.res, self.res, seed)
        params = {k: _replica_slice(v, rid, n_local) for k, v in params.items()}
        return self.pipe.apply(img, params)

    def _scale(self, opt, loss):
        return opt.scale_loss(loss) if self.mixed_precision else loss

    @staticmethod
    def _grads(tape, loss, variables):
        grads = tape.gradient(loss, variables)
        return [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)]

    # -- phase computations (per replica; XLA-compiled with --xla) ------------------------------
    def _gmain(self, seed, rid):
        B = self.batch
        z, c = self._latents(seed, B, rid)
        with tf.GradientTape() as tape:
            ws, _ = self._mapping(z, c, seed, B, rid)
            img = self.G.synthesis(ws, noise_mode="random", noise_seed=self._noise_seed(seed, rid))
            logits = self.D(self._augment(img, _subseed(seed, 5), B, rid), c)
            per_sample = tf.reshape(losses.nonsaturating_generator_loss(logits), [-1])
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=B)
            scaled = self._scale(self.opt_G, loss)
        grads = self._grads(tape, scaled, self.G.trainable_variables)
        return grads, {"G_loss": loss, "fake_sign_G": tf.reduce_sum(tf.sign(logits)) / B}

    def _greg(self, seed, rid, pl_mean):
        t, B = self.cfg, self.pl_batch
        n_local = B // self.num_replicas
        z, c = self._latents(seed, B, rid)
        pl_noise = random_normal(_subseed(seed, 6), B, self.res * self.res * self.channels)
        pl_noise = tf.reshape(_replica_slice(pl_noise, rid, n_local), [n_local, self.res, self.res, self.channels])
        pl_noise = pl_noise / self.res  # N(0, 1) / sqrt(H * W)
        noise_seed = self._noise_seed(seed, rid)
        with tf.GradientTape() as tape:
            ws, _ = self._mapping(z, c, seed, B, rid)
            penalty, new_mean, _ = losses.path_length_penalty(
                lambda w: self.G.synthesis(w, noise_mode="random", noise_seed=noise_seed), ws, pl_mean,
                pl_decay=t.pl_decay, noise=pl_noise)
            loss = tf.nn.compute_average_loss(penalty * (t.pl_weight * t.pl_interval), global_batch_size=B)
            scaled = self._scale(self.opt_G, loss)
        grads = self._grads(tape, scaled, self.G.trainable_variables)
        return grads, {"pl_penalty": tf.reduce_sum(penalty) / B, "pl_mean": new_mean / self.num_replicas}

    def _dmain(self, seed, rid, real, c_real):
        B = self.batch
        z, c = self._latents(seed, B, rid)
        ws, w = self._mapping(z, c, seed, B, rid)
        fake = self.G.synthesis(ws, noise_mode="random", noise_seed=self._noise_seed(seed, rid))
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            fake_logits = self.D(self._augment(fake, _subseed(seed, 5), B, rid), c)
            real_logits = self.D(self._augment(real, _subseed(seed, 7), B, rid), c_real)
            per_sample = tf.reshape(losses.logistic_discriminator_loss(real_logits, fake_logits), [-1])
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=B)
            scaled = self._scale(self.opt_D, loss)
        grads = self._grads(tape, scaled, self.D.trainable_variables)
        stats = {"D_loss": loss, "real_sign": tf.reduce_sum(tf.sign(real_logits)) / B,
                 "fake_sign": tf.reduce_sum(tf.sign(fake_logits)) / B,
                 "w_mean": tf.reduce_mean(w[:, 0], axis=0) / self.num_replicas}
        return grads, stats, real_logits

    def _dreg(self, seed, rid, real, c_real):
        t, B = self.cfg, self.batch
        with tf.GradientTape() as tape:
            penalty, _ = losses.r1_penalty(
                lambda x: self.D(self._augment(x, _subseed(seed, 7), B, rid), c_real), real)
            loss = tf.nn.compute_average_loss(penalty * (t.r1_gamma / 2 * t.r1_interval), global_batch_size=B)
            scaled = self._scale(self.opt_D, loss)
        grads = self._grads(tape, scaled, self.D.trainable_variables)
        return grads, {"r1_penalty": tf.reduce_sum(penalty) / B}

    # -- phase steps (cross-replica tf.functions) ---------------------------------------------
    def _sum(self, per_replica: dict) -> dict:
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def _gmain_step(self, seed):
        def replica_fn(seed):
            grads, stats = self._gmain_compute(seed, self._replica_id())
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        return self._sum(self.strategy.run(replica_fn, args=(seed,)))

    def _greg_step(self, seed):
        def replica_fn(seed):
            grads, stats = self._greg_compute(seed, self._replica_id(), self.state.pl_mean.read_value())
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        stats = self._sum(self.strategy.run(replica_fn, args=(seed,)))
        self.state.pl_mean.assign(stats.pop("pl_mean"))
        return stats

    def _dmain_step(self, seed, real, c_real):
        def replica_fn(seed, real, c_real):
            grads, stats, real_logits = self._dmain_compute(seed, self._replica_id(), real, c_real)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats, real_logits
        stats, real_logits = self.strategy.run(replica_fn, args=(seed, real, c_real))
        stats = self._sum(stats)
        w_avg = self.G.mapping.w_avg
        w_mean = stats.pop("w_mean")
        w_avg.assign(w_mean + (w_avg - w_mean) * self.preset.generator.w_avg_beta)
        if self.cfg.aug == "ada":
            self.ada.update(self.strategy.gather(real_logits, axis=0))
        return stats

    def _dreg_step(self, seed, real, c_real):
        def replica_fn(seed, real, c_real):
            grads, stats = self._dreg_compute(seed, self._replica_id(), real, c_real)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats
        return self._sum(self.strategy.run(replica_fn, args=(seed, real, c_real)))

    def _ema_step(self, beta):
        for v_ema, v in zip(self.G_ema.trainable_variables, self.G.trainable_variables):
            v_ema.assign(v + (v_ema - v) * beta)
        for b_ema, b in zip(self.G_ema.non_trainable_variables, self.G.non_trainable_variables):
            b_ema.assign(b)

    # -- one iteration ------------------------------------------------------------------------
    def _distribute(self, x: tf.Tensor):
        """Global batch [B, ...] -> each local replica's slice."""
        if self.num_replicas == 1:
            return x
        n = self.local_batch

        def value_fn(ctx):
            rid = ctx.replica_id_in_sync_group
            return x[rid * n:(rid + 1) * n]
        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def train_step(self, real: tf.Tensor, labels: tf.Tensor, step: int, cur_nimg: int) -> dict:
        """Runs the phases of iteration `step` on a global batch of reals; returns its stats (tensors).

        real: [B, H, W, C] float32 in [-1, 1]; labels: [B] int32 class ids.
        """
        t = self.cfg
        seeds = tf.transpose(self.rng.make_seeds(4))  # [4, 2] int64
        real_d, c_real_d = self._distribute(real), None
        if self.c_dim:
            c_real_d = self._distribute(tf.one_hot(labels, self.c_dim, dtype=tf.float32))
        stats = dict(self.gmain_step(seeds[0]))
        if t.pl_weight > 0 and step % t.pl_interval == 0:
            stats.update(self.greg_step(seeds[1]))
        stats.update(self.dmain_step(seeds[2], real_d, c_real_d))
        if t.r1_gamma > 0 and step % t.r1_interval == 0:
            stats.update(self.dreg_step(seeds[3], real_d, c_real_d))
        self.ema_step(tf.constant(ema_beta(cur_nimg, self.batch, t.ema_kimg, t.ema_rampup), tf.float32))
        return stats

    # -- samples ------------------------------------------------------------------------------
    def sample_grids(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """G_ema on fixed latents z [GRID_W*GRID_H, z_dim], constant noise -> {class or '': images}."""
        out = {}
        classes = self.layout.class_names if self.c_dim else ("",)
        for i, name in enumerate(classes):
            c = tf.one_hot(tf.fill([len(z)], i), self.c_dim) if self.c_dim else None
            imgs = []
            for start in range(0, len(z), 16):
                zc = tf.constant(z[start:start + 16])
                cc = None if c is None else c[start:start + 16]
                imgs.append(self.G_ema(zc, cc, noise_mode="const").numpy())
            out[name] = np.concatenate(imgs)
        return out


# ---------------------------------------------------------------------------------------------
# The library entry.

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
          verbose: bool = True, options: dict | None = None, on_finish=None) -> dict:
    """Trains StyleGAN2 into `run_dir` (created if missing); returns the last tick's stats.

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
    """
    run_dir = Path(run_dir)
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    layout = class_layout(manifest, data_dir, class_name, conditional)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if isinstance(strategy, str):
        strategy_name = strategy
        strategy = get_strategy(strategy)
    else:
        strategy_name = type(strategy).__name__

    if resume is None and (run_dir / ckpt_lib.CHECKPOINT_DIR / "checkpoint").is_file():
        resume = run_dir  # a killed run, started again: continue it
    resume_ckpt, full_resume = None, False
    if resume is not None:
        resume_info = ckpt_lib.load_run_info(resume)
        resume_ckpt = ckpt_lib.latest_checkpoint(resume)
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
            base = get_preset(preset) if isinstance(preset, str) else preset
            preset = dataclasses.replace(base, generator=stored.generator, discriminator=stored.discriminator)
    preset = resolve_preset(preset, manifest, layout, with_mask, train_overrides)
    if resume is not None:
        _networks_shape_check(stored, preset, resume)

    keras.utils.set_random_seed(preset.train.seed)  # the initial weights
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16" if preset.train.mixed_precision else "float32")
    try:
        trainer = Trainer(preset, layout, strategy)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    t = preset.train
    is_chief = _is_chief(strategy)

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
                            **(options or {})}}
    ckpt_dir = run_dir / ckpt_lib.CHECKPOINT_DIR
    scratch = None
    if is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / ckpt_lib.RUN_INFO, run_info)
    else:  # non-chief workers save too (collectives) but into a scratch folder
        scratch = Path(tempfile.mkdtemp(prefix="tfstylegan-worker-"))
        ckpt_dir = scratch
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=MAX_TO_KEEP)
    reporter = RunReporter(run_dir, tensorboard=tensorboard, enabled=is_chief)
    try:
        last = _loop(trainer, manager, reporter, run_info, data_dir, class_name, with_mask, verbose and is_chief,
                     is_chief)
        if on_finish is not None:
            on_finish(trainer)
        return last
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
            "mixed_precision": t.mixed_precision, "xla": t.xla, "seed": t.seed}


def _loop(trainer: Trainer, manager, reporter: RunReporter, run_info: dict, data_dir, class_name, with_mask,
          verbose: bool, is_chief: bool) -> dict:
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
        reporter.hparams(_hparams(trainer.preset, run_info))

    def save():
        state.step.assign(step)
        state.cur_nimg.assign(cur_nimg)
        state.tick.assign(tick)
        manager.save(checkpoint_number=step)
        if is_chief:
            write_json(Path(manager.directory) / ckpt_lib.RUN_INFO, run_info)

    def snapshot_images():
        grids = trainer.sample_grids(grid_z)
        tb = {name: grid_uint8(imgs, GRID_W) for name, imgs in grids.items()}
        reporter.images("samples", tb, step=cur_nimg)
        reporter.png(f"fakes{cur_nimg // 1000:06d}.png", np.concatenate(list(tb.values()), axis=0))

    last = {}
    tick_start_nimg, tick_start_time = cur_nimg, time.perf_counter()
    tick_stats: dict[str, list] = {}
    done = cur_nimg >= total_nimg
    while not done:
        real, labels = next(stream)
        stats = trainer.train_step(real, labels, step, cur_nimg)
        for k, v in stats.items():
            tick_stats.setdefault(k, []).append(v)
        step += 1
        cur_nimg += trainer.batch
        done = cur_nimg >= total_nimg
        if not done and cur_nimg < tick_start_nimg + t.kimg_per_tick * 1000:
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
                "Resources/peak_host_mem_gb": host_memory_gb()}
        gpu = device_memory_gb()
        if gpu is not None:
            last["Resources/peak_gpu_mem_gb"] = gpu
        reporter.scalars(last, step=cur_nimg)
        if verbose:
            print(tick_line(tick, cur_nimg / 1000, t.total_kimg, sec_per_kimg, last["Timing/img_per_sec"],
                            last["Loss/G/loss"], last["Loss/D/loss"], p), flush=True)
        if done or tick % max(t.image_snapshot_ticks, 1) == 0:
            snapshot_images()
        if done or tick % max(t.snapshot_ticks, 1) == 0:
            save()
        tick_stats = {}
        tick_start_nimg, tick_start_time = cur_nimg, time.perf_counter()
    return last
