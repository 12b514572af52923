"""Projecting a real image into W (or W+): find the latent that reproduces it.

The official StyleGAN2 projector (stylegan2-ada-pytorch `projector.py`), in TF:
- start from the mean w of `w_avg_samples` mapped z (of the target's class for a conditional
  model); optimise w [1, 1, w_dim] (or every w separately, [1, num_ws, w_dim], with `w_plus`)
  and the per-layer noise buffers with Adam (betas 0.9, 0.999);
- learning rate ramped up over the first 5% of steps and down (cosine) over the last 25%;
- Gaussian noise added to w, of scale w_std * 0.05 decaying quadratically to 0 at 75% of steps;
- noise regularisation: squared autocorrelation of each noise map at every scale down to 8x8,
  weight 1e5, and the buffers renormalised to zero mean / unit variance after each step.
The distance is the pixel MSE (in [-1, 1]) plus, when a judge is given, `feature_weight` times
the squared distance of its unit-length features (LPIPS weights cannot be downloaded here).

The generator's noise buffers are restored afterwards; the optimised ones are returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from classifier.model import load_classifier
from tfstylegan.apps.generation.loading import ClassGenerator, bind_class, load_network, resolve_class_name
from tfstylegan.data.classes import ALL_CLASS_NAMES
from tfstylegan.data.pipeline import load_arrays
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, save_png, to_uint8
from tfstylegan.utils.io import atomic_dir, write_json
from tfstylegan.utils.progress import Progress


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    """Projector settings (the official defaults, `num_steps` aside)."""

    num_steps: int = 300
    w_plus: bool = False
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    feature_weight: float = 1.0
    num_snapshots: int = 8
    seed: int = 0

    def __post_init__(self):
        for name, value in (("--lr", self.initial_learning_rate), ("--feature_weight", self.feature_weight),
                            ("initial_noise_factor", self.initial_noise_factor),
                            ("regularize_noise_weight", self.regularize_noise_weight)):
            if not math.isfinite(value):
                raise UserError(f"{name} must be a finite number. Received: {value}")
        if self.num_steps < 1:
            raise UserError(f"--steps must be >= 1. Received: {self.num_steps}")
        if self.w_avg_samples < 2:
            raise UserError(f"w_avg_samples must be >= 2. Received: {self.w_avg_samples}")
        if self.initial_learning_rate <= 0 or self.feature_weight < 0:
            raise UserError(f"The learning rate must be > 0 and the feature weight >= 0. Received: "
                            f"{self.initial_learning_rate}, {self.feature_weight}")
        if self.num_snapshots < 1:
            raise UserError(f"num_snapshots must be >= 1. Received: {self.num_snapshots}")


@dataclasses.dataclass
class Projection:
    """Result: ws [1, num_ws, w_dim], the image [H, W, C], per-step losses, snapshots [S, H, W, C], noise."""

    ws: np.ndarray
    image: np.ndarray
    losses: list[dict[str, float]]
    snapshots: np.ndarray
    snapshot_steps: list[int]
    noise: dict[str, np.ndarray]


def learning_rate(step: int, config: ProjectionConfig) -> float:
    """The official ramp: linear up over `lr_rampup_length`, cosine down over the last `lr_rampdown_length`."""
    t = step / config.num_steps
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / config.lr_rampup_length)
    return config.initial_learning_rate * ramp


def noise_regularization(noise_maps) -> tf.Tensor:
    """Sum over maps [H, W] and their 2x-downsampled pyramids (down to 8x8) of squared shifted autocorrelations."""
    reg = tf.constant(0.0)
    for v in noise_maps:
        noise = tf.convert_to_tensor(v)[None, :, :, None]  # [1, H, W, 1]
        while True:
            reg += tf.reduce_mean(noise * tf.roll(noise, shift=1, axis=2)) ** 2
            reg += tf.reduce_mean(noise * tf.roll(noise, shift=1, axis=1)) ** 2
            if noise.shape[1] <= 8:
                break
            noise = tf.nn.avg_pool2d(noise, 2, 2, "VALID")
    return reg


def _noise_variables(G) -> dict[str, Any]:
    """{path: the tf.Variable behind each SynthesisLayer's `noise_const` [r, r]}, in layer order."""
    out = {}
    for v in G.synthesis.weights:
        if v.path.split("/")[-1].startswith("noise_const"):
            out[v.path] = v.value if hasattr(v, "value") else v
    return out


def load_projected_w(path: str | os.PathLike, G) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """`projected_w.npz` -> (ws float32 [N, num_ws, w_dim], the optimised noise buffers or None), checked against G.

    The file holds `w` ([N, num_ws, w_dim], as the official projector's) and, when written by
    launchers/project.py, `noise_0`, `noise_1`, ... in the generator's layer order.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--projected_w {path} does not exist. Pass the projected_w.npz written by "
                        "launchers/project.py.")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError) as e:
        raise UserError(f"Could not read {path} as an .npz file ({e}). Pass the projected_w.npz written by "
                        "launchers/project.py.") from None
    num_ws, w_dim = int(G.num_ws), int(G.w_dim)
    if "w" not in arrays:
        raise UserError(f"{path} has no array 'w' (it has {', '.join(sorted(arrays)) or 'none'}); pass the "
                        "projected_w.npz written by launchers/project.py.")
    ws = arrays["w"]
    if ws.ndim != 3 or ws.shape[1:] != (num_ws, w_dim) or len(ws) == 0:
        raise UserError(f"{path}: w has shape {ws.shape} but this generator takes [N, {num_ws}, {w_dim}]; pass a "
                        "projection made with this checkpoint.")
    if not np.isfinite(ws).all():
        raise UserError(f"{path}: w holds NaN or inf; the images would be black. Project again.")
    keys = sorted((k for k in arrays if k.startswith("noise_")), key=lambda k: int(k.split("_")[1]))
    if not keys:
        return ws.astype(np.float32), None
    shapes = [tuple(v.shape) for v in _noise_variables(G).values()]
    noise = [arrays[k].astype(np.float32) for k in keys]
    if [n.shape for n in noise] != shapes or not all(np.isfinite(n).all() for n in noise):
        raise UserError(f"{path}: its noise buffers do not fit this generator (or are not finite); pass a "
                        "projection made with this checkpoint.")
    return ws.astype(np.float32), noise


@contextlib.contextmanager
def projection_noise(G, noise: list[np.ndarray] | None):
    """Within the block, G's constant noise buffers are `noise` (in layer order); restored afterwards."""
    if noise is None:
        yield
        return
    variables = list(_noise_variables(G).values())
    saved = [np.asarray(v) for v in variables]
    try:
        for v, n in zip(variables, noise):
            v.assign(n)
        yield
    finally:
        for v, n in zip(variables, saved):
            v.assign(n)


def project(gen: ClassGenerator, target: np.ndarray, config: ProjectionConfig = ProjectionConfig(),
            judge=None, show_progress: bool = True) -> Projection:
    """Optimises w (or W+) so that `gen` reproduces `target`.

    Args:
      gen: the generator bound to the target's class.
      target: float [H, W, 1] (or [H, W]) in [-1, 1], at the generator's resolution.
      config: `ProjectionConfig`.
      judge: optional `TumorClassifier`; adds `feature_weight` x squared unit-feature distance.
    Returns:
      A `Projection`.
    """
    G = gen.G
    target = np.asarray(target, np.float32)
    if target.ndim == 2:
        target = target[..., None]
    res = gen.resolution
    if target.shape != (res, res, 1):
        raise UserError(f"The target must be one grayscale {res}x{res} image. Received: shape={target.shape}")
    rng = np.random.RandomState(config.seed)

    # w statistics of this class
    z = rng.randn(config.w_avg_samples, int(G.z_dim)).astype(np.float32)
    w_samples = np.concatenate([np.asarray(G.mapping(z[i:i + 1000], gen.labels(len(z[i:i + 1000]))))[:, 0]
                                for i in range(0, len(z), 1000)]).astype(np.float64)  # [S, w_dim]
    w_avg = w_samples.mean(axis=0, keepdims=True)  # [1, w_dim]
    w_std = float(np.sqrt(np.sum((w_samples - w_avg) ** 2) / config.w_avg_samples))
    num_ws = int(G.num_ws)
    w_init = np.tile(w_avg[:, None], [1, num_ws if config.w_plus else 1, 1]).astype(np.float32)

    noise_vars = _noise_variables(G)
    saved_noise = {k: np.asarray(v) for k, v in noise_vars.items()}
    target_t = tf.constant(target[None])  # [1, H, W, 1]
    target_f = None
    if judge is not None and config.feature_weight > 0:
        f = judge.features(target_t)
        target_f = f / tf.norm(f, axis=1, keepdims=True)

    w_opt = tf.Variable(w_init, name="w_opt")
    variables = [w_opt] + list(noise_vars.values())
    m = [tf.Variable(tf.zeros_like(v)) for v in variables]
    s = [tf.Variable(tf.zeros_like(v)) for v in variables]
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    @tf.function
    def step_fn(lr, w_noise_scale, t):
        w_noise = tf.random.normal(tf.shape(w_opt)) * w_noise_scale
        with tf.GradientTape() as tape:
            tape.watch(variables)
            ws = w_opt + w_noise
            if not config.w_plus:
                ws = tf.tile(ws, [1, num_ws, 1])
            img = G.synthesis(ws, noise_mode="const")[..., :1]
            mse = tf.reduce_mean(tf.square(img - target_t))
            feat = tf.constant(0.0)
            if target_f is not None:
                f = judge.features(img)
                f = f / tf.norm(f, axis=1, keepdims=True)
                feat = tf.reduce_sum(tf.square(f - target_f))
            reg = noise_regularization(list(noise_vars.values()))
            loss = mse + config.feature_weight * feat + config.regularize_noise_weight * reg
        grads = tape.gradient(loss, variables)
        for v, g, mv, sv in zip(variables, grads, m, s):
            if g is None:
                continue
            mv.assign(beta1 * mv + (1 - beta1) * g)
            sv.assign(beta2 * sv + (1 - beta2) * tf.square(g))
            m_hat = mv / (1 - beta1 ** t)
            s_hat = sv / (1 - beta2 ** t)
            v.assign_sub(lr * m_hat / (tf.sqrt(s_hat) + eps))
        for v in noise_vars.values():  # renormalise the noise buffers
            v.assign(v - tf.reduce_mean(v))
            v.assign(v * tf.math.rsqrt(tf.reduce_mean(tf.square(v))))
        return mse, feat, reg

    # snapshots at evenly spaced steps (step 0 = the start at w_avg); the final image is added last
    snapshot_at = sorted({int(x) for x in np.linspace(0, config.num_steps, config.num_snapshots, endpoint=False)})
    snapshots, snapshot_steps, losses = [], [], []

    def render():
        ws = w_opt if config.w_plus else tf.tile(w_opt, [1, num_ws, 1])
        return np.asarray(G.synthesis(ws, noise_mode="const"))[0], np.asarray(ws)

    try:
        for v in noise_vars.values():  # the official projector starts from fresh unit noise
            v.assign(tf.constant(rng.randn(*v.shape).astype(np.float32)))
        progress = Progress(config.num_steps, desc="project", unit="step", enabled=show_progress)
        for step in range(config.num_steps):
            if step in snapshot_at:
                snapshots.append(render()[0])
                snapshot_steps.append(step)
            t = step / config.num_steps
            w_noise_scale = w_std * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp_length) ** 2
            mse, feat, reg = step_fn(tf.constant(learning_rate(step, config), tf.float32),
                                     tf.constant(w_noise_scale, tf.float32), tf.constant(step + 1, tf.float32))
            losses.append({"step": step, "mse": float(mse), "feature": float(feat), "noise_reg": float(reg)})
            progress.update()
        progress.close()
        image, ws = render()
        snapshots.append(image)
        snapshot_steps.append(config.num_steps)
        noise = {k: np.asarray(v) for k, v in noise_vars.items()}
    finally:
        for k, v in noise_vars.items():
            v.assign(saved_noise[k])
    if not ws.shape[1] == num_ws:
        ws = np.tile(ws, [1, num_ws, 1])
    return Projection(ws=ws.astype(np.float32), image=image, losses=losses, snapshots=np.stack(snapshots),
                      snapshot_steps=snapshot_steps, noise=noise)


def read_target(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """A PNG (8- or 16-bit, gray or RGB) -> float32 [R, R, 1] in [-1, 1], resized (Lanczos) if needed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--target {path} does not exist. Pass a PNG image (or --data with --index).")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.float64) / 65535.0
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except OSError as e:
        raise UserError(f"Could not read the target image {path}: {e}. Pass a PNG.") from None
    if arr.shape != (resolution, resolution):
        print(f"note: resizing the target from {arr.shape[1]}x{arr.shape[0]} to the model's "
              f"{resolution}x{resolution}.", flush=True)
        pil = Image.fromarray((arr * 65535).astype(np.uint16).astype(np.int32), mode="I")
        arr = np.asarray(pil.resize((resolution, resolution), Image.LANCZOS), np.float64) / 65535.0
    return (np.clip(arr, 0, 1) * 2 - 1).astype(np.float32)[..., None]


def data_target(data_dir: str | os.PathLike, index: int, split: str = "test",
                class_name: str | None = None) -> tuple[np.ndarray, str]:
    """Image `index` of a prepared split (of one class, or all) -> (float32 [H, W, 1], its class name)."""
    images, labels, _ = load_arrays(data_dir, split=split, class_name=class_name)
    if not 0 <= int(index) < len(images):
        raise UserError(f"--index {index} is out of range: the {split} split of {data_dir}"
                        f"{' for ' + class_name if class_name else ''} has {len(images)} images.")
    return images[int(index)], ALL_CLASS_NAMES[int(labels[int(index)])]


def progress_strip(projection: Projection, target: np.ndarray) -> np.ndarray:
    """uint8 [H', (S+1)*W', 1]: the snapshots left to right, then the target."""
    tiles = np.concatenate([projection.snapshots[..., :1], np.asarray(target)[None, ..., :1]])
    return image_grid(to_uint8(tiles), grid_w=len(tiles), padding=2, pad_value=255)


def run_projection(checkpoint: str, out_dir: str | os.PathLike, target_path: str | None = None,
                   data_dir: str | None = None, index: int = 0, split: str = "test", class_name: str | None = None,
                   classifier_path: str | None = None, config: ProjectionConfig = ProjectionConfig(),
                   overwrite: bool = False, show_progress: bool = True) -> dict:
    """The launcher's work: read the target, project, write proj.png, target.png, projected_w.npz, progress.png.

    The output folder is written atomically. Returns {initial_mse, final_mse, out}.
    """
    if (target_path is None) == (data_dir is None):
        raise UserError("Pass exactly one of --target PNG or --data (with --index).")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"Output folder {out_dir} already exists. Choose another --out or pass --overwrite.")
    G, info = load_network(checkpoint)
    if data_dir is not None:
        class_name = resolve_class_name(class_name, [str(c) for c in info.get("class_names") or []], checkpoint)
        target, target_class = data_target(data_dir, index, split,
                                           class_name or (None if info.get("conditional") else info.get("class_name")))
        class_name = class_name or target_class
        gen = bind_class(G, info, checkpoint, class_name if info.get("conditional") else None)
        if target.shape[0] != gen.resolution:
            raise UserError(f"{data_dir} is {target.shape[0]}x{target.shape[0]} but the model makes "
                            f"{gen.resolution}x{gen.resolution} images; pass the dataset it was trained on.")
    else:
        gen = bind_class(G, info, checkpoint, class_name)
        target = read_target(target_path, gen.resolution)
    judge = None
    if classifier_path:
        judge = load_classifier(classifier_path)
    result = project(gen, target, config, judge=judge, show_progress=show_progress)
    initial_mse = float(np.mean((result.snapshots[0][..., :1] - target) ** 2))  # at w_avg, step 0
    final_mse = float(np.mean((result.image[..., :1] - target) ** 2))
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        save_png(tmp / "proj.png", to_uint8(result.image[..., :1]))
        if result.image.shape[-1] == 2:
            save_png(tmp / "proj_mask.png", to_uint8(result.image[..., 1:2]))
        save_png(tmp / "target.png", to_uint8(target))
        with open(tmp / "projected_w.npz", "wb") as f:
            np.savez(f, w=result.ws, **{f"noise_{i}": v for i, v in enumerate(result.noise.values())})
        save_png(tmp / "progress.png", progress_strip(result, target))
        write_json(tmp / "projection.json", {
            "checkpoint": str(checkpoint), "class_name": gen.class_name, "target": target_path,
            "data": data_dir, "index": index if data_dir else None, "split": split if data_dir else None,
            "classifier": classifier_path, "config": dataclasses.asdict(config),
            "initial_mse": initial_mse, "final_mse": final_mse, "snapshot_steps": result.snapshot_steps,
            "losses": result.losses})
    print(f"pixel MSE {initial_mse:.4f} (w_avg) -> {final_mse:.4f} after {config.num_steps} steps; wrote {out_dir}",
          flush=True)
    return {"initial_mse": initial_mse, "final_mse": final_mse, "out": str(out_dir)}
