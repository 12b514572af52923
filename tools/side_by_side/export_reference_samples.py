r"""Side-by-side step 3a (torch venv): generated images per class from a stylegan2-ada-pytorch run, as .npz.

    /work/scratch/torchvenv/bin/python tools/side_by_side/export_reference_samples.py \
        --reference /work/scratch/sg2ada-side --run /work/scratch/sbs/reference_runs/00000-... \
        --out /work/scratch/sbs/samples/reference.npz --num 300

Loads the run's last `network-snapshot-*.pkl` (or --pkl) with the checkout's own `legacy.load_network_pkl`
and draws, for every class of the run's spec (side_by_side_spec.json), images of seeds 0..num-1 from G_ema:
z = `np.random.RandomState(seed).randn(1, z_dim)` as the reference's generate.py, c = the class's one-hot,
truncation psi 1, noise 'random' (torch seeded with the image's seed, so each image depends only on its seed;
what the reference's metrics sample) or 'const'.

Writes (atomically) `images_<class>` float32 [num, H, W, 1] in about [-1, 1] (not clipped), `seeds`, and
`meta` (a JSON string: source, pkl, kimg, noise mode, psi, class labels). compare.py reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def last_snapshot(run: Path) -> Path:
    pkls = sorted(run.glob("network-snapshot-*.pkl"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not pkls:
        _fail(f"{run} has no network-snapshot-*.pkl; has the reference run finished?")
    return pkls[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="the stylegan2-ada-pytorch checkout the run used")
    ap.add_argument("--run", required=True, help="run folder written by run_reference.py")
    ap.add_argument("--pkl", default=None, help="a snapshot inside --run (default: the last one)")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--num", type=int, default=300, help="images per class (seeds 0..num-1)")
    ap.add_argument("--noise_mode", default="random", choices=["random", "const", "none"])
    ap.add_argument("--psi", type=float, default=1.0, help="truncation psi")
    args = ap.parse_args(argv)

    ref, run = Path(args.reference).resolve(), Path(args.run)
    if not (ref / "legacy.py").is_file():
        _fail(f"{ref} is not a stylegan2-ada-pytorch checkout (no legacy.py).")
    spec_path = run / "side_by_side_spec.json"
    if not spec_path.is_file():
        _fail(f"{spec_path} does not exist: pass a run folder written by run_reference.py.")
    if args.num < 1:
        _fail(f"--num must be >= 1. Received: {args.num}")
    spec = json.loads(spec_path.read_text())
    # label index -> class name (make_reference_data.py; older specs: the data's classes in label order)
    class_names = list(spec.get("class_names") or spec["data"]["class_counts"])
    pkl = Path(args.pkl) if args.pkl else last_snapshot(run)

    sys.path.insert(0, str(ref))
    import torch

    import legacy  # the checkout's

    with open(pkl, "rb") as f:
        G = legacy.load_network_pkl(f)["G_ema"].eval().requires_grad_(False)
    if G.c_dim != len(class_names):
        _fail(f"{pkl} has c_dim {G.c_dim} but the spec lists {len(class_names)} classes {class_names}.")
    print(f"{pkl}: z_dim {G.z_dim}, c_dim {G.c_dim}, {G.img_resolution}x{G.img_resolution}x{G.img_channels}",
          flush=True)

    arrays = {}
    seeds = np.arange(args.num)
    with torch.no_grad():
        for label, name in enumerate(class_names):
            if name not in spec["data"]["class_counts"]:
                continue  # a label index the data does not use (c_dim covers the canonical order)
            c = torch.zeros([1, G.c_dim])
            c[0, label] = 1
            out = []
            for seed in seeds:
                z = torch.from_numpy(np.random.RandomState(int(seed)).randn(1, G.z_dim)).float()
                torch.manual_seed(int(seed))
                img = G(z, c, truncation_psi=args.psi, noise_mode=args.noise_mode)
                out.append(img.permute(0, 2, 3, 1).numpy()[:, :, :, :1])
            arrays[f"images_{name}"] = np.concatenate(out).astype(np.float32)
            print(f"  {name} (label {label}): {len(out)} images", flush=True)
    kimg = int(re.findall(r"\d+", pkl.stem)[-1])
    meta = {"source": "stylegan2-ada-pytorch", "reference": str(ref), "run": str(run.resolve()),
            "pkl": str(pkl.resolve()), "kimg": kimg, "noise_mode": args.noise_mode, "psi": args.psi,
            "z": "np.random.RandomState(seed).randn(1, z_dim)", "class_labels": class_names,
            "torch": torch.__version__}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".npz", dir=out_path.parent)
    os.close(fd)
    try:
        np.savez(tmp, seeds=seeds, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {out_path}: {', '.join(arrays)} ({args.num} each, noise {args.noise_mode}, psi {args.psi})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
