r"""Side-by-side step 3b (our venv): generated images per class from one of our runs, as .npz.

    .venv/bin/python tools/side_by_side/export_ours_samples.py \
        --checkpoint /work/scratch/sbs/ours/00000-demo-cond-b8 --out /work/scratch/sbs/samples/ours.npz --num 300

To export a run trained by another commit with that commit's code, put its checkout first on the path:
`PYTHONPATH=/path/to/that/checkout .venv/bin/python tools/side_by_side/export_ours_samples.py ...`
(an exported tree, `git archive <commit> | tar -x -C DIR`, may hold the commit id in DIR/COMMIT).

Draws, for every class of the (conditional) checkpoint, images of seeds 0..num-1 with
z = `tfstylegan.networks.seed_to_z(seed)` (`generation.seeds_to_ws`), truncation psi 1, and noise 'random'
(what the model samples and the reference's metrics use; drawn per batch of 50 from a stateless seed) or
'const' (`generation.generate_images`). Writes the same layout as export_reference_samples.py: `images_<class>`
float32 [num, H, W, 1] in about [-1, 1] (not clipped), `seeds`, `meta` (JSON string).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def _git_commit(path: Path) -> str | None:
    """The commit of our code: `git rev-parse HEAD`, or a COMMIT file in an exported (git archive) tree."""
    if (path / "COMMIT").is_file():
        return (path / "COMMIT").read_text().strip()
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _random_noise_images(gen, seeds: list[int], psi: float, label: int, generation, batch: int = 50) -> np.ndarray:
    """Batched 'random' noise: z per image from its seed, noise per batch from the stateless seed
    (class position + 1, first seed of the batch). generate_images draws noise image by image (slow on CPU)."""
    import tensorflow as tf

    out = []
    for i in range(0, len(seeds), batch):
        ws = generation.seeds_to_ws(gen, seeds[i:i + batch], psi)
        noise_seed = tf.constant([label + 1, int(seeds[i])], tf.int32)
        out.append(np.asarray(gen.G.synthesis(ws, noise_mode="random", noise_seed=noise_seed)))
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="our run folder (or its checkpoints/ folder)")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--num", type=int, default=300, help="images per class (seeds 0..num-1)")
    ap.add_argument("--noise_mode", default="random", choices=["random", "const", "none"])
    ap.add_argument("--psi", type=float, default=1.0, help="truncation psi")
    args = ap.parse_args(argv)

    import tfstylegan
    from tfstylegan.apps import generation
    from tfstylegan.utils.errors import UserError
    from tfstylegan.utils.io import atomic_path

    if args.num < 1:
        print(f"error: --num must be >= 1. Received: {args.num}", file=sys.stderr)
        return 1
    try:
        gens = generation.load_class_generators(args.checkpoint)
        seeds = list(range(args.num))
        arrays = {}
        for label, (name, gen) in enumerate(gens.items()):
            if args.noise_mode == "random":
                imgs = _random_noise_images(gen, seeds, args.psi, label, generation)
            else:
                imgs = generation.generate_images(gen, seeds, args.psi, args.noise_mode, batch_size=32,
                                                  show_progress=True, desc=f"generate {name}")
            arrays[f"images_{name}"] = generation.image_channel(imgs).astype(np.float32)
            print(f"  {name}: {len(imgs)} images", flush=True)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    code = Path(tfstylegan.__file__).resolve().parent.parent
    meta = {"source": "tfstylegan", "code": str(code), "git_commit": _git_commit(code),
            "checkpoint": str(Path(args.checkpoint).resolve()),
            "checkpoints": {n: g.checkpoint for n, g in gens.items()}, "noise_mode": args.noise_mode,
            "psi": args.psi, "z": "tfstylegan.networks.seed_to_z(seed)"}
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, seeds=np.asarray(seeds), meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {args.out}: {', '.join(arrays)} ({args.num} each, noise {args.noise_mode}, psi {args.psi}; "
          f"code {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
