"""`Trainer`: networks, optimizers, ADA and the per-phase step functions of one StyleGAN2 run.

One iteration ("step") consumes one global batch of reals and runs the phases of `phases.py`,
then G_ema <- lerp(G, G_ema, beta) with beta = 0.5 ** (batch / max(ema_nimg, 1e-8)),
ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup), buffers (w_avg, noise_const) copied.
Adam's lr and betas are corrected for lazy regularisation: lr * c, beta ** c,
c = interval / (interval + 1). ADA steers the augmentation strength p from the sign of D on
reals towards `ada_target` (tfstylegan.augment.AdaController).

Distribution (`tf.distribute`): every phase is one `tf.function` that calls `strategy.run` on a
replica function; the replica function runs the phase's compute (forward, losses, gradients) as
one function, XLA-compiled with `--xla`, and then `optimizer.apply` (Keras all-reduces gradients
with SUM). ADA, w_avg, pl_mean and the EMA update in the cross-replica context. Each step draws
its seeds from one checkpointed `tf.random.Generator` on the host.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tfstylegan.augment import AdaController, AugmentPipe
from tfstylegan.config import Preset
from tfstylegan.data.classes import ClassLayout
from tfstylegan.networks import build_networks
from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training.phases import StyleGAN2Phases
from tfstylegan.utils.errors import UserError


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


def check_batch(train, d_config, num_replicas: int) -> int:
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


class TrainState(tf.Module):
    """Scalars the loop needs to resume: step, images seen, ticks done, path-length mean."""

    def __init__(self):
        super().__init__(name="state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.cur_nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_nimg")
        self.tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="tick")
        self.pl_mean = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="pl_mean")


class Trainer(StyleGAN2Phases):
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
        self.local_batch = check_batch(t, preset.discriminator, self.num_replicas)
        self.pl_batch = self.batch // t.pl_batch_shrink
        self.mixed_precision = t.mixed_precision
        g_cfg = preset.generator
        self.res, self.channels, self.z_dim, self.c_dim = (g_cfg.img_resolution, g_cfg.img_channels,
                                                           g_cfg.z_dim, g_cfg.c_dim)
        with strategy.scope():
            self.G, self.D, self.G_ema = build_networks(preset)
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

    # -- phase steps (cross-replica tf.functions) ---------------------------------------------
    def _sum(self, per_replica: dict) -> dict:
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def _update_w_avg(self, w_mean) -> None:
        """w_avg <- lerp(mean w of one mapping call, w_avg, w_avg_beta): after each of Gmain, Greg, Dmain."""
        w_avg = self.G.mapping.w_avg
        w_avg.assign(w_mean + (w_avg - w_mean) * self.preset.generator.w_avg_beta)

    def _gmain_step(self, seed, inputs=None):
        def replica_fn(seed, inputs):
            grads, stats = self._gmain_compute(seed, self._replica_id(), inputs)
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        stats = self._sum(self.strategy.run(replica_fn, args=(seed, inputs)))
        self._update_w_avg(stats.pop("w_mean"))
        return stats

    def _greg_step(self, seed, inputs=None):
        def replica_fn(seed, inputs):
            grads, stats = self._greg_compute(seed, self._replica_id(), self.state.pl_mean.read_value(), inputs)
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        stats = self._sum(self.strategy.run(replica_fn, args=(seed, inputs)))
        self.state.pl_mean.assign(stats.pop("pl_mean"))
        self._update_w_avg(stats.pop("w_mean"))
        return stats

    def _dmain_step(self, seed, real, c_real, inputs=None):
        def replica_fn(seed, real, c_real, inputs):
            grads, stats, real_logits = self._dmain_compute(seed, self._replica_id(), real, c_real, inputs)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats, real_logits
        stats, real_logits = self.strategy.run(replica_fn, args=(seed, real, c_real, inputs))
        stats = self._sum(stats)
        self._update_w_avg(stats.pop("w_mean"))
        if self.cfg.aug == "ada":
            self.ada.update(self.strategy.gather(real_logits, axis=0))
        return stats

    def _dreg_step(self, seed, real, c_real, inputs=None):
        def replica_fn(seed, real, c_real, inputs):
            grads, stats, _ = self._dreg_compute(seed, self._replica_id(), real, c_real, inputs)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats
        return self._sum(self.strategy.run(replica_fn, args=(seed, real, c_real, inputs)))

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

    def train_step(self, real: tf.Tensor, labels: tf.Tensor, step: int, cur_nimg: int,
                   inputs: dict | None = None) -> dict:
        """Runs the phases of iteration `step` on a global batch of reals; returns its stats (tensors).

        real: [B, H, W, C] float32 in [-1, 1]; labels: [B] int32 class ids.
        inputs: optional {phase: its inputs} (phases.py) replacing the draws of those phases
          (one replica only); the tests replay the reference's draws with it.
        """
        t = self.cfg
        inputs = inputs or {}
        if inputs and self.num_replicas != 1:
            raise ValueError(f"Given phase inputs need one replica. Received: {self.num_replicas} replicas")
        seeds = tf.transpose(self.rng.make_seeds(4))  # [4, 2] int64
        real_d, c_real_d = self._distribute(real), None
        if self.c_dim:
            c_real_d = self._distribute(tf.one_hot(labels, self.c_dim, dtype=tf.float32))
        stats = dict(self.gmain_step(seeds[0], inputs.get("Gmain")))
        if t.pl_weight > 0 and step % t.pl_interval == 0:
            stats.update(self.greg_step(seeds[1], inputs.get("Greg")))
        stats.update(self.dmain_step(seeds[2], real_d, c_real_d, inputs.get("Dmain")))
        if t.r1_gamma > 0 and step % t.r1_interval == 0:
            stats.update(self.dreg_step(seeds[3], real_d, c_real_d, inputs.get("Dreg")))
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


@contextlib.contextmanager
def dtype_policy(mixed_precision: bool):
    """Sets Keras' global dtype policy for building networks ('mixed_float16' or 'float32'), then restores it."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_trainer(preset: Preset, layout: ClassLayout, strategy: tf.distribute.Strategy) -> Trainer:
    """A `Trainer` whose networks are built under the preset's dtype policy (the global policy is restored)."""
    with dtype_policy(preset.train.mixed_precision):
        return Trainer(preset, layout, strategy)
