"""The four phases of a StyleGAN2-ADA iteration: stylegan2-ada-pytorch `loss.py` (StyleGAN2Loss).

    Gmain   every step                  non-saturating G loss on D(augment(G(z, c)))
    Greg    every pl_interval steps     path length on batch / pl_batch_shrink, gain pl_interval
    Dmain   every step                  logistic D loss on augmented fakes and reals
    Dreg    every r1_interval steps     R1 * gamma / 2, gain r1_interval, on augmented reals, the
                                        gradient taken w.r.t. the non-augmented reals

As in the reference: the mapping network's tracked w_avg is updated at each of its calls in Gmain,
Greg and Dmain (not the style-mixing call), in that order; the path-length target
a = pl_mean + decay * (mean(lengths) - pl_mean) keeps its gradient; the ADA statistic counts the
sign of D on reals in Dmain and Dreg; float32 gradients are sanitised (NaN -> 0, +-inf -> +-1e5,
as torch.nan_to_num) before each optimizer step. tests/test_golden_reference.py checks each phase's
losses and gradients against the reference's with the reference's own random draws.

Inputs. Each phase computation is a function of explicit inputs (per replica):

    z [n, z_dim], c [n, c_dim] (conditional only)   the latents and fake labels
    mix_z [n, z_dim], cutoff (int32 scalar)         style mixing: ws[:, cutoff:] from mix_z
                                                    (cutoff = num_ws: no mixing)
    noise_seed (int64 [2]) or noise (list of [n, r, r, 1], one per synthesis layer)
    aug_fake, aug_real                              named augmentation draws (`augment.DRAWS`)
    pl_noise [n, H, W, C]                           N(0, 1) path-length noise (Greg)

`draw_inputs` draws them from the step's seed with the counter-based hash of `tfstylegan.ops.random`
(identical eagerly and under XLA, where TF's stateless ops differ) for the *global* batch, and
each replica takes its slice, so N replicas see what one device sees with the same global batch;
the synthesis noise comes from `noise_seed` (TF stateless normal, folded with the replica id).
A caller may give the inputs instead (the golden tests replay the reference's draws).

`pl_mean` under several replicas: each replica penalises its lengths against the mean it updated
from its own slice (as ADA's per-GPU `pl_mean`); the stored `pl_mean` is the replicas' average,
which equals the single-device update.
"""

from __future__ import annotations

import tensorflow as tf

from tfstylegan import losses
from tfstylegan.augment import draw_random
from tfstylegan.ops.random import random_normal, random_uniform

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


def _subseed(seed: tf.Tensor, k: int) -> tf.Tensor:
    """An independent seed [2] derived from `seed` [2] (int64) for stream `k`."""
    return seed + tf.constant([0, 7919 * (k + 1)], tf.int64)


def _replica_slice(x: tf.Tensor, rid, n_local: int, rounds: int = 1) -> tf.Tensor:
    """Rows [rid * n_local, (rid + 1) * n_local) of a global-batch tensor, with a static batch size.

    With micro-batches (`batch_gpu`, `rounds` per replica) `rid` is a slot, replica * rounds + k: every
    rounds-th row of the replica's rows from row k, so that each minibatch-std group of a micro-batch
    (group <= micro-batch) is one of the full batch's groups (MinibatchStd groups rows i mod N/G).
    """
    if rounds == 1:
        return tf.ensure_shape(x[rid * n_local:(rid + 1) * n_local], [n_local] + x.shape[1:].as_list())
    replica, k = rid // rounds, rid % rounds
    rows = x[replica * n_local + k:(replica + 1) * n_local:rounds]
    return tf.ensure_shape(rows, [n_local // rounds] + x.shape[1:].as_list())


def nan_to_num(g: tf.Tensor) -> tf.Tensor:
    """torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5): finite values are kept as they are."""
    g = tf.where(tf.math.is_nan(g), tf.zeros_like(g), g)
    return tf.where(tf.math.is_inf(g), tf.sign(g) * tf.cast(1e5, g.dtype), g)


class StyleGAN2Phases:
    """The phase computations; mixed into `Trainer`, which provides the networks, optimizers and sizes
    (G, D, pipe, cfg, batch, pl_batch, num_replicas, rounds, res, channels, z_dim, c_dim, _class_cdf,
    mixed_precision). `rid` is the replica's slot: replica * rounds + micro-batch (`_replica_slice`)."""

    # -- random inputs (global batch, sliced per replica) -------------------------------------
    def _replica_id(self) -> tf.Tensor:
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.cast(rid, tf.int32)

    def draw_inputs(self, phase: str, seed: tf.Tensor, rid) -> dict:
        """This replica's inputs of `phase` (see the module docstring), drawn from `seed` (int64 [2])."""
        n_global = self.pl_batch if phase == "Greg" else self.batch
        n_local = n_global // self.num_replicas

        def local(x):
            return _replica_slice(x, rid, n_local, self.rounds)

        inputs = {}
        if phase != "Dreg":
            inputs["z"] = local(random_normal(_subseed(seed, 0), n_global, self.z_dim))
            if self.c_dim:
                u = random_uniform(_subseed(seed, 1), n_global, 1)  # [N, 1]
                labels = tf.reduce_sum(tf.cast(u >= self._class_cdf[None, :], tf.int32), axis=1)
                inputs["c"] = tf.one_hot(local(labels), self.c_dim, dtype=tf.float32)
            inputs["mix_z"] = local(random_normal(_subseed(seed, 2), n_global, self.z_dim))
            inputs["cutoff"] = losses.style_mixing_cutoff(self.G.num_ws, self.cfg.style_mixing_prob,
                                                          _subseed(seed, 3))
            inputs["noise_seed"] = _subseed(seed, 4) + tf.stack([tf.constant(0, tf.int64), tf.cast(rid, tf.int64)])
        if phase in ("Gmain", "Dmain"):
            inputs["aug_fake"] = {k: local(v) for k, v in draw_random(_subseed(seed, 5), n_global).items()}
        if phase in ("Dmain", "Dreg"):
            inputs["aug_real"] = {k: local(v) for k, v in draw_random(_subseed(seed, 7), n_global).items()}
        if phase == "Greg":
            pl_noise = random_normal(_subseed(seed, 6), n_global, self.res * self.res * self.channels)
            inputs["pl_noise"] = tf.reshape(local(pl_noise), [n_local // self.rounds, self.res, self.res,
                                                              self.channels])
        return inputs

    # -- the parts of a phase -----------------------------------------------------------------
    def _mapping(self, inputs):
        """(ws [n, num_ws, w_dim] after style mixing, this call's mean w for the w_avg update)."""
        c = inputs.get("c")
        ws = self.G.mapping(inputs["z"], c)
        # summed over replicas and micro-batches: the global mean
        w_mean = tf.reduce_mean(ws[:, 0], axis=0) / (self.num_replicas * self.rounds)
        if self.cfg.style_mixing_prob > 0:
            ws = losses.mix_styles(ws, self.G.mapping(inputs["mix_z"], c), inputs["cutoff"])
        return ws, w_mean

    def _synthesis(self, ws, inputs):
        return self.G.synthesis(ws, noise_mode="random", noise_seed=inputs.get("noise_seed"),
                                noise=inputs.get("noise"))

    def _augment(self, img, draws):
        """ADA with the given draws (the augmentation is off with aug='none')."""
        if self.cfg.aug == "none":
            return img
        params = self.pipe.params_from_draws(draws, self.res, self.res, self.pipe.color_channels_of(self.channels))
        return self.pipe.apply(img, params)

    def _scale(self, opt, loss):
        return opt.scale_loss(loss) if self.mixed_precision else loss

    def _grads(self, tape, loss, variables):
        """Gradients (zeros where a variable is unused); in float32 sanitised as the reference's nan_to_num.

        Under mixed precision the gradients are loss-scaled and the LossScaleOptimizer skips a step
        with non-finite gradients (and lowers the scale) instead: replacing an overflow by 1e5 there
        would apply a wrong step.
        """
        grads = tape.gradient(loss, variables)
        grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)]
        return grads if self.mixed_precision else [nan_to_num(g) for g in grads]

    # -- phase computations (per replica; XLA-compiled with --xla) ------------------------------
    def _gmain(self, seed, rid, inputs=None):
        B = self.batch
        inputs = self.draw_inputs("Gmain", seed, rid) if inputs is None else inputs
        with tf.GradientTape() as tape:
            ws, w_mean = self._mapping(inputs)
            img = self._synthesis(ws, inputs)
            logits = self.D(self._augment(img, inputs["aug_fake"]), inputs.get("c"))
            per_sample = tf.reshape(losses.nonsaturating_generator_loss(logits), [-1])
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=B)
            scaled = self._scale(self.opt_G, loss)
        grads = self._grads(tape, scaled, self.G.trainable_variables)
        return grads, {"G_loss": loss, "fake_sign_G": tf.reduce_sum(tf.sign(logits)) / B, "w_mean": w_mean}

    def _greg(self, seed, rid, pl_mean, inputs=None):
        t, B = self.cfg, self.pl_batch
        inputs = self.draw_inputs("Greg", seed, rid) if inputs is None else inputs
        pl_noise = inputs["pl_noise"] / self.res  # N(0, 1) / sqrt(H * W)
        with tf.GradientTape() as tape:
            ws, w_mean = self._mapping(inputs)
            penalty, new_mean, _ = losses.path_length_penalty(
                lambda w: self._synthesis(w, inputs), ws, pl_mean, pl_decay=t.pl_decay, noise=pl_noise)
            loss = tf.nn.compute_average_loss(penalty * (t.pl_weight * t.pl_interval), global_batch_size=B)
            scaled = self._scale(self.opt_G, loss)
        grads = self._grads(tape, scaled, self.G.trainable_variables)
        return grads, {"pl_penalty": tf.reduce_sum(penalty) / B,
                       "pl_mean": new_mean / (self.num_replicas * self.rounds), "w_mean": w_mean}

    def _dmain(self, seed, rid, real, c_real, inputs=None):
        B = self.batch
        inputs = self.draw_inputs("Dmain", seed, rid) if inputs is None else inputs
        ws, w_mean = self._mapping(inputs)
        fake = tf.stop_gradient(self._synthesis(ws, inputs))
        with tf.GradientTape() as tape:
            fake_logits = self.D(self._augment(fake, inputs["aug_fake"]), inputs.get("c"))
            real_logits = self.D(self._augment(real, inputs["aug_real"]), c_real)
            per_sample = tf.reshape(losses.logistic_discriminator_loss(real_logits, fake_logits), [-1])
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=B)
            scaled = self._scale(self.opt_D, loss)
        grads = self._grads(tape, scaled, self.D.trainable_variables)
        stats = {"D_loss": loss, "real_sign": tf.reduce_sum(tf.sign(real_logits)) / B,
                 "fake_sign": tf.reduce_sum(tf.sign(fake_logits)) / B, "w_mean": w_mean}
        return grads, stats, real_logits

    def _dreg(self, seed, rid, real, c_real, inputs=None):
        t, B = self.cfg, self.batch
        inputs = self.draw_inputs("Dreg", seed, rid) if inputs is None else inputs
        with tf.GradientTape() as tape:
            penalty, real_logits = losses.r1_penalty(
                lambda x: self.D(self._augment(x, inputs["aug_real"]), c_real), real)
            loss = tf.nn.compute_average_loss(penalty * (t.r1_gamma / 2 * t.r1_interval), global_batch_size=B)
            scaled = self._scale(self.opt_D, loss)
        grads = self._grads(tape, scaled, self.D.trainable_variables)
        return grads, {"r1_penalty": tf.reduce_sum(penalty) / B}, real_logits
