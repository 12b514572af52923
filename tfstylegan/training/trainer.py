"""`Trainer`: networks, optimizers, ADA and the per-phase step functions of one StyleGAN2 run.

One iteration ("step") consumes one global batch of reals and runs the phases of `phases.py`,
then G_ema <- lerp(G, G_ema, beta) with beta = 0.5 ** (batch / max(ema_nimg, 1e-8)),
ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup), buffers (w_avg, noise_const) copied.
Adam (`ReferenceAdam`: torch's epsilon) has its lr and betas corrected for lazy regularisation:
lr * c, beta ** c, c = interval / (interval + 1). ADA steers the augmentation strength p from the
sign of D on reals (Dmain and Dreg) towards `ada_target`, adjusting every `ada_interval` iterations
after the EMA update (tfstylegan.augment.AdaController). TF32 is off unless `allow_tf32`.

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

    With the regulariser applied every `interval` steps, c = interval / (interval + 1) and Adam
    uses lr * c, beta1 ** c, beta2 ** c. As in stylegan2-ada-pytorch this holds for any interval,
    also 1 (two steps per iteration at half the rate) and whether or not the regulariser's weight is 0.
    """
    c = interval / (interval + 1)
    return {"learning_rate": lr * c, "beta_1": betas[0] ** c, "beta_2": betas[1] ** c, "epsilon": epsilon}


@keras.saving.register_keras_serializable(package="tfstylegan")
class ReferenceAdam(keras.optimizers.Adam):
    """Adam with torch.optim.Adam's epsilon, as stylegan2-ada-pytorch trains:

        w <- w - lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + epsilon)

    Keras' Adam adds epsilon to sqrt(v) before v's bias correction, an effective epsilon of
    epsilon / sqrt(1 - beta2^t): 11x the reference's at the first step with beta2 = 0.99 ** 0.8, which
    damps the early steps of parameters with small gradients (measured on the golden training run,
    4 iterations: G_ema 1.5e-4, G 2.2e-4, D 1.7e-3 relative from the reference with Keras' Adam;
    2e-6, 3e-6, 3e-7 with this update). Same slot
    variables as Adam, so checkpoints of either load into the other.
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("ReferenceAdam does not implement amsgrad. Received: amsgrad=True")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        ops = keras.ops
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        bias1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / bias1), denominator))


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
    """`ReferenceAdam` (lazy-regularisation corrected), wrapped in a LossScaleOptimizer under mixed precision."""
    opt = ReferenceAdam(**lazy_adam_hparams(lr, tuple(betas), epsilon, interval))
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def check_batch(train, d_config, num_replicas: int) -> int:
    """Validates the global batch against replicas, micro-batches (`batch_gpu`), minibatch-std groups and PL
    shrink; returns the per-replica batch."""
    batch = train.batch_size
    if batch % num_replicas:
        raise UserError(f"--batch {batch} is not divisible by the {num_replicas} replicas; use a multiple of "
                        f"{num_replicas} (e.g. --batch {num_replicas * max(1, batch // num_replicas)}).")
    local = batch // num_replicas
    micro = train.batch_gpu or local
    if local % micro:
        fit = max(d for d in range(1, min(micro, local) + 1) if local % d == 0)
        raise UserError(f"--batch_gpu {micro} must divide the per-replica batch {local} (--batch {batch} over "
                        f"{num_replicas} replicas); e.g. --batch_gpu {fit}.")
    group = min(d_config.mbstd_group_size, micro)
    if micro % group:
        what = "per-replica batch" if micro == local else "--batch_gpu micro-batch"
        raise UserError(f"The {what} {micro} (--batch {batch} over {num_replicas} replicas) is not divisible "
                        f"by the minibatch-stddev group {d_config.mbstd_group_size}; use a --batch (or --batch_gpu) "
                        f"that gives a multiple of {d_config.mbstd_group_size}.")
    if train.pl_weight > 0 and micro % train.pl_batch_shrink:
        raise UserError(f"The per-replica batch{' (--batch_gpu)' if micro != local else ''} {micro} is not "
                        f"divisible by pl_batch_shrink {train.pl_batch_shrink}; use an even one.")
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
        # TF32 (10-bit mantissa matmuls/convolutions on Ampere and newer GPUs) off unless asked for, as the
        # reference: R1 and the path length are gradients of gradients and need float32's precision.
        tf.config.experimental.enable_tensor_float_32_execution(bool(t.allow_tf32))
        self.num_replicas = strategy.num_replicas_in_sync
        self.batch = t.batch_size
        self.local_batch = check_batch(t, preset.discriminator, self.num_replicas)
        self.rounds = self.local_batch // (t.batch_gpu or self.local_batch)  # micro-batches per replica and phase
        self.pl_batch = self.batch // t.pl_batch_shrink
        self.mixed_precision = t.mixed_precision
        g_cfg = preset.generator
        self.res, self.channels, self.z_dim, self.c_dim = (g_cfg.img_resolution, g_cfg.img_channels,
                                                           g_cfg.z_dim, g_cfg.c_dim)
        with strategy.scope():
            self.G, self.D, self.G_ema = build_networks(preset)
            if t.freeze_d:
                self.D.freeze_blocks(t.freeze_d)
            # The lazy-regularisation correction applies even when gamma or pl_weight is 0 (as the reference).
            self.opt_G = make_optimizer(t.g_lr, t.betas, t.epsilon, t.pl_interval, t.mixed_precision)
            self.opt_D = make_optimizer(t.d_lr, t.betas, t.epsilon, t.r1_interval, t.mixed_precision)
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

        # autograph=False: the steps branch on Python values only (config, phase, micro-batch count), so
        # AutoGraph's source conversion of every called function (the networks, Keras) is pure cost:
        # it was a third of the demo preset's first-iteration tracing (the same graphs, the same losses).
        def compile_(fn):
            return tf.function(fn, jit_compile=True, autograph=False) if t.xla else fn

        self._gmain_compute = compile_(self._gmain)
        self._greg_compute = compile_(self._greg)
        self._dmain_compute = compile_(self._dmain)
        self._dreg_compute = compile_(self._dreg)
        self.gmain_step = tf.function(self._gmain_step, autograph=False)
        self.greg_step = tf.function(self._greg_step, autograph=False)
        self.dmain_step = tf.function(self._dmain_step, autograph=False)
        self.dreg_step = tf.function(self._dreg_step, autograph=False)
        self.ema_step = tf.function(self._ema_step, autograph=False)
        self.ada_step = tf.function(self.ada.update, autograph=False)
        # the sample grids of every tick: one traced call per chunk instead of a few thousand eager ops
        self._sample = tf.function(lambda z, c: self.G_ema(z, c, noise_mode="const"), autograph=False)

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

    def _micro_batches(self, rid, compute, *local):
        """`compute(slot, *rows)` on each micro-batch of this replica in turn (ADA's `batch_gpu`), summed.

        Micro-batch k is slot rid * rounds + k and takes every rounds-th row of the local tensors from
        row k (as `phases._replica_slice` slices the draws). Gradients and statistics (each already
        normalised by the global batch) are summed and the real logits concatenated, so one optimizer
        step follows as with the whole batch. Each micro-batch waits for the previous one's gradients:
        the graph holds the activations of one at a time.
        """
        R = self.rounds
        if R == 1:
            return compute(rid, *local)
        total = None
        for k in range(R):
            with tf.control_dependencies(total[0] if total is not None else []):
                out = compute(rid * R + k, *[x if x is None else x[k::R] for x in local])
            if total is None:
                total = out
                continue
            grads = [a + b for a, b in zip(total[0], out[0])]
            stats = {name: total[1][name] + out[1][name] for name in total[1]}
            total = (grads, stats) + tuple(tf.concat([a, b], axis=0) for a, b in zip(total[2:], out[2:]))
        return total

    def _update_w_avg(self, w_mean) -> None:
        """w_avg <- lerp(mean w of one mapping call, w_avg, w_avg_beta): after each of Gmain, Greg, Dmain."""
        w_avg = self.G.mapping.w_avg
        w_avg.assign(w_mean + (w_avg - w_mean) * self.preset.generator.w_avg_beta)

    def _accumulate_ada(self, per_replica_logits) -> None:
        """Adds the signs of D's real logits of every replica to the ADA statistic (sums, not a gather: no
        all_gather, which also runs eagerly)."""
        if self.cfg.aug != "ada":
            return

        def signs(logits):
            signs = tf.sign(tf.cast(tf.reshape(logits, [-1]), tf.float32))
            return tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32)

        sums = self.strategy.run(signs, args=(per_replica_logits,))
        total, count = (self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in sums)
        self.ada.accumulate_signs(total, count)

    def _gmain_step(self, seed, inputs=None):
        def replica_fn(seed, inputs):
            grads, stats = self._micro_batches(self._replica_id(), lambda slot: self._gmain_compute(seed, slot, inputs))
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        stats = self._sum(self.strategy.run(replica_fn, args=(seed, inputs)))
        self._update_w_avg(stats.pop("w_mean"))
        return stats

    def _greg_step(self, seed, inputs=None):
        def replica_fn(seed, inputs):
            pl_mean = self.state.pl_mean.read_value()
            grads, stats = self._micro_batches(self._replica_id(),
                                               lambda slot: self._greg_compute(seed, slot, pl_mean, inputs))
            self.opt_G.apply(grads, self.G.trainable_variables)
            return stats
        stats = self._sum(self.strategy.run(replica_fn, args=(seed, inputs)))
        self.state.pl_mean.assign(stats.pop("pl_mean"))
        self._update_w_avg(stats.pop("w_mean"))
        return stats

    def _dmain_step(self, seed, real, c_real, inputs=None):
        def replica_fn(seed, real, c_real, inputs):
            grads, stats, real_logits = self._micro_batches(
                self._replica_id(), lambda slot, x, c: self._dmain_compute(seed, slot, x, c, inputs), real, c_real)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats, real_logits
        stats, real_logits = self.strategy.run(replica_fn, args=(seed, real, c_real, inputs))
        stats = self._sum(stats)
        self._update_w_avg(stats.pop("w_mean"))
        self._accumulate_ada(real_logits)
        return stats

    def _dreg_step(self, seed, real, c_real, inputs=None):
        def replica_fn(seed, real, c_real, inputs):
            grads, stats, real_logits = self._micro_batches(
                self._replica_id(), lambda slot, x, c: self._dreg_compute(seed, slot, x, c, inputs), real, c_real)
            self.opt_D.apply(grads, self.D.trainable_variables)
            return stats, real_logits
        stats, real_logits = self.strategy.run(replica_fn, args=(seed, real, c_real, inputs))
        self._accumulate_ada(real_logits)
        return self._sum(stats)

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
        if inputs and (self.num_replicas != 1 or self.rounds != 1):
            raise ValueError(f"Given phase inputs need one replica and no micro-batches. Received: "
                             f"{self.num_replicas} replicas, {self.rounds} micro-batches")
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
        if t.aug == "ada":
            self.ada_step()  # after the EMA, as the reference: every ada_interval iterations p moves
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
                imgs.append(self._sample(zc, cc).numpy())
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
