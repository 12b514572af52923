"""What stops a training run early, and how: divergence (NaN/inf) and SIGTERM/SIGINT.

- Divergence. At the end of every tick the loop checks every value a checkpoint would hold
  (G, D, G_ema, both optimizers' slots, ADA p, pl_mean) and the tick's losses. Non-finite
  weights or optimizer state, or a tick in which no step had finite losses, stop the run with
  `TrainingDiverged` (a `UserError`: one line, exit status 1) naming the tick and the last good
  checkpoint; nothing is saved after that point, so bad checkpoints never rotate good ones out.
  A tick in which only some steps had non-finite losses (their gradients are sanitised, the
  weights stay finite) gives a warning line and training goes on.
- Signals. `StopSignals` turns the first SIGTERM (schedulers, `docker stop`, `kill`) or SIGINT
  (Ctrl-C) into a request the loop honours at the next step boundary: it closes the tick, saves
  a checkpoint and raises `TrainingInterrupted`; the launcher exits with 128 + the signal number
  (143 for SIGTERM, 130 for SIGINT), as a shell reports a process ended by that signal, so
  schedulers see an interrupted job, not a finished one. A second signal acts at once (the
  default action): checkpoints are written atomically, so even that loses no saved work.
  With several workers (MultiWorkerMirroredStrategy) the request is agreed over all of them at
  every step (`AgreedStop`, one tiny all-reduce), so they save and stop at the same step.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import tensorflow as tf

from tfstylegan.utils.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingDiverged(UserError):
    """The run produced NaN/inf: stopped without saving (the last good checkpoint is named in the message)."""


class TrainingInterrupted(Exception):
    """A stop signal arrived; a checkpoint was saved. `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, message: str, checkpoint: str | None):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """Context manager: the first SIGTERM/SIGINT sets `.signum` (a request), a second acts as usual.

    Only installs handlers in the main thread (elsewhere Python cannot, and `.signum` stays None).
    The previous handlers are restored on exit.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: the previous (usually default) action, now
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        # os.write, not print: a handler may run while the main thread is inside a print
        os.write(2, (f"\nreceived {signal_name(signum)}: saving a checkpoint after the current step, then "
                     "stopping (send it again to stop at once)\n").encode())

    def _restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        self._restore()
        return False


def num_workers(strategy) -> int:
    """Worker processes training together (1 unless MultiWorkerMirroredStrategy has a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(resolver, "task_type", None) is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, sum(len(jobs.get(job, [])) for job in ("chief", "worker")))


class AgreedStop:
    """The stop request all workers act on at the same step (a collective each step; several workers only).

    Each worker saves and stops only together with the others (a save is a collective operation), so
    the request one of them received (a scheduler signals every task, not at the same instant) is
    summed over workers at every step boundary: SIGTERM wins over SIGINT if both arrived.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self._sum = None

    def __call__(self, signum: int | None) -> int | None:
        if self._sum is None:
            strategy = self.strategy

            @tf.function
            def summed(flags):
                per_replica = strategy.run(lambda x: x, args=(flags,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._sum = summed
        flags = tf.constant([float(signum == signal.SIGTERM), float(signum == signal.SIGINT)], tf.float32)
        term, interrupt = (float(x) for x in self._sum(flags).numpy())
        return signal.SIGTERM if term > 0 else (signal.SIGINT if interrupt > 0 else None)


def checkpointed_variables(trainer) -> dict[str, list]:
    """The floating-point state a training checkpoint holds, by group: networks, optimizer slots, ADA, pl_mean."""
    groups = {"G": trainer.G.variables, "D": trainer.D.variables, "G_ema": trainer.G_ema.variables,
              "opt_G": trainer.opt_G.variables, "opt_D": trainer.opt_D.variables,
              "augment": [trainer.pipe.p], "state": [trainer.state.pl_mean]}
    return {k: [v for v in vs if np.dtype(getattr(v.dtype, "name", v.dtype)).kind == "f"] for k, vs in groups.items()}


def nonfinite_state(trainer) -> list[str]:
    """'<group>/<variable path>' of every checkpointed floating-point variable holding NaN or inf."""
    bad = []
    for group, variables in checkpointed_variables(trainer).items():
        for v in variables:
            if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))):
                bad.append(f"{group}/{getattr(v, 'path', None) or v.name}")
    return bad


def count_nonfinite_steps(step_stats: list[dict]) -> int:
    """How many steps' statistics (losses, penalties, signs) hold a NaN or inf."""
    return sum(1 for stats in step_stats if not all(np.isfinite(float(v)) for v in stats.values()))
