"""Subprocess helper for the training tests: one tiny training run, then its weights as .npz.

    python tests/_train_worker.py --data D --run_dir R --dump out.npz [--kill_at_save K]
        [--signal_at_step K --signal TERM|INT] [--strategy multi_worker] [--total_kimg 0.032]
    python tests/_train_worker.py --launcher_nan_at_step K -- <launchers.train_stylegan flags>

--kill_at_save K: SIGKILL this process during the K-th checkpoint save, after the ckpt files
are written but before the `checkpoint` state file names them (the worst moment).
--signal_at_step K: send SIGTERM/SIGINT to this process during training step K (a real signal,
handled by the loop); the run saves, stops and the process exits as the launcher does (128 + signal).
--launcher_nan_at_step K: run the real launcher with a cheap stand-in training step (no tracing)
whose weights turn NaN at step K: the divergence path end to end (message, exit status).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _nan_steps(nan_at_step: int) -> None:
    """Replaces `Trainer.train_step` by a cheap deterministic step whose G weights turn NaN at `nan_at_step`."""
    import tensorflow as tf

    from tfstylegan.training.trainer import Trainer

    def train_step(self, real, labels, step, cur_nimg):
        v = self.G.trainable_variables[0]
        v.assign_add(tf.fill(v.shape, 1e-3))
        if step >= nan_at_step:
            v.assign(tf.fill(v.shape, float("nan")))
        return {"G_loss": tf.constant(0.5), "D_loss": tf.constant(0.7)}

    Trainer.train_step = train_step


def main():
    if "--launcher_nan_at_step" in sys.argv:  # --launcher_nan_at_step K -- <launcher flags>
        k = int(sys.argv[sys.argv.index("--launcher_nan_at_step") + 1])
        launcher_args = sys.argv[sys.argv.index("--") + 1:]
        _nan_steps(k)
        from launchers import train_stylegan
        from tfstylegan.utils import cli

        sys.argv = ["train_stylegan", *launcher_args]
        cli.run(train_stylegan.main)
        return

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--run_dir", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--kill_at_save", type=int, default=0)
    ap.add_argument("--strategy", default="default")
    ap.add_argument("--total_kimg", type=float, default=0.032)
    ap.add_argument("--kimg_per_tick", type=float, default=0.008)
    ap.add_argument("--signal_at_step", type=int, default=-1)
    ap.add_argument("--signal", choices=["TERM", "INT"], default="TERM")
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

    if args.signal_at_step >= 0:
        from tfstylegan.training.trainer import Trainer

        real_step = Trainer.train_step

        def signalling_step(self, real, labels, step, cur_nimg):
            if step == args.signal_at_step:
                os.kill(os.getpid(), getattr(signal, f"SIG{args.signal}"))
            return real_step(self, real, labels, step, cur_nimg)

        Trainer.train_step = signalling_step

    from tfstylegan.training.guards import TrainingInterrupted
    from tfstylegan.training.loop import train

    arrays = {}

    def dump_weights(trainer):
        for name, net in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
            for i, v in enumerate(net.variables):
                arrays[f"{name}/{i}/{v.path}"] = np.asarray(v.numpy())

    try:
        stats = train(args.run_dir, "tiny", args.data, class_name="glioma", strategy=args.strategy,
                      train_overrides={"total_kimg": args.total_kimg, "kimg_per_tick": args.kimg_per_tick,
                                       "snapshot_ticks": 1, "aug": "ada", "ada_kimg": 0.05},
                      deterministic=True, tensorboard=False, verbose=False, on_finish=dump_weights)
    except TrainingInterrupted as e:  # as launchers/train_stylegan.py
        print(e, flush=True)
        sys.exit(e.exit_code)
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
