"""The four phases of a StyleGAN2-ADA iteration (stylegan2-ada-pytorch `loss.py` semantics).

    Gmain   every step                  non-saturating G loss on D(augment(G(z, c)))
    Greg    every pl_interval steps     path length, batch / pl_batch_shrink, gain pl_interval
    Dmain   every step                  logistic D loss on augmented reals and fakes; ADA signs;
                                        the tracked w_avg is updated from this phase's fakes
    Dreg    every r1_interval steps     R1 * gamma / 2 * r1_interval on augmented reals, the
                                        gradient taken w.r.t. the non-augmented reals

Each phase computation runs per replica (XLA-compiled with `--xla`) and returns gradients and
statistics; `Trainer` (trainer.py) applies them. Per-sample losses are reduced once with
`tf.nn.compute_average_loss(..., global_batch_size)`.

Randomness: latents, class labels, style mixing, path-length noise and augmentation are drawn
for the *global* batch with the counter-based hash generators of `tfstylegan.ops.random`
(identical eagerly and under XLA, where TF's stateless ops differ) and each replica takes its
slice, so N replicas see exactly what one device sees with the same global batch. The synthesis
noise inputs come from `noise_seed` (TF stateless normal, folded with the replica id).

`pl_mean` semantics under several replicas: each replica penalises its lengths against the
mean it updated from its own slice (as ADA's per-GPU `pl_mean`); the stored `pl_mean` is the
replicas' average, which equals the single-device update.
"""

from __future__ import annotations

import tensorflow as tf

from tfstylegan import losses
from tfstylegan.ops.random import random_normal, random_uniform


def _subseed(seed: tf.Tensor, k: int) -> tf.Tensor:
    """An independent seed [2] derived from `seed` [2] (int64) for stream `k`."""
    return seed + tf.constant([0, 7919 * (k + 1)], tf.int64)


def _replica_slice(x: tf.Tensor, rid, n_local: int) -> tf.Tensor:
    """Rows [rid * n_local, (rid + 1) * n_local) of a global-batch tensor, with a static batch size."""
    return tf.ensure_shape(x[rid * n_local:(rid + 1) * n_local], [n_local] + x.shape[1:].as_list())


class StyleGAN2Phases:
    """The phase computations; mixed into `Trainer`, which provides the networks, optimizers and sizes
    (G, D, pipe, cfg, batch, pl_batch, num_replicas, res, channels, z_dim, c_dim, _class_cdf, mixed_precision)."""

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
        params = self.pipe.draw_params(n_global, self.res, self.res, seed, self.pipe.color_channels_of(self.channels))
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
