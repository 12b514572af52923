"""Seeds and the generation arguments' checks: which images to make (no TensorFlow).

A seed means the same image everywhere (`tfstylegan.apps.generation`). `parse_seed_ranges` reads the
launchers' `--seeds` ('0,1,7', '0-99', '0-3,10') into `Seeds`, ranges that are never materialised.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterator, Sequence

import numpy as np

from tfstylegan.utils.errors import UserError

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState accepts seeds in [0, 2**32 - 1]


class Seeds(Sequence):
    """Unique seeds in order, held as ranges: `--seeds 0-10000000` costs a few bytes, not 10M Python ints.

    A `Sequence[int]` (len, indexing, slicing, iteration); equal to a list with the same seeds.
    """

    def __init__(self, ranges: Sequence[range] = ()):
        self._ranges = [r for r in ranges if len(r)]
        if any(r.step != 1 for r in self._ranges):
            raise ValueError("Seeds holds unit-step ranges only.")
        self._starts = list(itertools.accumulate([0] + [len(r) for r in self._ranges]))

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self._ranges)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            out = []
            for r, offset in zip(self._ranges, self._starts):
                lo, hi = max(start - offset, 0), min(stop - offset, len(r))
                if lo < hi:
                    out.append(r[lo:hi])
            return Seeds(out)
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"seed index {index} out of range for {len(self)} seeds")
        k = bisect.bisect_right(self._starts, i) - 1
        return self._ranges[k][i - self._starts[k]]

    def __eq__(self, other) -> bool:
        if isinstance(other, Seeds):
            return self._ranges == other._ranges
        if isinstance(other, (list, tuple, range)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        parts = [f"{r.start}" if len(r) == 1 else f"{r.start}-{r.stop - 1}" for r in self._ranges]
        return f"Seeds({','.join(parts)!r})"


def parse_seed_ranges(spec: str | int | Sequence[int]) -> Seeds:
    """'0,1,7', '0-9' (inclusive) or mixtures like '0-3,10,20-22' -> unique `Seeds` in order, without a list.

    Repeated seeds keep their first position ('5,0-7' is 5, 0, 1, 2, 3, 4, 6, 7).

    Raises:
      UserError: empty, malformed, descending or out-of-range entries (seeds lie in [0, 2**32 - 1]).
    """
    if isinstance(spec, (int, np.integer)):
        parts = [str(int(spec))]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
    else:
        parts = [str(int(s)) for s in spec]
    ranges: list[range] = []
    covered: list[list[int]] = []  # sorted, disjoint [lo, hi) intervals already taken
    for part in parts:
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise UserError(f"Bad seed {part!r} in --seeds={spec!r}: use non-negative integers and inclusive "
                            "ranges, e.g. --seeds=0,1,7 or --seeds=0-99.")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"Seed range {part!r} is descending; write it as {hi}-{lo}.")
        if hi > MAX_SEED:
            raise UserError(f"Seeds must lie in [0, {MAX_SEED}]. Received: {part!r} in --seeds={spec!r}")
        lo, hi = lo, hi + 1
        # the pieces of [lo, hi) not taken yet, in order
        k = bisect.bisect_left(covered, lo, key=lambda c: c[1])  # first interval ending at or after lo
        cursor = lo
        for c_lo, c_hi in covered[k:]:
            if c_lo >= hi:
                break
            if c_lo > cursor:
                ranges.append(range(cursor, c_lo))
            cursor = max(cursor, c_hi)
        if cursor < hi:
            ranges.append(range(cursor, hi))
        # merge [lo, hi) into the covered intervals
        j = k
        while j < len(covered) and covered[j][0] <= hi:
            lo, hi = min(lo, covered[j][0]), max(hi, covered[j][1])
            j += 1
        covered[k:j] = [[lo, hi]]
    merged: list[range] = []
    for r in ranges:  # contiguous pieces ('0,1,2') as one range
        if merged and merged[-1].stop == r.start:
            merged[-1] = range(merged[-1].start, r.stop)
        else:
            merged.append(r)
    seeds = Seeds(merged)
    if not len(seeds):
        raise UserError(f"--seeds is empty. Pass seeds like --seeds=0,1,7 or --seeds=0-99. Received: {spec!r}")
    return seeds


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """`parse_seed_ranges` as a list of ints (for short seed lists; the launcher streams `Seeds`)."""
    return list(parse_seed_ranges(spec))


def parse_indices(spec: str, limit: int, name: str) -> list[int]:
    """Like `parse_seeds` for w indices (e.g. style-mixing layers), each checked to be < `limit`."""
    values = parse_seeds(spec)
    bad = [v for v in values if v >= limit]
    if bad:
        raise UserError(f"{name} must lie in [0, {limit - 1}]. Received: {bad} in {spec!r}")
    return values


def check_truncation_psi(truncation_psi: float, name: str = "--truncation_psi") -> float:
    """Returns psi as a float; a UserError unless it is a finite number (NaN or inf would give black images)."""
    try:
        psi = float(truncation_psi)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (1 = no truncation; 0.5-0.7 is typical). "
                        f"Received: {truncation_psi!r}") from None
    if not math.isfinite(psi):
        raise UserError(f"{name} must be a finite number (1 = no truncation; 0.5-0.7 is typical); {psi} would "
                        f"make every image NaN, i.e. black. Received: {name}={truncation_psi}")
    return psi
