r"""Side-by-side step 4 (our venv): judge sample sets from both implementations with ONE classifier.

    .venv/bin/python tools/side_by_side/compare.py --data /work/scratch/sbs/data \
        --classifier /work/scratch/sbs/judge/classifier.keras \
        --samples "ours=/work/scratch/sbs/samples/ours.npz" \
        --samples "reference=/work/scratch/sbs/samples/reference.npz" \
        --baseline reference --num_images 100 --out /work/scratch/sbs/comparison

Every --samples file (export_ours_samples.py / export_reference_samples.py) is treated identically: its
images are rounded to 8-bit pixels as a saved PNG would be (`tfstylegan.utils.images.to_uint8`, read back as
u8 / 127.5 - 1, the dataset's own scaling), then the judge (classifier.keras from launchers/train_classifier.py)
gives 2048-d pooled features and class probabilities. With our metric functions (tfstylegan.metrics):

  per class   FID and precision/recall (k = 3) of generated vs real features, the judge's IS of the generated
              images, the judge's accuracy on them (does the 'glioma' label make gliomas?);
  pooled      IS over all classes' generated images (rows shuffled with a fixed seed, 10 splits: the
              evaluation's pooled IS), mean recall; and the same IS for the real images;
  diversity   the pixel spread per class (`tfstylegan.metrics.pixel_spread`: the mean over pixels of the
              standard deviation over the class's images, as launchers/evaluate.py reports it), real and
              generated: a generator that draws one slice per class has a small spread whatever the judge says.

Real images per class: `num_images` from the test split, or, when it has fewer (the phantom demo data), from
all splits, sampled with a fixed seed, as launchers/evaluate.py does. Generated: seeds 0..num_images-1 (set 0);
with `--sets K` also seeds num_images..2*num_images-1 etc., and the table adds mean +- sd over the K sets
(the spread of the metric for one trained model, not of training).

With --baseline NAME every other entry is checked against it on set 0 and on the mean over sets, by the
goal of issue 17: FID per class <= 1.1x the baseline's, recall per class >= baseline - 0.05, pooled IS >=
baseline - 0.1. Writes `results.json` and `table.md` into --out (atomically) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FID_RATIO, RECALL_DROP, IS_DROP = 1.1, 0.05, 0.1


def parse_samples(values: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: --samples takes NAME=PATH.npz. Received: {v!r}")
        if name in out:
            raise SystemExit(f"error: --samples name {name!r} given twice.")
        if not Path(path).is_file():
            raise SystemExit(f"error: --samples {name}: {path} does not exist (export it with "
                             "export_ours_samples.py or export_reference_samples.py).")
        out[name] = Path(path)
    return out


def quantize(images: np.ndarray) -> np.ndarray:
    """float images in about [-1, 1] -> what a saved 8-bit PNG reads back as (u8 / 127.5 - 1)."""
    from tfstylegan.utils.images import to_uint8

    return to_uint8(images).astype(np.float32) / 127.5 - 1.0


def real_images(data_dir: str, manifest: dict, class_name: str, num: int, seed: int) -> tuple[np.ndarray, str]:
    """`num` real images of a class: the test split if it has enough, else all splits (fixed-seed sample)."""
    from tfstylegan.data.pipeline import load_arrays

    counts = {s: int(manifest["split_counts"].get(s, {}).get(class_name, 0)) for s in ("train", "val", "test")}
    if counts["test"] >= num:
        return load_arrays(data_dir, split="test", class_name=class_name, max_images=num)[0], "test"
    used = [s for s, n in counts.items() if n > 0]
    images = np.concatenate([load_arrays(data_dir, split=s, class_name=class_name)[0] for s in used])
    if len(images) > num:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), num, replace=False))]
    return images, f"{'+'.join(used)} (test has {counts['test']})"


class Judge:
    """classifier.keras as a batched (features [N, 2048], probs [N, K]) function of images in [-1, 1]."""

    def __init__(self, path: str, batch_size: int = 32):
        import tensorflow as tf

        from classifier.model import load_classifier

        self.model = load_classifier(path)
        self.class_names = [str(c) for c in self.model.class_names]
        self.batch_size = batch_size
        self._fn = tf.function(self.model.features_and_probs, reduce_retracing=True)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for i in range(0, len(images), self.batch_size):
            f, p = self._fn(np.asarray(images[i:i + self.batch_size], np.float32))
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), np.concatenate(probs)


def pooled_is(probs: list[np.ndarray], splits: int, seed: int) -> list[float]:
    from tfstylegan.metrics import inception_score

    p = np.concatenate(probs)
    return list(inception_score(p[np.random.default_rng(seed).permutation(len(p))], num_splits=splits))


def score_set(real_f: dict, fake: dict, judge: Judge, classes: list[str], splits: int, k: int,
              seed: int) -> dict:
    """Metrics of one generated set {class: images} against the real features {class: features}."""
    from tfstylegan.metrics import fid_from_features, inception_score, pixel_spread, precision_recall

    per_class, probs = {}, []
    for name in classes:
        f, p = judge(fake[name])
        pr = precision_recall(real_f[name], f, k=k)
        per_class[name] = {"fid": float(fid_from_features(real_f[name], f)), "precision": float(pr["precision"]),
                           "recall": float(pr["recall"]), "pixel_spread": pixel_spread(fake[name]),
                           "is_generated": list(inception_score(p, num_splits=splits)),
                           "judge_accuracy": float(np.mean(np.argmax(p, 1) == judge.class_names.index(name)))}
        probs.append(p)
    pooled = {"is_generated": pooled_is(probs, splits, seed),
              "mean_recall": float(np.mean([per_class[c]["recall"] for c in classes])),
              "mean_precision": float(np.mean([per_class[c]["precision"] for c in classes])),
              "judge_accuracy": float(np.mean([per_class[c]["judge_accuracy"] for c in classes]))}
    return {"per_class": per_class, "pooled": pooled}


def summarize(sets: list[dict], classes: list[str]) -> dict:
    """Mean and sd over sets of every scalar (IS: its mean)."""
    def stat(values):
        v = np.asarray(values, np.float64)
        return [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]

    out = {"per_class": {}, "pooled": {}}
    for c in classes:
        out["per_class"][c] = {m: stat([s["per_class"][c][m] if m != "is_generated" else
                                        s["per_class"][c][m][0] for s in sets])
                               for m in ("fid", "precision", "recall", "pixel_spread", "is_generated",
                                         "judge_accuracy")}
    for m in ("is_generated", "mean_recall", "mean_precision", "judge_accuracy"):
        out["pooled"][m] = stat([s["pooled"][m][0] if m == "is_generated" else s["pooled"][m] for s in sets])
    return out


def check_goal(entry: dict, base: dict, classes: list[str]) -> dict:
    """Issue 17's goal of `entry` against `base` (both with per_class fid/recall and pooled is_generated)."""
    def val(x):
        return x[0] if isinstance(x, list) else x

    checks = {}
    for c in classes:
        e, b = entry["per_class"][c], base["per_class"][c]
        checks[f"FID {c} <= {FID_RATIO}x"] = val(e["fid"]) <= FID_RATIO * val(b["fid"])
        checks[f"recall {c} >= -{RECALL_DROP}"] = val(e["recall"]) >= val(b["recall"]) - RECALL_DROP
    checks[f"pooled IS >= -{IS_DROP}"] = (val(entry["pooled"]["is_generated"])
                                          >= val(base["pooled"]["is_generated"]) - IS_DROP)
    return {"checks": checks, "all": all(checks.values())}


def table_markdown(results: dict) -> str:
    classes = results["classes"]
    names = list(results["entries"])
    multi = results["settings"]["sets"] > 1

    def cell(entry, path, fmt):
        s0 = entry["set0"]
        v = s0
        for p in path:
            v = v[p]
        v = v[0] if isinstance(v, list) else v
        text = fmt.format(v)
        if multi:
            m = entry["over_sets"]
            for p in path:
                m = m[p]
            text += f" ({fmt.format(m[0])} ± {fmt.format(m[1])})"
        return text

    rows = []
    for c in classes:
        rows.append((f"FID {c}", ("per_class", c, "fid"), "{:.1f}"))
    for c in classes:
        rows.append((f"recall {c}", ("per_class", c, "recall"), "{:.3f}"))
    for c in classes:
        rows.append((f"precision {c}", ("per_class", c, "precision"), "{:.3f}"))
    for c in classes:
        rows.append((f"pixel spread {c}", ("per_class", c, "pixel_spread"), "{:.3f}"))
    rows.append(("mean recall", ("pooled", "mean_recall"), "{:.3f}"))
    rows.append(("pooled IS", ("pooled", "is_generated"), "{:.3f}"))
    rows.append(("judge accuracy on generated", ("pooled", "judge_accuracy"), "{:.3f}"))
    header = "| metric | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for title, path, fmt in rows:
        lines.append(f"| {title} | " + " | ".join(cell(results["entries"][n], path, fmt) for n in names) + " |")
    real = results["real"]
    out = "\n".join(lines)
    out += (f"\n\nReal images ({results['settings']['num_images']} per class): pooled IS "
            f"{real['pooled_is'][0]:.3f} ± {real['pooled_is'][1]:.3f}; per class "
            + ", ".join(f"{c} {v[0]:.3f}" for c, v in real["per_class_is"].items())
            + "; judge accuracy " + ", ".join(f"{c} {v:.3f}" for c, v in real["judge_accuracy"].items())
            + "; pixel spread " + ", ".join(f"{c} {v:.3f}" for c, v in real["pixel_spread"].items()) + ".")
    if multi:
        out += (f"\n\nEach cell: set 0 (seeds 0-{results['settings']['num_images'] - 1}), then (mean ± sd over "
                f"{results['settings']['sets']} disjoint seed sets of the same model).")
    base = results["settings"]["baseline"]
    if base:
        out += f"\n\nGoal of issue 17 against '{base}' (FID <= {FID_RATIO}x, recall >= -{RECALL_DROP}, " \
               f"pooled IS >= -{IS_DROP}):"
        for n, e in results["entries"].items():
            if n == base:
                continue
            for which in ("goal_set0", "goal_over_sets") if multi else ("goal_set0",):
                g = e[which]
                failed = [k for k, ok in g["checks"].items() if not ok]
                label = "set 0" if which == "goal_set0" else "mean over sets"
                out += f"\n- {n}, {label}: " + ("met" if g["all"] else "NOT met: " + "; ".join(failed))
    return out + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the prepared dataset both sides trained on")
    ap.add_argument("--classifier", required=True, help="the judge: classifier.keras (launchers/train_classifier.py)")
    ap.add_argument("--samples", action="append", required=True, help="NAME=PATH.npz (repeat; table column order)")
    ap.add_argument("--baseline", default=None, help="the NAME the others are checked against (the reference)")
    ap.add_argument("--num_images", type=int, default=100, help="real and generated images per class (the demo's "
                    "evaluate uses 100)")
    ap.add_argument("--sets", type=int, default=1, help="disjoint generated seed sets of num_images to average")
    ap.add_argument("--pr_k", type=int, default=3, help="k of the precision/recall manifolds")
    ap.add_argument("--is_splits", type=int, default=10, help="Inception Score splits")
    ap.add_argument("--seed", type=int, default=0, help="real sample and pooled-IS shuffle seed")
    ap.add_argument("--out", required=True, help="folder for results.json and table.md")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)

    samples = parse_samples(args.samples)
    if args.baseline is not None and args.baseline not in samples:
        raise SystemExit(f"error: --baseline {args.baseline!r} is not one of the --samples names {list(samples)}.")
    if args.num_images < max(args.is_splits, args.pr_k + 1):
        raise SystemExit(f"error: --num_images must be >= {max(args.is_splits, args.pr_k + 1)}.")
    if args.sets < 1:
        raise SystemExit(f"error: --sets must be >= 1. Received: {args.sets}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} exists; choose another --out or pass --overwrite.")

    from tfstylegan.data.pipeline import read_manifest
    from tfstylegan.metrics import inception_score, pixel_spread
    from tfstylegan.utils.errors import UserError
    from tfstylegan.utils.io import atomic_dir, write_json

    start = time.perf_counter()
    try:
        manifest = read_manifest(args.data)
        judge = Judge(args.classifier)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    res = int(manifest["resolution"])
    loaded = {}
    for name, path in samples.items():
        z = np.load(path)
        meta = json.loads(str(z["meta"]))
        imgs = {k[len("images_"):]: z[k] for k in z.files if k.startswith("images_")}
        loaded[name] = (meta, imgs)
    classes = [c for c in manifest["class_names"] if all(c in imgs for _, imgs in loaded.values())]
    missing = {n: sorted(set(manifest["class_names"]) - set(imgs)) for n, (_, imgs) in loaded.items()}
    if not classes or any(missing.values()):
        raise SystemExit(f"error: every sample file needs images of every class of {args.data} "
                         f"({manifest['class_names']}); missing: {missing}.")
    for c in classes:
        if c not in judge.class_names:
            raise SystemExit(f"error: the judge {args.classifier} does not know class {c!r}.")
    sets = args.sets
    for name, (_, imgs) in loaded.items():
        for c, x in imgs.items():
            if x.ndim != 4 or x.shape[1:3] != (res, res):
                raise SystemExit(f"error: {samples[name]}: images_{c} has shape {x.shape}; the data is {res}x{res}.")
            sets = min(sets, len(x) // args.num_images)
    if sets < 1:
        raise SystemExit(f"error: some sample file has fewer than --num_images={args.num_images} images per class.")
    if sets < args.sets:
        print(f"note: the sample files hold enough images for {sets} set(s) of {args.num_images}, not {args.sets}.")

    print(f"judge: {args.classifier} ({', '.join(judge.class_names)}); {args.num_images} images per class, "
          f"{sets} set(s)", flush=True)
    real_f, real_p, real_from, real_spread = {}, [], {}, {}
    for c in classes:
        x, where = real_images(args.data, manifest, c, args.num_images, args.seed)
        real_from[c], real_spread[c] = where, pixel_spread(x)
        real_f[c], p = judge(x)
        real_p.append(p)
    real = {"from": real_from, "per_class_is": {c: list(inception_score(p, num_splits=args.is_splits))
                                                for c, p in zip(classes, real_p)},
            "pooled_is": pooled_is(real_p, args.is_splits, args.seed), "pixel_spread": real_spread,
            "judge_accuracy": {c: float(np.mean(np.argmax(p, 1) == judge.class_names.index(c)))
                               for c, p in zip(classes, real_p)}}

    entries = {}
    for name, (meta, imgs) in loaded.items():
        print(f"judging {name} ({samples[name]})", flush=True)
        per_set = []
        for s in range(sets):
            fake = {c: quantize(imgs[c][s * args.num_images:(s + 1) * args.num_images]) for c in classes}
            per_set.append(score_set(real_f, fake, judge, classes, args.is_splits, args.pr_k, args.seed))
        entries[name] = {"samples": str(samples[name]), "meta": meta, "set0": per_set[0],
                         "over_sets": summarize(per_set, classes) if sets > 1 else None, "sets": per_set}
    if args.baseline:
        base = entries[args.baseline]
        for name, e in entries.items():
            if name != args.baseline:
                e["goal_set0"] = check_goal(e["set0"], base["set0"], classes)
                if sets > 1:
                    e["goal_over_sets"] = check_goal(e["over_sets"], base["over_sets"], classes)
    results = {"settings": {"data": str(Path(args.data).resolve()), "classifier": str(Path(args.classifier).resolve()),
                            "num_images": args.num_images, "sets": sets, "pr_k": args.pr_k,
                            "is_splits": args.is_splits, "seed": args.seed, "baseline": args.baseline,
                            "quantized_to_uint8": True, "features": "judge pooled 2048-d features",
                            "seconds": round(time.perf_counter() - start, 1)},
               "classes": classes, "real": real, "entries": entries}
    table = table_markdown(results)
    with atomic_dir(out, overwrite=args.overwrite) as tmp:
        write_json(Path(tmp) / "results.json", results)
        (Path(tmp) / "table.md").write_text(table)
    print(table)
    print(f"real images from: {real_from}; real IS per class: "
          + ", ".join(f"{c} {v[0]:.3f}" for c, v in real["per_class_is"].items()))
    print(f"wrote {out}/results.json and {out}/table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
