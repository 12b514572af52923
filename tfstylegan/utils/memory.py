"""Peak memory of this process (host) and of the visible GPUs, for progress lines and the benchmark."""

from __future__ import annotations

import resource


def host_peak_memory_gb() -> float:
    """Peak resident memory of this process in GB (Linux `ru_maxrss` is in kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def gpu_peak_memory_gb() -> float | None:
    """Largest peak memory over the visible GPUs in GB; None without a GPU."""
    import tensorflow as tf  # here: saves start-up time (TensorFlow) for the modules that import this one

    peaks = []
    for gpu in tf.config.list_logical_devices("GPU"):
        try:
            peaks.append(tf.config.experimental.get_memory_info(gpu.name)["peak"] / 2 ** 30)
        except (ValueError, RuntimeError):
            pass
    return max(peaks) if peaks else None


def reset_gpu_peaks() -> None:
    """Resets the GPUs' peak-memory counters (no-op without a GPU)."""
    import tensorflow as tf  # here: saves start-up time (TensorFlow), as gpu_peak_memory_gb

    for gpu in tf.config.list_logical_devices("GPU"):
        try:
            tf.config.experimental.reset_memory_stats(gpu.name)
        except (ValueError, RuntimeError):
            pass
