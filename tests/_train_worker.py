"""Subprocess helper for the training tests: one tiny training run, then its weights as .npz.

    python tests/_train_worker.py --data D --run_dir R --dump out.npz [--kill_at_save K]
        [--strategy multi_worker] [--total_kimg 0.032]

--kill_at_save K: SIGKILL this process during the K-th checkpoint save, after the ckpt files
are written but before the `checkpoint` state file names them (the worst moment).
"""

from __future__ import annotations

import argparse
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--run_dir", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--kill_at_save", type=int, default=0)
    ap.add_argument("--strategy", default="default")
    ap.add_argument("--total_kimg", type=float, default=0.032)
    ap.add_argument("--kimg_per_tick", type=float, default=0.008)
    args = ap.parse_args()

    import numpy as np
    from tensorflow.python.checkpoint import checkpoint_management

    if args.kill_at_save:
        original = checkpoint_management.update_checkpoint_state_internal
        calls = [0]

        def killing_update(*a, **k):
            calls[0] += 1
            if calls[0] == args.kill_at_save:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*a, **k)

        checkpoint_management.update_checkpoint_state_internal = killing_update

    from tfstylegan.training.loop import train

    arrays = {}

    def dump_weights(trainer):
        for name, net in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
            for i, v in enumerate(net.variables):
                arrays[f"{name}/{i}/{v.path}"] = np.asarray(v.numpy())

    stats = train(args.run_dir, "tiny", args.data, class_name="glioma", strategy=args.strategy,
                  train_overrides={"total_kimg": args.total_kimg, "kimg_per_tick": args.kimg_per_tick,
                                   "snapshot_ticks": 1, "aug": "ada", "ada_kimg": 0.05},
                  deterministic=True, tensorboard=False, verbose=False, on_finish=dump_weights)
    arrays.update(p=np.float32(stats["Progress/augment"]), kimg=np.float64(stats["Progress/kimg"]))
    np.savez(args.dump, **arrays)


def make_tiny_dataset(root) -> str:
    """A 16x16 phantom dataset (3 classes, masks) prepared under `root`; returns its folder."""
    from tfstylegan.data.phantom import write_phantom_dataset
    from tfstylegan.data.prepare import prepare

    root = os.fspath(root)
    write_phantom_dataset(os.path.join(root, "src"), num_patients_per_class=4, slices_per_patient=2, size=64,
                          progress=False)
    prepare(os.path.join(root, "src"), os.path.join(root, "data16"), resolution=16, split=(0.6, 0.2, 0.2),
            progress=False)
    return os.path.join(root, "data16")


if __name__ == "__main__":
    main()
