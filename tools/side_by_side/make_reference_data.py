r"""Side-by-side step 1 (our venv): the prepared dataset's train split in stylegan2-ada-pytorch's format,
and the training settings of our preset written as a spec for run_reference.py.

    .venv/bin/python tools/side_by_side/make_reference_data.py --data /work/scratch/sbs/data \
        --out /work/scratch/sbs/reference_input

Writes into --out (each file atomically):
  train.zip           one 8-bit grayscale PNG per training image (`img00000000.png`, ...) and `dataset.json`
                      with `{"labels": [[name, class index], ...]}`, the layout the reference's
                      `training.dataset.ImageFolderDataset` reads (its dataset_tool.py writes the same).
                      Class index = position in tfstylegan.data.classes.ALL_CLASS_NAMES, the label our
                      conditional training uses, so c means the same class on both sides.
  reference_spec.json the preset (default 'demo') and the demo's launcher flags mapped onto the reference's
                      training options (see run_reference.py for how each one is applied).

The pixels are the PNG bytes our pipeline reads (uint8, no re-scaling): both sides train on the same images.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

# The demo's StyleGAN2 flags (launchers/demo.py, _settings(fast=False) and `common`): both sides get them.
DEMO_FLAGS = {"batch": 8, "kimg": 12.0, "kimg_per_tick": 2.0, "mirror": True, "conditional": True, "seed": 0}


def reference_spec(preset_name: str, flags: dict, resolution: int) -> dict:
    """Our preset + launcher flags -> the settings run_reference.py gives the reference's training loop."""
    from tfstylegan.config import get_preset

    p = get_preset(preset_name)
    g, d, t = p.generator, p.discriminator, p.train
    if g.img_resolution != resolution:
        raise SystemExit(f"error: preset {preset_name!r} is {g.img_resolution}x{g.img_resolution} but the data is "
                         f"{resolution}x{resolution}; prepare the data at the preset's resolution.")
    if t.aug != "ada" or t.augment_pipe != "bgc":
        raise SystemExit(f"error: preset {preset_name!r} uses aug={t.aug!r}, pipe={t.augment_pipe!r}; this "
                         "comparison maps only ADA with the 'bgc' pipe onto the reference.")
    if tuple(t.betas) != (0.0, 0.99) or t.epsilon != 1e-8:
        raise SystemExit(f"error: preset {preset_name!r} has Adam betas {t.betas}, eps {t.epsilon}; the reference "
                         "fixes (0, 0.99), 1e-8.")
    return {
        "preset": preset_name,
        "preset_values": p.to_dict(),
        "flags": dict(flags),
        # reference train.py CLI (setup_training_loop_kwargs)
        "cli": {"cfg": "auto", "cond": bool(flags["conditional"]), "mirror": bool(flags["mirror"]),
                "gamma": float(t.r1_gamma), "kimg": int(round(flags["kimg"])), "batch": int(flags["batch"]),
                "aug": "ada", "target": float(t.ada_target), "augpipe": "bgc",
                # fp16 blocks only if the preset has some and mixed precision is not off (None = on a GPU)
                "fp32": g.num_fp16_res == 0 or t.mixed_precision is False,
                "metrics": [], "seed": int(flags["seed"])},
        # values the CLI has no flag for, applied to the options dict it returns
        "overrides": {
            "G.z_dim": g.z_dim, "G.w_dim": g.w_dim, "G.mapping.num_layers": g.mapping_layers,
            "G.mapping.lr_multiplier": g.mapping_lr_multiplier, "G.mapping.w_avg_beta": g.w_avg_beta,
            "G.channel_base": g.channel_base, "G.channel_max": g.channel_max,
            "D.channel_base": d.channel_base, "D.channel_max": d.channel_max,
            "D.mapping.num_layers": d.mapping_layers, "D.mbstd_group_size": d.mbstd_group_size,
            "D.mbstd_num_channels": d.mbstd_num_channels,
            "G_lr": t.g_lr, "D_lr": t.d_lr,
            "ema_kimg": t.ema_kimg, "ema_rampup": t.ema_rampup, "ada_kimg": t.ada_kimg,
            "ada_interval": t.ada_interval, "augment_p": t.aug_p,
            "G_reg_interval": t.pl_interval, "D_reg_interval": t.r1_interval,
            "pl_weight": t.pl_weight, "pl_batch_shrink": t.pl_batch_shrink, "pl_decay": t.pl_decay,
            "style_mixing_prob": t.style_mixing_prob, "kimg_per_tick": float(flags["kimg_per_tick"]),
        },
    }


def write_zip(path: Path, images: np.ndarray, labels: np.ndarray) -> int:
    """images uint8 [N, H, W, 1], labels int [N] -> the reference's zip layout. Returns N."""
    from PIL import Image

    from tfstylegan.utils.io import atomic_path

    entries = []
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, (img, lab) in enumerate(zip(images, labels)):
            name = f"img{i:08d}.png"
            buf = io.BytesIO()
            Image.fromarray(img[..., 0], "L").save(buf, format="png", compress_level=0)
            zf.writestr(name, buf.getvalue())
            entries.append([name, int(lab)])
        zf.writestr("dataset.json", json.dumps({"labels": entries}))
    return len(entries)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="prepared dataset folder (launchers/prepare_data.py)")
    ap.add_argument("--out", required=True, help="folder for train.zip and reference_spec.json")
    ap.add_argument("--preset", default="demo", help="our preset whose settings both sides train with")
    ap.add_argument("--kimg", type=int, default=int(DEMO_FLAGS["kimg"]), help="training length of both sides "
                    "(the demo's 12; an integer, as the reference's --kimg)")
    args = ap.parse_args(argv)

    from tfstylegan.data.classes import ALL_CLASS_NAMES
    from tfstylegan.data.pipeline import load_arrays, read_manifest
    from tfstylegan.utils.errors import UserError
    from tfstylegan.utils.io import write_json

    try:
        manifest = read_manifest(args.data)
        if int(manifest["bit_depth"]) != 8:
            raise UserError(f"{args.data} stores {manifest['bit_depth']}-bit PNGs; the reference reads 8-bit "
                            "images. Prepare it with --bit_depth 8.")
        images, labels, _ = load_arrays(args.data, split="train")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if len(images) == 0:
        print(f"error: {args.data} has no training images.", file=sys.stderr)
        return 1
    pixels = np.rint((images + 1.0) * 127.5)
    if np.abs((pixels / 127.5 - 1.0) - images).max() > 1e-5:  # load_arrays is u8 / 127.5 - 1: exact inverse
        print("error: the train split does not hold 8-bit pixels.", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = write_zip(out / "train.zip", pixels.astype(np.uint8), labels)
    if args.kimg < 1:
        print(f"error: --kimg must be >= 1. Received: {args.kimg}", file=sys.stderr)
        return 1
    spec = reference_spec(args.preset, dict(DEMO_FLAGS, kimg=float(args.kimg)), int(manifest["resolution"]))
    counts = {c: int(np.sum(labels == i)) for i, c in enumerate(ALL_CLASS_NAMES) if np.any(labels == i)}
    spec["data"] = {"source": str(Path(args.data).resolve()), "num_images": n, "class_counts": counts}
    spec["class_names"] = list(ALL_CLASS_NAMES[:int(labels.max()) + 1])  # label index -> class
    write_json(out / "reference_spec.json", spec)
    print(f"wrote {out / 'train.zip'} ({n} images, labels {spec['data']['class_counts']}) and "
          f"{out / 'reference_spec.json'} (preset {args.preset!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
