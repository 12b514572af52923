"""tf.distribute strategies by name, shared by StyleGAN2 training and the classifier.

`get_strategy(name)`:
- `'default'`: `tf.distribute.get_strategy()`, the no-op strategy (one device).
- `'mirrored'`: `MirroredStrategy` over every GPU; without GPUs, over the logical CPU
  devices (configure them with `tf.config.set_logical_device_configuration` before
  TensorFlow initialises; that is how multi-replica code is tested without GPUs).
- `'multi_worker'`: `MultiWorkerMirroredStrategy` whose cluster comes from the
  `TF_CONFIG` environment variable, validated first so a typo is a clear error.
"""

from __future__ import annotations

import json
import os

from typing import TYPE_CHECKING

from tfstylegan.utils.errors import UserError

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")


def get_strategy(name: str = "default") -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` called `name` (one of `STRATEGY_NAMES`).

    Raises:
      UserError: for an unknown name, or for `'multi_worker'` with a missing or malformed `TF_CONFIG`.
    """
    import tensorflow as tf  # here: launchers import STRATEGY_NAMES before they quiet and load TensorFlow

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        _check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"Unknown distribution strategy {name!r}. Choose one of {', '.join(STRATEGY_NAMES)}.")


def _check_tf_config(raw: str | None) -> dict:
    """Parses and checks `TF_CONFIG` for multi-worker training; returns the parsed dict."""
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not raw:
        raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable describing the "
                        f"cluster, e.g. TF_CONFIG='{example}' (a different task index on each worker).")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={raw!r}. "
                        f"Expected e.g. {example}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={raw!r}. Expected e.g. {example}")
    cluster, task = cfg.get("cluster"), cfg.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError(f"TF_CONFIG has no 'cluster' mapping of job names to 'host:port' lists. "
                        f"Received: TF_CONFIG={raw!r}. Expected e.g. {example}")
    for job, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ":" in a for a in addresses)):
            raise UserError(f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port' strings. "
                            f"Received: {addresses!r}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UserError(f"TF_CONFIG has no 'task' with 'type' and 'index'. Received: TF_CONFIG={raw!r}. "
                        f"Expected e.g. {example}")
    job, index = task["type"], task["index"]
    if job not in cluster:
        raise UserError(f"TF_CONFIG task type {job!r} is not a job in the cluster ({', '.join(cluster)}).")
    if not isinstance(index, int) or not 0 <= index < len(cluster[job]):
        raise UserError(f"TF_CONFIG task index {index!r} is out of range for job {job!r} "
                        f"with {len(cluster[job])} addresses.")
    return cfg
