"""`evaluate(...)`: the study's evaluation of trained generators against real data, with a judge.

For each class (per-class checkpoints, or one conditional checkpoint) and pooled over classes:

- Inception Score of `num_images` real images (the `split`, default test; all splits if that
  one has too few, recorded in the results) and of `num_images` generated ones (seeds
  0..n-1, truncation psi, 'const' noise), from the fine-tuned judge's probabilities, 10 splits
  (the study: 300 + 300 per class, IS 2.6 real vs 2.4 generated);
- FID, KID, precision and recall on the judge's pooled 2048-d features ("domain FID"), and on
  ImageNet InceptionV3 features when `inception_weights` (a local notop `.h5`) is given;
- the judge's accuracy on real and on generated images (does a glioma generator make gliomas?);
- pixel spread of real and of generated images per class (`tfstylegan.metrics.spread`): how much
  the slices of a class vary, with no judge in between (a collapsed generator is near 0);
- memorization: nearest training image of every generated one, against the held-out baseline,
  in pixel space and in the judge's feature space;
- perceptual path length in W with the judge's normalised features as the distance;
- optionally, utility: train-on-synthetic, test-on-real (`tfstylegan.apps.evaluation.utility`).

Outputs (written into a temporary folder renamed to `out` when complete):
`results.json`, `figures/*.png`, TensorBoard scalars and images under `tensorboard/`.

(Over 400 lines: `evaluate` runs every metric of one evaluation over the same images; the
feature extractors, the report and the utility experiment are their own modules.)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier.model import load_classifier
from classifier.training import ClassifierConfig
from tfstylegan.apps.evaluation.features import InceptionFeatures, Judge
from tfstylegan.apps.evaluation.report import results_table, summaries_writer, tb_image, tb_scalars
from tfstylegan.apps.evaluation.utility import train_on_synthetic
from tfstylegan.apps.figures import figure_grid
from tfstylegan.apps.generation.images import generate_images, image_channel
from tfstylegan.apps.generation.loading import ClassGenerator, load_class_generators
from tfstylegan.apps.synthetic_dataset.shards import write_images_dataset
from tfstylegan.data.classes import SPLITS
from tfstylegan.data.pipeline import load_arrays, read_manifest
from tfstylegan.metrics import (
    closest_pairs_figure,
    fid_from_features,
    inception_score,
    kernel_inception_distance,
    memorization_report,
    perceptual_path_length,
    pixel_spread,
    precision_recall,
)
from tfstylegan.networks.synthesis import check_noise_mode
from tfstylegan.utils.charts import (
    bar_chart_figure,
    confusion_matrix_figure,
    figure_to_array,
    histogram_figure,
    save_figure,
)
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, upscale_for_viewing
from tfstylegan.utils.io import atomic_dir, write_json


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation settings.

    Attributes:
      num_images: real and generated images per class (300 in the study; more is more reliable).
      split: the real split compared with (falls back to all splits if it has fewer images).
      truncation_psi: truncation of the generated images (1.0 = none).
      noise_mode: 'random' (the default, as the reference's metrics: fresh synthesis noise, what the
        model samples; seeded by each image's seed), 'const' (the stored noise buffers) or 'none'.
      batch_size: images per generator / judge call.
      is_splits: Inception Score splits (10 by convention).
      kid_subsets, kid_subset_size: KID subsets (capped at the number of images).
      pr_k: k of the precision/recall k-NN manifolds.
      memorization_percentile: held-out percentile below which a generated image counts as a copy.
      ppl_samples: PPL samples per class (0 = skip PPL).
      ppl_epsilon: PPL step.
      inception_size: input side for the ImageNet InceptionV3 features (299 standard).
      utility: run the train-on-synthetic experiment (slow).
      utility_epochs, utility_weights, utility_batch_size: its classifier training settings.
      utility_settings: which training sets to compare (`tfstylegan.apps.evaluation.utility.SETTINGS`).
      seed: seed of KID subsets, PPL sampling and the pooled IS shuffle.
    """

    num_images: int = 300
    split: str = "test"
    truncation_psi: float = 1.0
    noise_mode: str = "random"
    batch_size: int = 32
    is_splits: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    memorization_percentile: float = 1.0
    ppl_samples: int = 300
    ppl_epsilon: float = 1e-4
    inception_size: int = 299
    utility: bool = False
    utility_epochs: int = 5
    utility_weights: str = "imagenet"
    utility_batch_size: int = 32
    utility_settings: tuple[str, ...] = ("real", "real+synthetic", "synthetic")
    seed: int = 0

    def __post_init__(self):
        def check(cond, msg):
            if not cond:
                raise UserError(msg)

        check(self.is_splits >= 1, f"--is_splits must be >= 1. Received: {self.is_splits}")
        check(self.num_images >= max(self.is_splits, self.pr_k + 1, 2),
              f"--num_images must be at least {max(self.is_splits, self.pr_k + 1, 2)} (one per IS split and "
              f"more than k={self.pr_k} for precision/recall); the study uses 300. Received: {self.num_images}")
        check(self.split in SPLITS, f"--split must be one of {', '.join(SPLITS)}. Received: {self.split!r}")
        check_noise_mode(self.noise_mode)
        check(self.batch_size >= 1, f"--batch_size must be >= 1. Received: {self.batch_size}")
        check(self.kid_subsets >= 1 and self.kid_subset_size >= 2,
              f"KID needs kid_subsets >= 1 and kid_subset_size >= 2. Received: {self.kid_subsets}, "
              f"{self.kid_subset_size}")
        check(self.pr_k >= 1, f"--pr_k must be >= 1. Received: {self.pr_k}")
        check(0 < self.memorization_percentile < 100,
              f"--memorization_percentile must lie in (0, 100). Received: {self.memorization_percentile}")
        check(self.ppl_samples == 0 or self.ppl_samples >= 2,
              f"--ppl_samples must be 0 (skip) or >= 2. Received: {self.ppl_samples}")
        check(self.ppl_epsilon > 0, f"--ppl_epsilon must be > 0. Received: {self.ppl_epsilon}")
        check(self.inception_size >= 75, f"--inception_size must be >= 75 (299 standard). "
              f"Received: {self.inception_size}")
        check(self.utility_epochs >= 1, f"--utility_epochs must be >= 1. Received: {self.utility_epochs}")
        check(bool(self.utility_settings) and set(self.utility_settings) <= {"real", "real+synthetic", "synthetic"},
              f"utility_settings must be among real, real+synthetic, synthetic. Received: {self.utility_settings}")
        check(self.utility_batch_size >= 1, f"--utility_batch_size must be >= 1. Received: {self.utility_batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- metrics ------------------------------------------------------------------------------------------------

def distribution_metrics(real: np.ndarray, fake: np.ndarray, config: EvaluationConfig) -> dict[str, Any]:
    """FID, KID [mean, std], precision and recall of feature sets [Nr, D] and [Nf, D]."""
    kid = kernel_inception_distance(real, fake, num_subsets=config.kid_subsets,
                                    subset_size=config.kid_subset_size, seed=config.seed)
    pr = precision_recall(real, fake, k=config.pr_k)
    return {"fid": fid_from_features(real, fake), "kid": [kid[0], kid[1]],
            "precision": pr["precision"], "recall": pr["recall"]}


def pooled_inception_score(probs: Sequence[np.ndarray], num_splits: int, seed: int = 0) -> tuple[float, float]:
    """IS of several classes' probabilities together, rows shuffled (fixed seed) so every split mixes classes."""
    probs = np.concatenate([np.asarray(p) for p in probs])
    order = np.random.default_rng(seed).permutation(len(probs))
    return inception_score(probs[order], num_splits=num_splits)


def judge_confusion(probs: Sequence[np.ndarray], class_ids: Sequence[int], num_classes: int) -> np.ndarray:
    """int64 [len(probs), num_classes]: row i counts the judge's predictions for the images of class_ids[i]."""
    rows = [np.bincount(np.argmax(p, axis=1), minlength=num_classes)[:num_classes] for p in probs]
    return np.stack(rows).astype(np.int64)


# --- data ---------------------------------------------------------------------------------------------------

def _split_count(manifest: dict, split: str, class_name: str) -> int:
    return int(manifest.get("split_counts", {}).get(split, {}).get(class_name, 0))


def _load(data_dir, split: str, class_name: str | None, max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_arrays(data_dir, split=split, class_name=class_name, max_images=max_images)
    return images, labels


def real_sample(data_dir, manifest: dict, class_name: str, num_images: int, split: str,
                seed: int = 0) -> tuple[np.ndarray, str]:
    """Up to `num_images` real images [n, H, W, 1] of a class from `split`, or from all splits if too few.

    Returns (images, description of where they came from, e.g. 'test' or 'train+val+test (test has 40)').
    """
    if _split_count(manifest, split, class_name) >= num_images:
        return _load(data_dir, split, class_name, num_images)[0], split
    available = [s for s in SPLITS if _split_count(manifest, s, class_name) > 0]
    if not available:
        raise UserError(f"{data_dir} has no images of class {class_name!r}.")
    images = np.concatenate([_load(data_dir, s, class_name)[0] for s in available])
    if len(images) > num_images:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), num_images, replace=False))]
    return images, f"{'+'.join(available)} ({split} has {_split_count(manifest, split, class_name)})"


def _ppl(gen: ClassGenerator, judge: Judge, config: EvaluationConfig, show_progress: bool) -> float:
    G = gen.G
    c = gen.labels(1)

    def mapping_fn(z, labels):
        return np.asarray(G.mapping(z, labels))

    batches = iter(range(2 ** 31))
    resolutions = G.synthesis.noise_resolutions

    def synthesis_fn(ws):
        if config.noise_mode != "random":
            return image_channel(np.asarray(G.synthesis(ws, noise_mode=config.noise_mode)))
        # As the reference's PPL: fresh noise buffers for each batch, shared by its images and by both
        # ends of every pair (seeded: the same evaluation gives the same number).
        rng = np.random.default_rng([config.seed, next(batches)])
        noise = [np.broadcast_to(rng.standard_normal([1, r, r, 1]).astype(np.float32), [len(ws), r, r, 1])
                 for r in resolutions]
        return image_channel(np.asarray(G.synthesis(ws, noise=noise)))

    def distance_fn(a, b):
        return np.sum((judge.normalized_features(a) - judge.normalized_features(b)) ** 2, axis=1)

    return perceptual_path_length(mapping_fn, synthesis_fn, distance_fn, num_samples=config.ppl_samples,
                                  epsilon=config.ppl_epsilon, batch_size=max(1, config.batch_size // 2),
                                  seed=config.seed, z_dim=int(G.z_dim), c=c, show_progress=show_progress)


def _memorization(generated: np.ndarray, train: np.ndarray, heldout: np.ndarray, percentile: float):
    """memorization_report or None with the reason when there is nothing to compare with."""
    if len(train) == 0:
        return None, "no training images of this class"
    if len(heldout) < 2:
        return None, "fewer than 2 held-out (val/test) images of this class"
    return memorization_report(generated, train, heldout, percentile=percentile), None


def evaluate(checkpoint: str, classifier_path: str | os.PathLike, data_dir: str | os.PathLike,
             out_dir: str | os.PathLike, config: EvaluationConfig = EvaluationConfig(),
             inception_weights: str | os.PathLike | None = None, overwrite: bool = False,
             show_progress: bool = True) -> dict[str, Any]:
    """Runs the evaluation and writes `out_dir` (see the module docstring). Returns the results dict.

    Args:
      checkpoint: `PATH` (conditional or per-class run) or `cls=PATH,cls=PATH,...`.
      classifier_path: the judge (`classifier.keras` from launchers/train_classifier.py).
      data_dir: the prepared dataset the models were trained on.
      out_dir: output folder (must not exist unless `overwrite`).
      config: `EvaluationConfig`.
      inception_weights: optional local notop ImageNet InceptionV3 weights for standard-ish FID features.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"Output folder {out_dir} already exists. Choose another --out, delete it, or pass "
                        "--overwrite.")
    manifest = read_manifest(data_dir)
    judge = Judge(load_classifier(classifier_path), batch_size=config.batch_size)
    gens = load_class_generators(checkpoint)
    for name, gen in gens.items():
        if name not in judge.class_names:
            raise UserError(f"The classifier {classifier_path} knows {', '.join(judge.class_names)}, not the "
                            f"generator's class {name!r}. Use a judge trained on the same classes.")
        if name not in manifest["class_names"]:
            raise UserError(f"{data_dir} has no class {name!r} (it has {', '.join(manifest['class_names'])}). "
                            "Pass the dataset the generators were trained on.")
        if gen.resolution != int(manifest["resolution"]):
            raise UserError(f"The {name!r} generator makes {gen.resolution}x{gen.resolution} images but {data_dir} "
                            f"is {manifest['resolution']}x{manifest['resolution']}. Prepare the data at the "
                            f"model's resolution (launchers/prepare_data.py --resolution {gen.resolution}).")
    inception = (InceptionFeatures(inception_weights, config.inception_size, config.batch_size)
                 if inception_weights else None)

    seeds = list(range(config.num_images))
    per_class: dict[str, dict[str, Any]] = {}
    pooled_arrays: dict[str, list] = {k: [] for k in ("real_f", "fake_f", "real_p", "fake_p", "real_i", "fake_i")}
    figures: dict[str, np.ndarray] = {}
    charts: dict[str, Any] = {}  # matplotlib Figures, written as figures/<name>.{png,pdf,svg}
    generated_by_class: dict[str, np.ndarray] = {}
    real_notes: dict[str, str] = {}
    for name, gen in gens.items():
        print(f"evaluating {name}: {config.num_images} generated vs real images", flush=True)
        real, real_from = real_sample(data_dir, manifest, name, config.num_images, config.split, config.seed)
        real_notes[name] = real_from
        if real_from != config.split:
            print(f"note: {name}: the {config.split} split has fewer than {config.num_images} images; "
                  f"the real sample comes from {real_from}.", flush=True)
        fake_all = generate_images(gen, seeds, config.truncation_psi, config.noise_mode,
                                   batch_size=config.batch_size, show_progress=show_progress,
                                   desc=f"generate {name}")
        fake = image_channel(fake_all)
        generated_by_class[name] = fake
        real_f, real_p = judge.features_and_probs(real, f"judge real {name}", show_progress)
        fake_f, fake_p = judge.features_and_probs(fake, f"judge generated {name}", show_progress)
        cls_id = judge.class_names.index(name)
        m: dict[str, Any] = {"num_real": int(len(real)), "num_generated": int(len(fake)), "real_from": real_from}
        m["is_real"] = list(inception_score(real_p, config.is_splits))
        m["is_generated"] = list(inception_score(fake_p, config.is_splits))
        m.update(distribution_metrics(real_f, fake_f, config))
        m["judge_accuracy_real"] = float(np.mean(np.argmax(real_p, axis=1) == cls_id))
        m["judge_accuracy_generated"] = float(np.mean(np.argmax(fake_p, axis=1) == cls_id))
        m["pixel_spread_real"], m["pixel_spread_generated"] = pixel_spread(real), pixel_spread(fake)
        if inception is not None:
            real_i, fake_i = inception(real), inception(fake)
            m["inception"] = distribution_metrics(real_i, fake_i, config)
            pooled_arrays["real_i"].append(real_i)
            pooled_arrays["fake_i"].append(fake_i)

        # memorization: nearest training image of each generated one vs the held-out baseline
        train = _load(data_dir, "train", name)[0] if _split_count(manifest, "train", name) else real[:0]
        heldout = [_load(data_dir, s, name)[0] for s in ("val", "test") if _split_count(manifest, s, name)]
        heldout = np.concatenate(heldout) if heldout else real[:0]
        memo: dict[str, Any] = {}
        report, reason = _memorization(fake, train, heldout, config.memorization_percentile)
        if report is None:
            memo = {"skipped": reason}
        else:
            memo["pixels"] = report.to_dict()
            figures[f"closest_pairs_{name}"] = closest_pairs_figure(fake, train, report.gen_indices,
                                                                    report.gen_distances)
            charts[f"memorization_{name}"] = histogram_figure(
                report.gen_distances, report.heldout_distances, threshold=report.threshold,
                title=f"{name}: pixel distance to the nearest training image")
            train_f = judge.features_and_probs(train, f"judge train {name}", show_progress)[0]
            heldout_f = judge.features_and_probs(heldout, f"judge held-out {name}", show_progress)[0]
            memo["judge_features"] = memorization_report(fake_f, train_f, heldout_f,
                                                         config.memorization_percentile).to_dict()
        m["memorization"] = memo
        m["ppl"] = _ppl(gen, judge, config, show_progress) if config.ppl_samples else None
        per_class[name] = m
        k = min(8, len(fake), len(real))  # top row generated, bottom row real
        figures[f"real_vs_generated_{name}"] = figure_grid(np.concatenate([fake[:k], real[:k]]), grid_w=k)
        for key, value in (("real_f", real_f), ("fake_f", fake_f), ("real_p", real_p), ("fake_p", fake_p)):
            pooled_arrays[key].append(value)

    pooled: dict[str, Any] = {"classes": list(gens)}
    if len(gens) > 1:
        pooled["is_real"] = list(pooled_inception_score(pooled_arrays["real_p"], config.is_splits, config.seed))
        pooled["is_generated"] = list(pooled_inception_score(pooled_arrays["fake_p"], config.is_splits, config.seed))
        pooled.update(distribution_metrics(np.concatenate(pooled_arrays["real_f"]),
                                           np.concatenate(pooled_arrays["fake_f"]), config))
        if inception is not None:
            pooled["inception"] = distribution_metrics(np.concatenate(pooled_arrays["real_i"]),
                                                       np.concatenate(pooled_arrays["fake_i"]), config)
    else:  # one class: pooled is that class
        only = per_class[next(iter(gens))]
        pooled.update({k: only[k] for k in ("is_real", "is_generated", "fid", "kid", "precision", "recall",
                                            "inception") if k in only})
    class_ids = [judge.class_names.index(n) for n in gens]
    cm_real = judge_confusion(pooled_arrays["real_p"], class_ids, len(judge.class_names))
    cm_fake = judge_confusion(pooled_arrays["fake_p"], class_ids, len(judge.class_names))
    pooled["judge_accuracy_real"] = float(sum(cm_real[i, c] for i, c in enumerate(class_ids)) / cm_real.sum())
    pooled["judge_accuracy_generated"] = float(sum(cm_fake[i, c] for i, c in enumerate(class_ids)) / cm_fake.sum())
    pooled["judge_confusion_real"] = cm_real.tolist()
    pooled["judge_confusion_generated"] = cm_fake.tolist()
    ppls = [m["ppl"] for m in per_class.values() if m["ppl"] is not None]
    pooled["ppl_mean"] = float(np.mean(ppls)) if ppls else None

    utility = None
    if config.utility:
        utility = _utility(data_dir, manifest, judge, generated_by_class, config, checkpoint=str(checkpoint))

    bar_rows = [(n, per_class[n]) for n in gens] + ([("pooled", pooled)] if len(gens) > 1 else [])
    charts["is_bar_chart"] = bar_chart_figure(
        [[r["is_real"][0], r["is_generated"][0]] for _, r in bar_rows], [n for n, _ in bar_rows],
        ["real", "generated"], errors=[[r["is_real"][1], r["is_generated"][1]] for _, r in bar_rows],
        title=f"Inception Score (judge), ± std over {config.is_splits} splits", ylabel="IS")
    charts["fid_bar_chart"] = bar_chart_figure(
        [[r["fid"]] + ([r["inception"]["fid"]] if inception is not None else []) for _, r in bar_rows],
        [n for n, _ in bar_rows], ["judge features"] + (["ImageNet InceptionV3"] if inception is not None else []),
        title="FID, generated vs real (lower is better)", ylabel="FID")
    if len(gens) > 1 or len(judge.class_names) > 1:
        square = lambda cm: _square_confusion(cm, class_ids, len(judge.class_names))  # noqa: E731
        charts["judge_confusion_real"] = confusion_matrix_figure(square(cm_real), judge.class_names,
                                                                 title="judge on real images")
        charts["judge_confusion_generated"] = confusion_matrix_figure(square(cm_fake), judge.class_names,
                                                                      title="judge on generated images")
    if utility is not None:
        for setting, r in utility["settings"].items():
            charts[f"utility_confusion_{setting.replace('+', '_plus_')}"] = confusion_matrix_figure(
                np.asarray(r["confusion_matrix"]), r["class_names"],
                title=f"trained on {setting}: test accuracy {r['accuracy']:.3f}")

    results = {
        "settings": {
            **config.to_dict(), "checkpoint": str(checkpoint),
            "checkpoints": {n: g.checkpoint for n, g in gens.items()},
            "classifier": str(classifier_path), "data": str(data_dir), "classes": list(gens),
            "seeds": f"0-{config.num_images - 1}", "real_from": real_notes,
            "features": "judge pooled 2048-d features (domain FID)"
                        + ("; 'inception': ImageNet InceptionV3" if inception is not None else ""),
            "ppl_distance": "squared distance of the judge's unit-length features, W space, full paths",
            "inception_weights": str(inception_weights) if inception_weights else None,
            "seconds": None,
        },
        "per_class": per_class,
        "pooled": pooled,
        "utility": utility,
    }
    results["settings"]["seconds"] = round(time.perf_counter() - start, 1)

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        write_json(tmp / "results.json", results)
        for fname, image in figures.items():
            if fname.startswith(("real_vs_generated", "closest_pairs")):  # image tiles, not charts
                image = upscale_for_viewing(image, int(manifest["resolution"]))
            save_png(tmp / "figures" / f"{fname}.png", image)
        for fname, chart in charts.items():
            save_figure(chart, tmp / "figures" / fname)  # PNG + PDF + SVG
            figures[fname] = figure_to_array(chart)  # for TensorBoard
        writer = summaries_writer(tmp / "tensorboard")
        try:
            for name, m in per_class.items():
                tb_scalars(writer, f"per_class/{name}", {k: v for k, v in m.items() if k != "memorization"})
                if "pixels" in m["memorization"]:
                    tb_scalars(writer, f"per_class/{name}/memorization",
                                {"suspicious_fraction": m["memorization"]["pixels"]["suspicious_fraction"],
                                 "median_ratio": m["memorization"]["pixels"]["median_ratio"]})
            tb_scalars(writer, "pooled", pooled)
            if utility is not None:
                for setting, r in utility["settings"].items():
                    tb_scalars(writer, f"utility/{setting}", {"accuracy": r["accuracy"]})
            for fname, image in figures.items():
                tb_image(writer, fname, image)
            writer.flush()
        finally:
            writer.close()
    print(results_table(results), flush=True)
    if utility is not None:
        for setting, r in utility["settings"].items():
            print(f"utility: trained on {setting:15s} test accuracy {r['accuracy']:.4f}", flush=True)
    print(f"wrote {out_dir}", flush=True)
    return results


def _square_confusion(cm: np.ndarray, class_ids: Sequence[int], num_classes: int) -> np.ndarray:
    """Rows of the evaluated classes placed at their class index in a [K, K] matrix (others zero)."""
    out = np.zeros([num_classes, num_classes], np.int64)
    for row, c in zip(cm, class_ids):
        out[c] = row
    return out


def _utility(data_dir, manifest: dict, judge: Judge, generated: dict[str, np.ndarray],
             config: EvaluationConfig, checkpoint: str | None = None) -> dict[str, Any]:
    """Real / real+synthetic / synthetic classifiers, each trained by `classifier.training.train_classifier`
    and tested on the real test split.

    The generated images (seeds 0..n-1 per class) become a synthetic dataset without filters, what
    `report['synthetic_command']` (launchers/synthesize.py) writes (the same slices, up to one grey level of
    float round-off); each classifier is what `report['settings'][s]['command']` (launchers/train_classifier.py)
    trains on it.
    """
    totals = {s: sum(manifest["split_counts"].get(s, {}).values()) for s in SPLITS}
    if not totals["train"] or not totals["test"]:
        raise UserError(f"The utility experiment needs real train and test splits; {data_dir} has "
                        f"{totals}. Prepare it with a patient-wise train/val/test split.")
    clf_config = ClassifierConfig(input_size=int(judge.model.input_size), epochs=config.utility_epochs,
                                  head_epochs=min(1, config.utility_epochs), batch_size=config.utility_batch_size,
                                  weights=config.utility_weights, patience=0, seed=config.seed)
    seeds = {name: list(range(len(images))) for name, images in generated.items()}
    with tempfile.TemporaryDirectory(prefix="utility-") as tmp:
        synthetic = Path(tmp) / "synthetic"
        write_images_dataset(synthetic, generated, seeds, int(manifest["bit_depth"]),
                             {"checkpoint": checkpoint, "truncation_psi": config.truncation_psi,
                              "noise_mode": config.noise_mode, "made_by": "evaluate --utility"})
        report = train_on_synthetic(data_dir, synthetic, clf_config, settings=config.utility_settings,
                                    work_dir=tmp, synthetic_name="<synthetic>")
    report["val_split"] = "val" if totals["val"] else "test"
    n = max(len(v) for v in generated.values())
    report["synthetic_command"] = (
        f"python -m launchers.synthesize --checkpoint={checkpoint} --data={data_dir} --out=<synthetic> "
        f"--num_per_class={n} --seed=0 --truncation_psi={config.truncation_psi} --noise_mode={config.noise_mode} "
        "--privacy_percentile=0 --min_class_prob=0 --nowith_mask")
    return report
