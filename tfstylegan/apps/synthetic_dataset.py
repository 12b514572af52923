"""Synthetic datasets: generate, filter for privacy and quality, write in the prepared-dataset layout.

`write_synthetic_dataset(checkpoint, data_dir, out_dir, config, classifier)` makes `N` slices per class
(or the real training split's class ratios) that `load_dataset`, `train_classifier --extra_data` and any
tool reading PNGs use as data, with a privacy report that must travel with it.

Candidates. Class by class, seeds `config.seed`, `seed + 1`, ... in order; a seed means the same image as in
`generate` and `evaluate` (`generation.generate_images`: z = RandomState(seed).randn, the class label,
truncation psi, noise mode). Each candidate is quantised to the real dataset's bit depth first, so what is
checked is exactly what is stored. Then:

- privacy filter: the candidate's nearest real *training* slice (the real dataset's whole train split, every
  class) in pixel space (L2 of the [-1, 1] image channel) and, with a judge, in the judge's 2048-d feature
  space, as `tfstylegan.metrics.memorization` measures it. The baseline is the held-out (val + test) real
  slices of the same class: their distances to the same training slices. A candidate closer than the
  `privacy_percentile`-th percentile of the baseline in either space is dropped: an unseen real slice of
  that class comes that close only `privacy_percentile` % of the time. An exact copy has distance 0.
- quality filter (optional): the judge's probability of the candidate's own class must be >= `min_class_prob`.

Dropped candidates are replaced by the next seeds until `N` are kept (at most `max_draws_per_slice * N`
draws per class). Generation streams in batches: memory holds one batch of candidates, the reference set
and a few numbers per slice, whatever `N`.

Output (docs/ARCHITECTURE.md's prepared layout, a train split only):

    <out>/manifest.json                     the prepared-dataset keys + `synthetic` (provenance, filters)
    <out>/train/<class>-<k>-of-<n>.tfrecord  seed order; slice_id = patient_id = '<class>-seed<seed>'
    <out>/preview_<class>.png               the first 16 slices
    <out>/slices.csv                        one row per slice: slice_id, class, seed, shard, PNG file(s),
                                            its distances to the training set and its class probability
    <out>/privacy/report.json               drop counts, thresholds, distance summaries, closest kept pairs
    <out>/privacy/closest_pairs_<class>.png the kept slices closest to a training slice, each beside it (real
                                            patients' slices: for the data owner's review, not for publication)
    <out>/privacy/distances_<class>.png     kept->train vs held-out->train distances, with the threshold
    <out>/png/<class>/<slice_id>.png (+ _mask.png) and png/SHA256SUMS   (`png=True`)

The output folder appears only when complete. Work in progress lives in `.<out>.partial/` beside it, one
finished shard at a time; after an interruption `resume=True` continues from the last finished shard and
gives the same dataset as an uninterrupted run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfstylegan.data.classes import ALL_CLASS_NAMES, SPLITS
from tfstylegan.data.tfrecords import decode_png, encode_png, make_example, read_examples, shard_name
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import image_grid, save_png, to_uint8, to_uint16, upscale_for_viewing
from tfstylegan.utils.io import atomic_open, sha256_file, write_json
from tfstylegan.utils.progress import Progress

if TYPE_CHECKING:
    from tfstylegan.apps.generation import ClassGenerator

FORMAT_VERSION = 1  # the prepared-dataset format (tfstylegan.data.prepare.FORMAT_VERSION)
MAX_SEED = 2 ** 32 - 1  # generation.MAX_SEED, here so that checking the settings imports no TensorFlow
SOURCE_FORMAT = "synthetic"
PREVIEW_IMAGES = 16
CLOSEST_PAIRS = 8
PRIVACY_DIR = "privacy"
PNG_DIR = "png"
STATE_DIR = "_state"
REASONS = ("privacy_pixels", "privacy_features", "quality")
"""Why a candidate was dropped: too close to a training slice in pixels / in judge features, or too unlike
its class for the judge. One candidate may have several."""


# --- settings -------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SyntheticDatasetConfig:
    """What to generate and how to filter it.

    Attributes:
      num_per_class: slices per class (0 when `match_ratios`).
      num: total slices, shared among the classes in the real training split's ratios (`match_ratios`).
      match_ratios: use `num` and the real class ratios instead of `num_per_class`.
      truncation_psi: truncation (1 = none).
      noise_mode: 'const' (default, as `generate`), 'random' (noise seeded by each image's seed) or 'none'.
      with_mask: store the tumor masks of a 2-channel (`--with_mask`) model; None = when the model makes them.
      privacy_percentile: drop candidates closer to a training slice than this percentile of the held-out
        baseline (0 = keep all, distances still reported).
      min_class_prob: the judge's minimum probability of the candidate's class (0 = no quality filter).
      seed: first candidate seed of every class.
      batch_size: candidates per generator / judge call.
      shard_size: slices per TFRecord shard (and per resumable step).
      max_draws_per_slice: give up when a class needs more than this many candidates per kept slice.
      png: also write a PNG per slice (and per mask) under png/, listed in slices.csv.
    """

    num_per_class: int = 0
    num: int = 0
    match_ratios: bool = False
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    with_mask: bool | None = None
    privacy_percentile: float = 1.0
    min_class_prob: float = 0.0
    seed: int = 0
    batch_size: int = 64
    shard_size: int = 1024
    max_draws_per_slice: float = 10.0
    png: bool = False

    def __post_init__(self):
        def check(cond, msg):
            if not cond:
                raise UserError(msg)

        if self.match_ratios:
            check(self.num > 0, f"--num must be > 0 with --match_ratios (the total number of slices). "
                  f"Received: --num={self.num}")
            check(self.num_per_class == 0, "Pass either --num_per_class, or --match_ratios with --num; not both.")
        else:
            check(self.num == 0, "--num goes with --match_ratios (slices in the real class ratios); for the same "
                  "number in every class pass --num_per_class.")
            check(self.num_per_class > 0, f"--num_per_class must be > 0 (or use --match_ratios --num N). "
                  f"Received: --num_per_class={self.num_per_class}")
        check(isinstance(self.truncation_psi, (int, float)) and math.isfinite(self.truncation_psi),
              f"--truncation_psi must be a finite number (1 = no truncation, 0.7 a common choice). "
              f"Received: {self.truncation_psi}")
        check(math.isfinite(self.privacy_percentile) and 0 <= self.privacy_percentile < 100,
              f"--privacy_percentile must lie in [0, 100) (0 = no privacy filter; 1 drops candidates closer to a "
              f"training slice than 99 % of held-out real slices are). Received: {self.privacy_percentile}")
        check(math.isfinite(self.min_class_prob) and 0 <= self.min_class_prob < 1,
              f"--min_class_prob must lie in [0, 1) (0 = no quality filter). Received: {self.min_class_prob}")
        check(0 <= self.seed <= MAX_SEED, f"--seed must lie in [0, {MAX_SEED}]. "
              f"Received: {self.seed}")
        check(self.batch_size >= 1, f"--batch must be >= 1. Received: {self.batch_size}")
        check(self.shard_size >= 1, f"--shard_size must be >= 1. Received: {self.shard_size}")
        check(math.isfinite(self.max_draws_per_slice) and self.max_draws_per_slice >= 1,
              f"--max_draws_per_slice must be >= 1. Received: {self.max_draws_per_slice}")
        from tfstylegan.networks.synthesis import check_noise_mode  # last: it imports TensorFlow

        check_noise_mode(self.noise_mode)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def class_counts(config: SyntheticDatasetConfig, class_names: Sequence[str],
                 real_train_counts: dict[str, int]) -> dict[str, int]:
    """Slices to make per class: `num_per_class` each, or `num` split in the real training ratios.

    The ratio split rounds by largest remainder, so the counts sum to `num` exactly.
    """
    class_names = list(class_names)
    if not config.match_ratios:
        return {c: int(config.num_per_class) for c in class_names}
    real = np.array([int(real_train_counts.get(c, 0)) for c in class_names], np.float64)
    if real.sum() <= 0:
        raise UserError(f"--match_ratios needs real training slices of {', '.join(class_names)}; the real "
                        "dataset's train split has none. Pass --num_per_class instead.")
    exact = real / real.sum() * int(config.num)
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[:int(config.num) - int(counts.sum())]:
        counts[i] += 1
    return {c: int(n) for c, n in zip(class_names, counts)}


def compact_seeds(seeds: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (the `--seeds` syntax of `generate`, so the slices can be remade)."""
    seeds = sorted(int(s) for s in seeds)
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def slice_id(class_name: str, seed: int) -> str:
    """The slice (and patient) id of a synthetic slice: 'glioma-seed000042'."""
    return f"{class_name}-seed{int(seed):06d}"


# --- the real reference -------------------------------------------------------------------------------------

def _pixel_scale(bit_depth: int) -> float:
    return 32767.5 if int(bit_depth) == 16 else 127.5


def quantize(images: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [N, H, W, 1] in [-1, 1] -> what a PNG of `bit_depth` stores: uint8 / uint16 [N, H, W]."""
    images = np.asarray(images)[..., 0]
    return to_uint16(images) if int(bit_depth) == 16 else to_uint8(images)


def to_float(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """uint [N, H, W] -> float32 [N, H, W, 1] in [-1, 1], as `tfstylegan.data.pipeline` reads them."""
    return (np.asarray(pixels, np.float32) / _pixel_scale(bit_depth) - 1.0)[..., None]


def read_split(data_dir: str | os.PathLike, split: str, class_names: Sequence[str] | None = None,
               bit_depth: int = 8) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """The stored pixels of a prepared split, exactly: (uint8/uint16 [N, H, W], class names, slice ids, patient ids).

    Shards are read in name order (class by class), PNGs decoded with PIL, nothing converted to float.
    """
    import tensorflow as tf

    from tfstylegan.data.tfrecords import feature_spec

    files = sorted((Path(data_dir) / split).glob("*-*-of-*.tfrecord"))
    if class_names is not None:
        files = [f for f in files if f.name.rsplit("-", 3)[0] in set(class_names)]
    images, classes, slices, patients = [], [], [], []
    if files:
        spec = feature_spec()
        ds = tf.data.TFRecordDataset([str(f) for f in files]).batch(256).map(lambda r: tf.io.parse_example(r, spec))
        for ex in ds.as_numpy_iterator():
            images += [decode_png(b) for b in ex["image"]]
            classes += [b.decode("utf-8") for b in ex["class_name"]]
            slices += [b.decode("utf-8") for b in ex["slice_id"]]
            patients += [b.decode("utf-8") for b in ex["patient_id"]]
    dtype = np.uint16 if int(bit_depth) == 16 else np.uint8
    if not images:
        return np.zeros([0, 0, 0], dtype), [], [], []
    return np.stack(images).astype(dtype), classes, slices, patients


@dataclasses.dataclass
class _ClassBaseline:
    """Held-out (val + test) real slices of one class: their distances to the training set and the thresholds."""

    num_heldout: int
    pixel_distances: np.ndarray
    feature_distances: np.ndarray | None
    pixel_threshold: float | None
    feature_threshold: float | None


class PrivacyReference:
    """The real training slices no synthetic slice may copy, and the held-out baseline of each class.

    Args:
      data_dir: the real prepared dataset; its train split is the reference (every class).
      manifest: its manifest.
      classes: the classes that will be generated (each needs a baseline).
      judge: a `tfstylegan.apps.evaluation.features.Judge` for the feature space, or None (pixels only).
      percentile: the baseline percentile below which a candidate is dropped (0 = none dropped).
    """

    def __init__(self, data_dir, manifest: dict, classes: Sequence[str], judge=None, percentile: float = 1.0,
                 show_progress: bool = True):
        self.bit_depth = int(manifest["bit_depth"])
        self.scale = _pixel_scale(self.bit_depth)
        self.percentile = float(percentile)
        self.judge = judge
        self.train, _, self.train_slices, _ = read_split(
            data_dir, "train", bit_depth=self.bit_depth)
        if len(self.train) == 0:
            raise UserError(f"{data_dir} has no train split (manifest split_counts: {manifest.get('split_counts')}); "
                            "the privacy filter compares every synthetic slice with the real training slices. "
                            "Pass the prepared dataset the generator was trained on.")
        self.train_rows = self.train.reshape(len(self.train), -1)
        self.train_features = None
        if judge is not None:
            self.train_features = self._features(self.train, f"judge {len(self.train)} train slices", show_progress)
        self.baselines: dict[str, _ClassBaseline] = {}
        heldout, heldout_classes = [], []
        for split in ("val", "test"):
            pixels, names = read_split(data_dir, split, classes, self.bit_depth)[:2]
            if len(pixels):
                heldout.append(pixels)
                heldout_classes += names
        heldout = np.concatenate(heldout) if heldout else self.train[:0]
        heldout_classes = np.asarray(heldout_classes)
        for c in classes:
            held = heldout[heldout_classes == c] if len(heldout) else heldout
            if len(held) < 2:
                if self.percentile > 0:
                    raise UserError(f"The privacy filter needs at least 2 held-out (val/test) real slices of class "
                                    f"{c!r} as its baseline; {data_dir} has {len(held)}. Prepare the data with "
                                    "held-out patients (--split 0.8,0.1,0.1), or pass --privacy_percentile 0 to "
                                    "skip the filter (the distances are still reported).")
                self.baselines[c] = _ClassBaseline(len(held), np.zeros([0]), None, None, None)
                continue
            px = self.pixel_nearest(self._rows(held))[1]
            ft = None
            if judge is not None:
                ft = self.feature_nearest(self._features(held, f"judge held-out {c}", False))[1]
            on = self.percentile > 0
            self.baselines[c] = _ClassBaseline(
                len(held), px, ft,
                float(np.percentile(px, self.percentile)) if on else None,
                float(np.percentile(ft, self.percentile)) if on and ft is not None else None)

    @staticmethod
    def _rows(pixels: np.ndarray) -> np.ndarray:
        return pixels.reshape(len(pixels), -1)

    def _features(self, pixels: np.ndarray, desc: str, show_progress: bool) -> np.ndarray:
        return judge_pixels(self.judge, pixels, self.bit_depth, desc, show_progress)[0]

    def pixel_nearest(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored pixels [N, D] -> (nearest training index int64 [N], distance in [-1, 1] units float64 [N])."""
        from tfstylegan.metrics.memorization import nearest_neighbours

        idx, dist = nearest_neighbours(rows, self.train_rows, batch_size=256)
        return idx, dist / self.scale

    def feature_nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from tfstylegan.metrics.memorization import nearest_neighbours

        return nearest_neighbours(features, self.train_features, batch_size=1024)

    def summary(self) -> dict[str, Any]:
        return {"train_slices": int(len(self.train)), "space": ["pixels"] + (["judge features"] if self.judge else []),
                "percentile": self.percentile,
                "heldout_slices": {c: b.num_heldout for c, b in self.baselines.items()}}


def judge_pixels(judge, pixels: np.ndarray, bit_depth: int, desc: str | None = None,
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The judge's (features [N, 2048], probs [N, K]) of stored pixels [N, H, W].

    The input is padded to whole batches so that the judge's traced function sees one shape and is
    traced once (each InceptionV3 trace costs seconds); the progress line counts the padded images.
    """
    n, b = len(pixels), judge.batch_size
    padded = np.zeros((max(1, math.ceil(n / b)) * b,) + pixels.shape[1:], pixels.dtype)
    padded[:n] = pixels
    feats, probs = judge.features_and_probs(to_float(padded, bit_depth), desc, show_progress)
    return feats[:n], probs[:n]


# --- candidates ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Candidate:
    """One generated slice and the filters' view of it."""

    seed: int
    pixels: np.ndarray                 # uint8/uint16 [H, W], as stored
    mask: np.ndarray | None            # uint8 [H, W] 0/255, or None
    pixel_distance: float
    nearest_train: int
    feature_distance: float | None
    nearest_train_features: int | None
    class_prob: float | None
    reasons: tuple[str, ...]

    @property
    def kept(self) -> bool:
        return not self.reasons

    def record(self, reference: PrivacyReference) -> dict[str, Any]:
        r = {"seed": self.seed, "pixel_distance": self.pixel_distance,
             "nearest_train": reference.train_slices[self.nearest_train], "nearest_train_index": self.nearest_train}
        if self.feature_distance is not None:
            r["feature_distance"] = self.feature_distance
            r["nearest_train_features"] = reference.train_slices[self.nearest_train_features]
        if self.class_prob is not None:
            r["class_prob"] = self.class_prob
        if self.reasons:
            r["reasons"] = list(self.reasons)
        return r


def generate_candidates(gen: ClassGenerator, seeds: Sequence[int], truncation_psi: float,
                        noise_mode: str) -> np.ndarray:
    """The images of `seeds`, float32 [N, H, W, C] in about [-1, 1] (`generation.generate_images`)."""
    from tfstylegan.apps import generation

    return generation.generate_images(gen, list(seeds), truncation_psi=truncation_psi, noise_mode=noise_mode,
                                      batch_size=max(1, len(seeds)), show_progress=False)


def candidates(gen: ClassGenerator, class_name: str, first_seed: int, config: SyntheticDatasetConfig,
               reference: PrivacyReference, judge=None, with_mask: bool = False) -> Iterator[Candidate]:
    """Candidates of one class from `first_seed` on, in seed order, each with its filter decision.

    Seeds are generated in batches aligned to `config.seed` (seed + k * batch_size, ...), so each seed is
    always computed in the same batch, bit for bit, also when a resumed run starts in the middle of one.
    """
    baseline = reference.baselines[class_name]
    class_index = judge.class_names.index(class_name) if judge is not None else None
    seed = int(config.seed) + (int(first_seed) - int(config.seed)) // config.batch_size * config.batch_size
    while True:
        if seed > MAX_SEED:
            raise UserError(f"Ran out of seeds for {class_name!r} (the last is {MAX_SEED}).")
        seeds = list(range(seed, min(seed + config.batch_size, MAX_SEED + 1)))
        images = generate_candidates(gen, seeds, config.truncation_psi, config.noise_mode)
        pixels = quantize(images[..., :1], reference.bit_depth)
        masks = (np.where(images[..., 1] > 0, 255, 0).astype(np.uint8) if with_mask else None)
        px_idx, px_dist = reference.pixel_nearest(pixels.reshape(len(pixels), -1))
        ft_idx = ft_dist = probs = None
        if judge is not None:
            feats, probs = judge_pixels(judge, pixels, reference.bit_depth)
            ft_idx, ft_dist = reference.feature_nearest(feats)
        for i, s in enumerate(seeds):
            if s < first_seed:  # before the resume point: its batch mates need it, the dataset has it
                continue
            reasons = []
            if baseline.pixel_threshold is not None and px_dist[i] < baseline.pixel_threshold:
                reasons.append("privacy_pixels")
            if (ft_dist is not None and baseline.feature_threshold is not None
                    and ft_dist[i] < baseline.feature_threshold):
                reasons.append("privacy_features")
            prob = float(probs[i, class_index]) if probs is not None else None
            if config.min_class_prob > 0 and prob < config.min_class_prob:
                reasons.append("quality")
            yield Candidate(seed=s, pixels=pixels[i], mask=None if masks is None else masks[i],
                            pixel_distance=float(px_dist[i]), nearest_train=int(px_idx[i]),
                            feature_distance=None if ft_dist is None else float(ft_dist[i]),
                            nearest_train_features=None if ft_idx is None else int(ft_idx[i]),
                            class_prob=prob, reasons=tuple(reasons))
        seed = seeds[-1] + 1


# --- writing --------------------------------------------------------------------------------------------------

def _example(class_name: str, seed: int, pixels: np.ndarray, mask: np.ndarray | None) -> bytes:
    sid = slice_id(class_name, seed)
    return make_example(encode_png(pixels), b"" if mask is None else encode_png(mask),
                        ALL_CLASS_NAMES.index(class_name), class_name, sid, sid, pixels.shape[0], pixels.shape[1])


def _write_shard(path: Path, examples: Sequence[bytes]) -> None:
    """A TFRecord shard written under a temporary name and renamed when closed."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tf.io.TFRecordWriter(str(tmp)) as w:
        for ex in examples:
            w.write(ex)
    os.replace(tmp, path)


def _png_paths(class_name: str, seed: int, with_mask: bool) -> tuple[str, str]:
    base = f"{PNG_DIR}/{class_name}/{slice_id(class_name, seed)}"
    return f"{base}.png", (f"{base}_mask.png" if with_mask else "")


def _num_shards(n: int, shard_size: int) -> int:
    return max(1, math.ceil(n / shard_size))


def _state_path(root: Path, class_name: str, shard: int) -> Path:
    return root / STATE_DIR / f"{class_name}-{shard:05d}.json"


def _load_state(root: Path, class_name: str, num_shards: int) -> list[dict]:
    """The finished shards of a class, in order (a shard is finished once its state file exists)."""
    done = []
    for k in range(num_shards):
        p = _state_path(root, class_name, k)
        if not p.is_file():
            break
        done.append(json.loads(p.read_text(encoding="utf-8")))
    return done


def _settings_file(root: Path) -> Path:
    return root / STATE_DIR / "settings.json"


def _comparable(settings: dict) -> dict:
    """Settings that must match for a resumed run to continue the same dataset."""
    s = json.loads(json.dumps(settings))
    s.get("config", {}).pop("max_draws_per_slice", None)
    return s


def _open_partial(out_dir: Path, settings: dict, overwrite: bool, resume: bool) -> Path:
    partial = out_dir.parent / f".{out_dir.name}.partial"
    if partial.exists() and not resume:
        if not overwrite:
            raise UserError(f"{partial} holds an unfinished synthetic dataset (an interrupted run). Pass --resume "
                            "to continue it with the same flags, or --overwrite to start again.")
        shutil.rmtree(partial)
    if partial.exists():
        saved = _settings_file(partial)
        old = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
        if old is None or _comparable(old) != _comparable(settings):
            diff = sorted(k for k in set(_flat(old or {})) | set(_flat(settings))
                          if _flat(old or {}).get(k) != _flat(settings).get(k))
            raise UserError(f"--resume: {partial} was started with other settings (differences: "
                            f"{', '.join(diff[:6]) or 'unknown'}). Rerun with the same flags, or pass --overwrite "
                            "without --resume to start again.")
        print(f"resuming {partial}", flush=True)
    else:
        partial.mkdir(parents=True)
        write_json(_settings_file(partial), settings)
    return partial


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _fill_class(partial: Path, gen, class_name: str, count: int, config: SyntheticDatasetConfig,
                reference: PrivacyReference, judge, with_mask: bool, progress: Progress) -> list[dict]:
    """Writes the shards of one class (continuing after its finished ones); returns their states."""
    n_shards = _num_shards(count, config.shard_size)
    states = _load_state(partial, class_name, n_shards)
    for k in range(len(states), n_shards):  # leftovers of an interrupted shard
        for stale in (partial / "train").glob(f".{shard_name(class_name, k, n_shards)}.tmp"):
            stale.unlink()
    kept_so_far = sum(len(s["kept"]) for s in states)
    drawn_so_far = sum(len(s["kept"]) + len(s["dropped"]) for s in states)
    next_seed = states[-1]["next_seed"] if states else int(config.seed)
    max_draws = int(math.ceil(config.max_draws_per_slice * count))
    stream = candidates(gen, class_name, next_seed, config, reference, judge, with_mask)
    for k in range(len(states), n_shards):
        want = min(config.shard_size, count - k * config.shard_size)
        examples: list[bytes] = []
        kept: list[dict] = []
        dropped: list[dict] = []
        while len(kept) < want:
            if drawn_so_far >= max_draws:
                raise UserError(
                    f"{class_name}: only {kept_so_far + len(kept)} of {count} slices passed the filters after "
                    f"{drawn_so_far} candidates (--max_draws_per_slice={config.max_draws_per_slice:g}). Lower "
                    f"--min_class_prob (now {config.min_class_prob:g}) or --privacy_percentile (now "
                    f"{config.privacy_percentile:g}), or raise --max_draws_per_slice; finished shards are kept "
                    "for --resume.")
            cand = next(stream)
            drawn_so_far += 1
            if not cand.kept:
                dropped.append(cand.record(reference))
                continue
            examples.append(_example(class_name, cand.seed, cand.pixels, cand.mask))
            kept.append(cand.record(reference))
            if config.png:
                image_file, mask_file = _png_paths(class_name, cand.seed, with_mask)
                save_png(partial / image_file, cand.pixels)
                if mask_file:
                    save_png(partial / mask_file, cand.mask)
            progress.update(1)
        _write_shard(partial / "train" / shard_name(class_name, k, n_shards), examples)
        state = {"shard": k, "next_seed": kept[-1]["seed"] + 1, "kept": kept, "dropped": dropped}
        write_json(_state_path(partial, class_name, k), state)
        states.append(state)
        kept_so_far += len(kept)
    return states


def _read_kept(root: Path, class_name: str, positions: Sequence[int], shard_size: int, num_shards: int,
               bit_depth: int) -> np.ndarray:
    """Stored slices of a class at `positions` (index in seed order), uint [len, H, W]."""
    out: dict[int, np.ndarray] = {}
    by_shard: dict[int, list[int]] = {}
    for p in positions:
        by_shard.setdefault(int(p) // shard_size, []).append(int(p))
    for k, ps in by_shard.items():
        examples = read_examples(root / "train" / shard_name(class_name, k, num_shards))
        for p in ps:
            out[p] = decode_png(examples[p - k * shard_size]["image"])
    dtype = np.uint16 if int(bit_depth) == 16 else np.uint8
    return np.stack([out[int(p)] for p in positions]).astype(dtype)


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return None
    pcts = np.percentile(v, [1, 5, 50])
    return {"min": float(v.min()), "p01": float(pcts[0]), "p05": float(pcts[1]), "median": float(pcts[2]),
            "mean": float(v.mean())}


def _class_report(class_name: str, count: int, states: list[dict], reference: PrivacyReference,
                  config: SyntheticDatasetConfig) -> dict[str, Any]:
    kept = [r for s in states for r in s["kept"]]
    dropped = [r for s in states for r in s["dropped"]]
    drawn = len(kept) + len(dropped)
    base = reference.baselines[class_name]
    by_reason = {r: sum(r in d["reasons"] for d in dropped) for r in REASONS}
    privacy = sum(any(x.startswith("privacy") for x in d["reasons"]) for d in dropped)
    closest = sorted(range(len(kept)), key=lambda i: kept[i]["pixel_distance"])[:CLOSEST_PAIRS]
    report = {
        "wanted": int(count), "kept": len(kept), "drawn": drawn, "dropped": len(dropped),
        "dropped_privacy": int(privacy), "dropped_privacy_pixels": by_reason["privacy_pixels"],
        "dropped_privacy_features": by_reason["privacy_features"],
        "rejected_quality": by_reason["quality"],
        "quality_rejection_rate": (by_reason["quality"] / drawn) if drawn else 0.0,
        "privacy_drop_rate": (privacy / drawn) if drawn else 0.0,
        "seeds_kept": compact_seeds([r["seed"] for r in kept]),
        "seeds_dropped": compact_seeds([r["seed"] for r in dropped]),
        "heldout_slices": base.num_heldout,
        "threshold_pixels": base.pixel_threshold, "threshold_features": base.feature_threshold,
        "heldout_to_train_pixels": _summary(base.pixel_distances),
        "kept_to_train_pixels": _summary([r["pixel_distance"] for r in kept]),
        "heldout_to_train_features": None if base.feature_distances is None else _summary(base.feature_distances),
        "kept_to_train_features": (_summary([r["feature_distance"] for r in kept])
                                   if reference.judge is not None else None),
        "min_class_prob_kept": (min(r["class_prob"] for r in kept) if kept and "class_prob" in kept[0] else None),
        "closest_kept": [{"position": i, **kept[i]} for i in closest],
    }
    return report


def _finish(partial: Path, counts: dict[str, int], states: dict[str, list[dict]], reference: PrivacyReference,
            config: SyntheticDatasetConfig, settings: dict, with_mask: bool, resolution: int) -> dict:
    """Report, figures, previews, slices.csv and the manifest, all inside `partial`."""
    from tfstylegan.utils.charts import histogram_figure, save_figure

    bit_depth = reference.bit_depth
    per_class = {c: _class_report(c, counts[c], states[c], reference, config) for c in counts if counts[c] > 0}
    figures = {}
    for c, rep in per_class.items():
        n_shards = _num_shards(counts[c], config.shard_size)
        closest = rep["closest_kept"]
        if closest:
            gen_px = _read_kept(partial, c, [r["position"] for r in closest], config.shard_size, n_shards, bit_depth)
            train_idx = [r["nearest_train_index"] for r in closest]
            pairs = np.stack([gen_px, reference.train[train_idx]], axis=1).reshape((-1,) + gen_px.shape[1:])
            if bit_depth == 16:
                pairs = (pairs >> 8).astype(np.uint8)
            grid = image_grid(pairs[..., None], grid_w=2, padding=2, pad_value=255)
            save_png(partial / PRIVACY_DIR / f"closest_pairs_{c}.png", upscale_for_viewing(grid, resolution))
            figures[c] = {"closest_pairs": f"{PRIVACY_DIR}/closest_pairs_{c}.png"}
            kept_d = [r["pixel_distance"] for s in states[c] for r in s["kept"]]
            base = reference.baselines[c]
            if len(base.pixel_distances):
                chart = histogram_figure(kept_d, base.pixel_distances, ("synthetic (kept) -> train",
                                                                       "held-out real -> train"),
                                         threshold=base.pixel_threshold,
                                         title=f"{c}: pixel distance to the nearest real training slice")
                save_figure(chart, partial / PRIVACY_DIR / f"distances_{c}", formats=("png",))
                figures[c]["distances"] = f"{PRIVACY_DIR}/distances_{c}.png"
        preview = _read_kept(partial, c, list(range(min(PREVIEW_IMAGES, counts[c]))), config.shard_size, n_shards,
                             bit_depth)
        if bit_depth == 16:
            preview = (preview >> 8).astype(np.uint8)
        save_png(partial / f"preview_{c}.png", image_grid(preview[..., None], grid_w=min(4, len(preview)), padding=2))

    totals = {k: int(sum(r[k] for r in per_class.values()))
              for k in ("wanted", "kept", "drawn", "dropped", "dropped_privacy", "rejected_quality")}
    report = {
        "what": "Each synthetic slice's nearest real training slice, against the held-out baseline "
                "(tfstylegan.apps.synthetic_dataset). Release the dataset only with this report. The "
                "closest_pairs pictures show real training slices: review them, do not publish them.",
        "reference": {"data": settings["data"]["path"], **reference.summary()},
        "filters": settings["filters"],
        "totals": totals,
        "per_class": per_class,
        "figures": figures,
    }
    write_json(partial / PRIVACY_DIR / "report.json", report)

    # slices.csv (and the PNG checksums), from the shard states
    rows = []
    for c in states:
        n_shards = _num_shards(counts[c], config.shard_size)
        for s in states[c]:
            for r in s["kept"]:
                image_file, mask_file = _png_paths(c, r["seed"], with_mask) if config.png else ("", "")
                rows.append({"slice_id": slice_id(c, r["seed"]), "class": c, "seed": r["seed"],
                             "shard": f"train/{shard_name(c, s['shard'], n_shards)}", "file": image_file,
                             "mask_file": mask_file, "pixel_distance": f"{r['pixel_distance']:.6g}",
                             "feature_distance": f"{r['feature_distance']:.6g}" if "feature_distance" in r else "",
                             "class_prob": f"{r['class_prob']:.6g}" if "class_prob" in r else ""})
    with atomic_open(partial / "slices.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["slice_id"])
        writer.writeheader()
        writer.writerows(rows)
    if config.png:
        listed = {r["file"] for r in rows} | {r["mask_file"] for r in rows if r["mask_file"]}
        for p in sorted((partial / PNG_DIR).rglob("*")):  # files of an interrupted shard that was redone differently
            if p.is_file() and p.relative_to(partial).as_posix() not in listed:
                p.unlink()
        with atomic_open(partial / PNG_DIR / "SHA256SUMS", "w", encoding="utf-8") as f:
            for name in sorted(listed):
                f.write(f"{sha256_file(partial / name)}  {Path(name).relative_to(PNG_DIR).as_posix()}\n")

    class_names = [c for c in ALL_CLASS_NAMES if counts.get(c, 0) > 0]
    train_counts = {c: int(counts[c]) for c in class_names}
    manifest = {
        "format_version": FORMAT_VERSION,
        "resolution": int(resolution),
        "bit_depth": int(bit_depth),
        "channels": 1,
        "class_names": class_names,
        "has_mask": bool(with_mask),
        "counts": train_counts,
        "split_counts": {s: (dict(train_counts) if s == "train" else {c: 0 for c in class_names}) for s in SPLITS},
        "num_patients": {s: 0 for s in SPLITS},
        "patients": {s: [] for s in SPLITS},
        "patient_ids_known": False,
        "source": {"path": settings["checkpoint"], "format": SOURCE_FORMAT,
                   "note": "generated slices: no patients; slice_id = patient_id = '<class>-seed<seed>', "
                           "all in the train split (validate and test on real data)"},
        "settings": config.to_dict(),
        "synthetic": {
            **{k: settings[k] for k in ("checkpoint", "generators", "data", "classifier", "truncation_psi",
                                        "noise_mode", "filters")},
            "seeds": {c: {"first": int(config.seed), "kept": per_class[c]["seeds_kept"], "drawn": per_class[c]["drawn"]}
                      for c in per_class},
            "with_mask": bool(with_mask),
            "privacy_report": f"{PRIVACY_DIR}/report.json",
            "privacy": {c: {k: per_class[c][k] for k in ("kept", "drawn", "dropped_privacy", "rejected_quality",
                                                       "quality_rejection_rate")} for c in per_class},
            "png": f"{PNG_DIR}/" if config.png else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "files": {},
        "skipped": [],
    }
    shutil.rmtree(partial / STATE_DIR)  # the states live on in the report and slices.csv
    for p in sorted(partial.rglob("*")):
        rel = p.relative_to(partial).as_posix()
        if p.is_file() and not (rel.startswith(f"{PNG_DIR}/") and rel != f"{PNG_DIR}/SHA256SUMS"):
            manifest["files"][rel] = sha256_file(p)
    write_json(partial / "manifest.json", manifest)
    return manifest


def _publish(partial: Path, out_dir: Path, overwrite: bool) -> None:
    """Renames the finished `partial` to `out_dir` (replacing an old one only now, with `overwrite`)."""
    if out_dir.exists():
        if not overwrite:
            raise UserError(f"Output folder {out_dir} appeared while generating; pass --overwrite to replace it.")
        old = out_dir.parent / f".{out_dir.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(partial, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out_dir)


def _checkpoint_kimg(path: str) -> float | None:
    """Training progress of a checkpoint (kimg), or None for networks-only (imported) checkpoints."""
    import tensorflow as tf

    from tfstylegan.training.checkpoint import latest_checkpoint

    try:
        prefix = latest_checkpoint(path)
        for name, _ in tf.train.list_variables(prefix):
            if name.split("/")[0] == "state" and "cur_nimg" in name:
                return round(float(tf.train.load_variable(prefix, name)) / 1000.0, 3)
    except (UserError, tf.errors.OpError, ValueError):
        return None
    return None


def _file_info(path) -> dict[str, Any]:
    return {"path": str(path), "sha256": sha256_file(path)}


def write_synthetic_dataset(checkpoint: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                            config: SyntheticDatasetConfig, classifier: str | os.PathLike | None = None,
                            overwrite: bool = False, resume: bool = False, show_progress: bool = True) -> dict:
    """Generates, filters and writes a synthetic dataset (see the module docstring); returns its manifest.

    Args:
      checkpoint: `PATH` (a conditional or per-class run) or `cls=PATH,cls=PATH,...`.
      data_dir: the real prepared dataset the models were trained on (privacy reference and baseline,
        class ratios, resolution and bit depth).
      out_dir: the output folder (must not exist unless `overwrite`).
      config: `SyntheticDatasetConfig`.
      classifier: the judge (`classifier.keras`, a loaded `TumorClassifier` or a `Judge`): adds the
        feature-space privacy check and allows the quality filter. Without it, privacy is checked in pixel
        space only.
      overwrite: replace an existing `out_dir` (once the new one is complete) or an unfinished one.
      resume: continue the unfinished run of the same settings in `.<out>.partial/`.
    """
    from tfstylegan.apps import generation
    from tfstylegan.data.pipeline import read_manifest

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"Output folder {out_dir} already exists. Choose another --out, delete it, or pass "
                        "--overwrite.")
    if out_dir.resolve() == data_dir.resolve():
        raise UserError(f"--out {out_dir} is the real --data folder; choose another --out.")
    manifest = read_manifest(data_dir)
    real_train = {c: int(n) for c, n in manifest["split_counts"].get("train", {}).items()}
    if sum(real_train.values()) == 0:
        raise UserError(f"{data_dir} has no train split (manifest split_counts: {manifest['split_counts']}). The "
                        "real training slices are the privacy reference: pass the prepared dataset the "
                        "generator was trained on.")
    if config.min_class_prob > 0 and classifier is None:
        raise UserError(f"--min_class_prob {config.min_class_prob:g} needs the judge: pass --classifier "
                        "(classifier.keras from launchers/train_classifier.py), or --min_class_prob 0.")
    gens = generation.load_class_generators(checkpoint)
    resolution = int(manifest["resolution"])
    for name, gen in gens.items():
        if name not in manifest["class_names"]:
            raise UserError(f"{data_dir} has no class {name!r} (it has {', '.join(manifest['class_names'])}). Pass "
                            "the real dataset the generators were trained on.")
        if gen.resolution != resolution:
            raise UserError(f"The {name!r} generator makes {gen.resolution}x{gen.resolution} slices but {data_dir} is "
                            f"{resolution}x{resolution}. Pass the real dataset at the model's resolution.")
    model_masks = {n: g.with_mask for n, g in gens.items()}
    with_mask = all(model_masks.values()) if config.with_mask is None else bool(config.with_mask)
    if with_mask and not all(model_masks.values()):
        no = [n for n, m in model_masks.items() if not m]
        raise UserError(f"--with_mask: the generator(s) of {', '.join(no)} make no tumor masks (1 channel); they "
                        "were trained without --with_mask. Drop --with_mask.")
    judge = None
    if classifier is not None:
        from classifier.model import load_classifier
        from tfstylegan.apps.evaluation.features import Judge

        if isinstance(classifier, Judge):
            judge = classifier
        else:
            model = load_classifier(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
            judge = Judge(model, batch_size=config.batch_size)
        unknown = [n for n in gens if n not in judge.class_names]
        if unknown:
            raise UserError(f"The classifier {classifier} knows {', '.join(judge.class_names)}, not "
                            f"{', '.join(unknown)}. Pass a judge trained on the same classes.")
    counts = class_counts(config, list(gens), real_train)

    filters = {
        "privacy": {"percentile": config.privacy_percentile, "enabled": config.privacy_percentile > 0,
                    "space": ["pixels"] + (["judge features"] if judge is not None else []),
                    "reference": "real train split, every class", "baseline": "real val+test of the same class",
                    "rule": "drop if the distance to the nearest training slice < the percentile of the "
                            "held-out distances, in any space"},
        "quality": {"min_class_prob": config.min_class_prob, "enabled": config.min_class_prob > 0},
    }
    settings = {
        "checkpoint": str(checkpoint),
        "generators": {n: {"checkpoint": str(Path(g.checkpoint).resolve()), "kimg": _checkpoint_kimg(g.checkpoint),
                           "class_id": g.class_id, "conditional": g.class_id is not None}
                       for n, g in gens.items()},
        "data": {"path": str(data_dir.resolve()), "manifest_sha256": sha256_file(data_dir / "manifest.json")},
        "classifier": (None if classifier is None else _file_info(Path(classifier).resolve())
                       if isinstance(classifier, (str, os.PathLike)) else {"path": None, "sha256": None,
                                                                          "model": "in memory"}),
        "truncation_psi": float(config.truncation_psi), "noise_mode": config.noise_mode,
        "filters": filters, "counts": counts, "with_mask": with_mask, "config": config.to_dict(),
    }
    reference = PrivacyReference(data_dir, manifest, [c for c in counts if counts[c] > 0], judge,
                                 config.privacy_percentile, show_progress)
    partial = _open_partial(out_dir, settings, overwrite, resume)
    for c, b in reference.baselines.items():
        if b.pixel_threshold is not None:
            extra = f", features {b.feature_threshold:.4g}" if b.feature_threshold is not None else ""
            print(f"privacy baseline {c}: {b.num_heldout} held-out slices; drop below pixels "
                  f"{b.pixel_threshold:.4g}{extra} (percentile {config.privacy_percentile:g})", flush=True)
    states: dict[str, list[dict]] = {}
    done = sum(len(st["kept"]) for c, n in counts.items() if n > 0
               for st in _load_state(partial, c, _num_shards(n, config.shard_size)))
    if done:
        print(f"{done} of {sum(counts.values())} slices were written before; continuing", flush=True)
    progress = Progress(sum(counts.values()) - done, desc="synthesize", unit="slice", enabled=show_progress)
    try:
        for c, n in counts.items():
            if n > 0:
                states[c] = _fill_class(partial, gens[c], c, n, config, reference, judge, with_mask, progress)
        progress.close()
        out_manifest = _finish(partial, counts, states, reference, config, settings, with_mask, resolution)
        _publish(partial, out_dir, overwrite)
    except BaseException:
        finished = any((partial / STATE_DIR).glob("*-*.json")) or (partial / "manifest.json").exists()
        if not finished:  # nothing finished: nothing worth resuming
            shutil.rmtree(partial, ignore_errors=True)
        else:
            print(f"note: finished shards are kept in {partial}; rerun with --resume to continue.", flush=True)
        raise
    for c, r in out_manifest["synthetic"]["privacy"].items():
        print(f"{c}: kept {r['kept']} of {r['drawn']} candidates (privacy dropped {r['dropped_privacy']}, quality "
              f"rejected {r['rejected_quality']} = {100 * r['quality_rejection_rate']:.1f} %)", flush=True)
    print(f"wrote {out_dir} (privacy report: {out_dir / PRIVACY_DIR / 'report.json'})", flush=True)
    return out_manifest


# --- in-memory images as a dataset (evaluate --utility) ---------------------------------------------------

def write_images_dataset(out_dir: str | os.PathLike, images: dict[str, np.ndarray], seeds: dict[str, Sequence[int]],
                         bit_depth: int, provenance: dict[str, Any], shard_size: int = 1024) -> dict:
    """Writes already generated images {class: float [N, H, W, 1 or 2]} (no filters) in the same layout.

    The examples are those `write_synthetic_dataset` writes for the same seeds with the filters off
    (`privacy_percentile=0`, `min_class_prob=0`): same ids, labels and slices, whose pixels may differ by one
    grey level where float round-off of another batch shape crosses a rounding step. No privacy report.
    """
    from tfstylegan.utils.io import atomic_dir

    out_dir = Path(out_dir)
    class_names = [c for c in ALL_CLASS_NAMES if c in images and len(images[c])]
    if not class_names:
        raise UserError("No synthetic images to write.")
    shapes = {np.asarray(images[c]).shape[1:3] for c in class_names}
    if len(shapes) != 1:
        raise ValueError(f"All classes' images must have one size. Received: {shapes}")
    resolution = int(next(iter(shapes))[0])
    counts = {c: int(len(images[c])) for c in class_names}
    with atomic_dir(out_dir) as tmp:
        for c in class_names:
            pixels = quantize(np.asarray(images[c])[..., :1], bit_depth)
            n_shards = _num_shards(len(pixels), shard_size)
            for k in range(n_shards):
                part = range(k * shard_size, min((k + 1) * shard_size, len(pixels)))
                _write_shard(tmp / "train" / shard_name(c, k, n_shards),
                             [_example(c, int(seeds[c][i]), pixels[i], None) for i in part])
        manifest = {
            "format_version": FORMAT_VERSION, "resolution": resolution, "bit_depth": int(bit_depth), "channels": 1,
            "class_names": class_names, "has_mask": False, "counts": counts,
            "split_counts": {s: (dict(counts) if s == "train" else {c: 0 for c in class_names}) for s in SPLITS},
            "num_patients": {s: 0 for s in SPLITS}, "patients": {s: [] for s in SPLITS},
            "patient_ids_known": False,
            "source": {"path": str(provenance.get("checkpoint")), "format": SOURCE_FORMAT},
            "settings": {}, "synthetic": {**provenance,
                                          "seeds": {c: {"kept": compact_seeds(seeds[c])} for c in class_names},
                                          "filters": None, "privacy_report": None},
            "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
            "skipped": [],
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest
