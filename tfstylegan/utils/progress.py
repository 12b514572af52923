"""Console progress for long work: counts, rate and ETA on one line per update."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    """`3725.0 -> '1h 02m 05s'`; short forms for short durations."""
    if seconds != seconds or seconds == float("inf"):  # NaN or inf
        return "?"
    seconds = int(round(max(seconds, 0.0)))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h:02d}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


class Progress:
    """A progress reporter for `total` units of work.

    Prints `desc: 120/300 (40%) 12.3 it/s, elapsed 9s, ETA 14s` at most every
    `min_interval` seconds (and always at the end) to `stream` (stderr by default),
    one line per update so logs stay readable when redirected.
    """

    def __init__(self, total: int, desc: str = "", unit: str = "it", min_interval: float = 2.0,
                 stream=None, enabled: bool = True):
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.min_interval = min_interval
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.n = 0
        self.start = time.perf_counter()
        self._last_print = -float("inf")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.n >= self.total or now - self._last_print >= self.min_interval:
            self._print(now)

    def _print(self, now: float) -> None:
        if not self.enabled:
            return
        self._last_print = now
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else float("nan")
        remaining = (self.total - self.n) / rate if rate and rate == rate and rate > 0 else float("nan")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        line = (f"{self.desc + ': ' if self.desc else ''}{self.n}/{self.total} ({pct:.0f}%) "
                f"{rate:.1f} {self.unit}/s, elapsed {format_duration(elapsed)}, ETA {format_duration(remaining)}")
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.n < self.total:
            self._print(time.perf_counter())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
