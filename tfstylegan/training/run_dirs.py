"""Numbered run folders: `<out>/00000-<desc>/`, `<out>/00001-<desc>/`, ...

As stylegan2-ada-pytorch `train.py`: the next number is one more than the highest number
already in `<out>`, so runs sort by creation and never overwrite each other. The folder is
claimed with an exclusive `mkdir` (two launchers starting at once get different numbers).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_RUN_RE = re.compile(r"^(\d{5,})-")


def run_description(preset_name: str, class_name: str | None = None, conditional: bool = False,
                    with_mask: bool = False, batch: int | None = None, aug: str | None = None,
                    resumed: bool = False) -> str:
    """A short folder description, e.g. 'tiny-glioma-mask-b4-ada' or 'auto-cond-b16-ada-resume'."""
    parts = [preset_name, "cond" if conditional else (class_name or "all")]
    if with_mask:
        parts.append("mask")
    if batch is not None:
        parts.append(f"b{int(batch)}")
    if aug:
        parts.append(aug)
    if resumed:
        parts.append("resume")
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts)


def next_run_dir(out_dir: str | os.PathLike, desc: str) -> Path:
    """Creates and returns `<out_dir>/<NNNNN>-<desc>` with the next free number."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for name in os.listdir(out_dir) if (m := _RUN_RE.match(name))]
    number = max(numbers, default=-1) + 1
    while True:
        path = out_dir / f"{number:05d}-{desc}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1
