"""SavedModel export for TensorFlow Serving: the EMA generator and the tumor classifier.

Layout: `<out>/<model_name>/<version>/` (TF Serving's versioned layout), written atomically
(a temporary folder renamed into place when complete).

Generator signatures (`serving_default` first; N = batch):

- `serving_default`: `seed` int64 [N], `class_id` int32 [N] (conditional models only),
  `truncation_psi` float32 [N], [1] or [0] (per sample, one for all, or none = the export's
  default) -> `images` uint8 [N, H, W, C].
- `images_float`: the same inputs -> `images` float32 [N, H, W, C] in about [-1, 1].
- `from_z`: `z` float32 [N, z_dim] (+ `class_id`, `truncation_psi`) -> `images` uint8 and
  `images_float`.

Requests are checked before anything is generated (`InvalidArgumentError` naming the input):
1 <= N <= `max_batch` (set at export, default 64: one request cannot run the server out of
memory), `class_id` with one value per sample and in range, `truncation_psi` and `z` finite.

Seeds. The official tools draw z = `np.random.RandomState(seed).randn(z_dim)` (MT19937 +
numpy's legacy polar Box-Muller); TensorFlow has no such op inside a graph. The `seed`
signatures therefore use TF's counter-based `tf.random.stateless_normal([z_dim], seed=(seed, 0))`:
deterministic for a seed on every machine, but NOT the same z as `launchers/generate.py
--seeds` or the official tools. To reproduce those images exactly send z vectors to `from_z`
(`tfstylegan.networks.seed_to_z(seeds, z_dim)` computes them client-side).
Noise is `noise_mode='const'` (the stored per-layer noise), so images are deterministic.
8-bit conversion is the official `clip(img * 127.5 + 128, 0, 255)` truncated to uint8.

Classifier signature `serving_default`: `images` uint8 [N, H, W, 1 or 3] of any size (RGB
is converted to ITU-R 601 luma, as the dataset loader does; the model resizes to its own
input) -> `probabilities` float32 [N, num_classes], `features` float32 [N, 2048].
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import tensorflow as tf

from tfstylegan.training.checkpoint import load_generator, nonfinite_variables
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, write_json

SEED_Z_CONVENTION = "tf.random.stateless_normal([z_dim], seed=(seed, 0)), float32"
DEFAULT_MAX_BATCH = 64


def version_dir(out_dir, model_name: str, version: int) -> Path:
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise UserError(f"--name must be a plain folder name. Received: name={model_name!r}")
    if int(version) < 1:
        raise UserError(f"--version must be a positive integer (TF Serving loads the highest). Received: {version}")
    return Path(out_dir) / model_name / str(int(version))


def seed_to_z_tf(seeds: tf.Tensor, z_dim: int) -> tf.Tensor:
    """The exported models' seed convention: seeds int64 [N] -> z float32 [N, z_dim]."""
    seeds = tf.cast(seeds, tf.int64)
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([z_dim], seed=tf.stack([s, tf.constant(0, tf.int64)])),
        seeds, fn_output_signature=tf.TensorSpec([z_dim], tf.float32))


def images_to_uint8(img: tf.Tensor) -> tf.Tensor:
    """[-1, 1] float -> uint8, `tfstylegan.utils.images.to_uint8` in TF ops."""
    return tf.cast(tf.clip_by_value(img * 127.5 + 128.0, 0.0, 255.0), tf.uint8)


def _unique_copies(variables, prefix: str) -> list[tf.Variable]:
    """Uniquely named tf.Variable copies of Keras variables.

    Keras 3 names a variable by its layer path, which repeats across blocks ('torgb/weight' in
    every block). TF Serving and `saved_model_cli run` load SavedModels in a TF1 session where
    variables are found by that shared name, so duplicates would collide; the export reads
    these copies instead (`_reading`).
    """
    return [tf.Variable(v.numpy(), trainable=False, dtype=v.dtype,
                        name=f"{prefix}/{i:04d}_{v.path.replace('/', '_')}") for i, v in enumerate(variables)]


def _reading(keras_variables, copies):
    """Scope in which Keras layers read `copies` in place of their own variables."""
    return keras.StatelessScope(state_mapping=[(k, c.read_value()) for k, c in zip(keras_variables, copies)])


class GeneratorServing(tf.Module):
    """A `tf.Module` wrapping a Generator for export (see the module docstring for signatures)."""

    def __init__(self, G, truncation_psi: float = 1.0, class_names=(), max_batch: int = DEFAULT_MAX_BATCH):
        super().__init__(name="generator_serving")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise UserError(f"--max_batch must be a positive integer. Received: max_batch={max_batch!r}")
        self.max_batch = int(max_batch)
        # not tracked: the SavedModel holds the copies only (walking a Keras model's object graph was
        # a third of the export's time, and its variables are never read by the exported functions)
        object.__setattr__(self, "G", G)
        object.__setattr__(self, "_keras_variables", list(G.weights))
        self.generator_variables = _unique_copies(self._keras_variables, "G_ema")
        self.z_dim, self.c_dim = int(G.z_dim), int(G.c_dim)
        self.default_truncation_psi = tf.Variable(float(truncation_psi), trainable=False, dtype=tf.float32,
                                                  name="default_truncation_psi")
        self.class_names = tf.constant(list(class_names) if class_names else [""], tf.string)
        self._build_functions()

    def _psi(self, psi: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        """[N], [1] or [0] -> [N] (empty: the export's default)."""
        psi = tf.reshape(tf.cast(psi, tf.float32), [-1])
        k = tf.size(psi)
        check = tf.debugging.assert_equal(
            tf.logical_or(tf.logical_or(k == 0, k == 1), k == tf.cast(n, k.dtype)), True,
            message="truncation_psi must have N (one per sample), 1 or 0 (the default) values")
        with tf.control_dependencies([check]):
            return tf.cond(k == 0, lambda: tf.fill([n], self.default_truncation_psi.read_value()),
                           lambda: tf.broadcast_to(psi, [n]))

    def _request_checks(self, n, class_id, psi) -> list:
        """Assertions on a request of n samples, run before anything is generated."""
        n = tf.cast(n, tf.int32)
        checks = [
            tf.debugging.assert_positive(n, message="empty request: send at least one seed (or z row)"),
            tf.debugging.assert_less_equal(
                n, self.max_batch, message=f"too many samples in one request: at most {self.max_batch} (--max_batch "
                "at export); split the request"),
            tf.debugging.assert_all_finite(tf.cast(psi, tf.float32), "truncation_psi must be finite (no NaN/inf)"),
        ]
        if self.c_dim:
            checks += [
                tf.debugging.assert_equal(tf.size(class_id), n, message="class_id must have one value per seed "
                                          "(or z row): the lengths differ"),
                tf.debugging.assert_less(class_id, self.c_dim, message="class_id out of range"),
                tf.debugging.assert_non_negative(class_id, message="class_id out of range"),
            ]
        return checks

    def _generate(self, z, class_id, psi):
        """z [N, z_dim] -> float32 images [N, H, W, C]; `_request_checks` must have run."""
        n = tf.shape(z)[0]
        c = None
        if self.c_dim:
            c = tf.one_hot(class_id, self.c_dim, dtype=tf.float32)
        psi = self._psi(psi, n)
        with _reading(self._keras_variables, self.generator_variables):
            ws = self.G.mapping(z, c, truncation_psi=psi[:, None, None])
            # Serving batches have a dynamic size: the fused (grouped) modconv needs a static one.
            return tf.cast(self.G.synthesis(ws, noise_mode="const", fused_modconv=False), tf.float32)

    def _from_seeds(self, seed, class_id, psi):
        with tf.control_dependencies(self._request_checks(tf.size(seed), class_id, psi)):
            return self._generate(seed_to_z_tf(seed, self.z_dim), class_id, psi)

    def _from_z(self, z, class_id, psi):
        checks = self._request_checks(tf.shape(z)[0], class_id, psi)
        checks.append(tf.debugging.assert_all_finite(z, "z must be finite (no NaN/inf)"))
        with tf.control_dependencies(checks):
            return self._generate(tf.identity(z), class_id, psi)

    def _build_functions(self):
        z_dim = self.z_dim
        seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
        z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
        class_spec = tf.TensorSpec([None], tf.int32, name="class_id")
        psi_spec = tf.TensorSpec([None], tf.float32, name="truncation_psi")

        def from_z_outputs(img):
            return {"images": images_to_uint8(img), "images_float": img}

        # The Python argument names are the signature's input keys.
        if self.c_dim:
            @tf.function(input_signature=[seed_spec, class_spec, psi_spec])
            def serving_default(seed, class_id, truncation_psi):
                return {"images": images_to_uint8(self._from_seeds(seed, class_id, truncation_psi))}

            @tf.function(input_signature=[seed_spec, class_spec, psi_spec])
            def images_float(seed, class_id, truncation_psi):
                return {"images": self._from_seeds(seed, class_id, truncation_psi)}

            @tf.function(input_signature=[z_spec, class_spec, psi_spec])
            def from_z(z, class_id, truncation_psi):
                return from_z_outputs(self._from_z(z, class_id, truncation_psi))
        else:
            @tf.function(input_signature=[seed_spec, psi_spec])
            def serving_default(seed, truncation_psi):
                return {"images": images_to_uint8(self._from_seeds(seed, None, truncation_psi))}

            @tf.function(input_signature=[seed_spec, psi_spec])
            def images_float(seed, truncation_psi):
                return {"images": self._from_seeds(seed, None, truncation_psi)}

            @tf.function(input_signature=[z_spec, psi_spec])
            def from_z(z, truncation_psi):
                return from_z_outputs(self._from_z(z, None, truncation_psi))

        self.serving_default, self.images_float, self.from_z = serving_default, images_float, from_z

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default, "images_float": self.images_float, "from_z": self.from_z}


class ClassifierServing(tf.Module):
    """A `tf.Module` wrapping a TumorClassifier: uint8 images of any size -> probabilities, features."""

    def __init__(self, model):
        super().__init__(name="classifier_serving")
        object.__setattr__(self, "model", model)  # not tracked, as GeneratorServing.G
        keras_variables = list(model.weights)
        self.classifier_variables = _unique_copies(keras_variables, "classifier")
        self.class_names = tf.constant(list(model.class_names), tf.string)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")])
        def serving_default(images):
            tf.debugging.assert_rank(images, 4, message="images must be [N, H, W, C]")
            channels = tf.shape(images)[-1]
            tf.debugging.assert_equal(tf.logical_or(channels == 1, channels == 3), True,
                                      message="images must have 1 (gray) or 3 (RGB) channels")
            x = tf.cast(images, tf.float32)
            x = tf.cond(channels == 3, lambda: tf.image.rgb_to_grayscale(x), lambda: x[..., :1])
            x = tf.ensure_shape(x, [None, None, None, 1]) / 127.5 - 1.0  # [-1, 1]
            with _reading(keras_variables, self.classifier_variables):
                features, probs = model.features_and_probs(x)
            return {"probabilities": tf.cast(probs, tf.float32), "features": tf.cast(features, tf.float32)}

        self.serving_default = serving_default


def _save(module: tf.Module, signatures: dict, path: Path, overwrite: bool, meta: dict) -> Path:
    with atomic_dir(path, overwrite=overwrite) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        write_json(Path(tmp) / "assets.extra" / "tfstylegan_export.json", meta)
    return path


def export_generator(G, out_dir: str | os.PathLike, model_name: str = "generator", version: int = 1,
                     truncation_psi: float = 1.0, class_names=(), overwrite: bool = False,
                     max_batch: int = DEFAULT_MAX_BATCH) -> Path:
    """Exports `G` (pass the EMA generator) to `<out_dir>/<model_name>/<version>/`. Returns that folder.

    A generator with NaN/inf weights (a diverged run) or a non-finite `truncation_psi` is refused.
    """
    path = version_dir(out_dir, model_name, version)
    if not math.isfinite(truncation_psi):
        raise UserError(f"--truncation_psi must be a finite number. Received: {truncation_psi}")
    bad = nonfinite_variables({G.name: G})
    if bad:
        raise UserError(f"Refusing to export {model_name}: the generator holds NaN/inf weights ({len(bad)} tensors, "
                        f"e.g. {bad[0]}); its run diverged. Export an earlier checkpoint (RUN/ckpt-N).")
    module = GeneratorServing(G, truncation_psi=truncation_psi, class_names=class_names, max_batch=max_batch)
    meta = {"kind": "generator", "z_dim": module.z_dim, "c_dim": module.c_dim,
            "class_names": list(class_names), "img_resolution": int(G.img_resolution),
            "img_channels": int(G.img_channels), "default_truncation_psi": float(truncation_psi),
            "max_batch": module.max_batch, "seed_to_z": SEED_Z_CONVENTION, "noise_mode": "const",
            "signatures": sorted(module.signatures())}
    return _save(module, module.signatures(), path, overwrite, meta)


def export_classifier(model, out_dir: str | os.PathLike, model_name: str = "classifier", version: int = 1,
                      overwrite: bool = False) -> Path:
    """Exports a TumorClassifier to `<out_dir>/<model_name>/<version>/`. Returns that folder."""
    path = version_dir(out_dir, model_name, version)
    module = ClassifierServing(model)
    meta = {"kind": "classifier", "class_names": list(model.class_names), "input_size": int(model.input_size),
            "signatures": ["serving_default"]}
    return _save(module, {"serving_default": module.serving_default}, path, overwrite, meta)


def default_generator_name(run_info: dict) -> str:
    """'generator' for a conditional model, 'generator_<class>' (or 'generator_all') otherwise."""
    return "generator" if run_info.get("conditional") else f"generator_{run_info.get('class_name') or 'all'}"


def export_checkpoint_generator(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                                model_name: str | None = None, version: int = 1, truncation_psi: float = 1.0,
                                overwrite: bool = False, max_batch: int = DEFAULT_MAX_BATCH) -> Path:
    """Loads G_ema from a run / checkpoint / imported folder and exports it (`export_generator`)."""
    G, info = load_generator(checkpoint, which="G_ema")
    return export_generator(G, out_dir, model_name=model_name or default_generator_name(info), version=version,
                            truncation_psi=truncation_psi, class_names=info.get("class_names") or (),
                            overwrite=overwrite, max_batch=max_batch)
