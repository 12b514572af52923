"""The benchmark's report: comparison with reference numbers and targets (read from a JSON file, by
default `launchers/configs/benchmark_targets.json`), and its text tables."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfstylegan.utils.errors import UserError

DEFAULT_TARGETS = Path(__file__).resolve().parents[2] / "launchers" / "configs" / "benchmark_targets.json"


def load_targets(path: str | os.PathLike = DEFAULT_TARGETS) -> dict[str, Any]:
    """The reference numbers and targets: {'reference': {...}, 'targets': {name: {when, measure, at_most|at_least}}}."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        spec["reference"]["s_per_kimg"], spec["reference"]["generator_img_per_s"], spec["targets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a benchmark targets file ({e}). See launchers/configs/benchmark_targets.json "
                        "for the format.") from None
    return spec


def _measured(report: dict[str, Any], key: str):
    value: Any = report
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def compare(report: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The report with `reference_*`, `speedup`, `targets` ({applicable, threshold, measured, met}) and
    `targets_met` ({name: met} over the applicable targets) added from `spec` (`load_targets`)."""
    ref = spec["reference"]
    lo, hi = ref["generator_img_per_s"]
    out = dict(report)
    out["reference_s_per_kimg"] = ref["s_per_kimg"]
    out["reference_generator_img_per_s"] = [lo, hi]
    out["speedup"] = {"train_vs_reference": ref["s_per_kimg"] / report["s_per_kimg"],
                      "generator_vs_reference_low": report["generator_img_per_s"] / lo,
                      "generator_vs_reference_high": report["generator_img_per_s"] / hi}
    targets = {}
    for name, t in spec["targets"].items():
        measured = _measured(report, t["measure"])
        applicable = all(report.get(k) == v for k, v in t["when"].items()) and measured is not None
        if "at_most" in t:
            threshold, met = t["at_most"], measured is not None and measured <= t["at_most"]
        else:
            threshold, met = t["at_least"], measured is not None and measured >= t["at_least"]
        targets[name] = {"applicable": applicable, "threshold": threshold, "measured": measured, "met": bool(met)}
    out["targets"] = targets
    out["targets_met"] = {k: v["met"] for k, v in targets.items() if v["applicable"]}
    return out


# ---------------------------------------------------------------------------------------------
# Text output.

def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if abs(x) >= 1e9:
        return f"{x / 1e9:.{digits}f} G"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.{digits}f} M"
    return f"{x:.{digits}f}"


def _pm(s: dict) -> str:
    return f"{_fmt(s['median'], 2)} [{_fmt(s['min'], 2)}, {_fmt(s['max'], 2)}]"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (median [min, max] over the repeats)."""
    it = report["iteration"]
    lines = [
        f"preset {report['preset']}  batch {report['batch_size']}  {report['resolution']}x{report['resolution']}  "
        f"device {report['device']}  replicas {report['num_replicas']}  xla {report['xla']}  "
        f"fused_modconv {report['fused_modconv']}  mixed_precision {report['mixed_precision']}  "
        f"repeats {report['repeats']}",
        f"full iteration = {it['steps']} steps ({', '.join(f'{v} {k}' for k, v in it['phase_calls'].items())}), "
        f"aug {it['aug']} p={it['aug_p']:.2f}, style mixing {it['style_mixing_prob']}",
        "",
        f"{'measurement':<34}{'median [min, max]':>30}",
        f"{'full iteration, s':<34}{_pm(it['seconds']):>30}",
        f"{'training, s/kimg':<34}{_pm(it['s_per_kimg']):>30}",
        f"{'training, img/s':<34}{_pm(it['img_per_s']):>30}",
        f"{'full iteration, process CPU s':<34}{_pm(it['process_cpu_seconds']):>30}",
        f"{'generator inference, img/s':<34}{_pm(report['generator']['img_per_s_spread']):>30}",
        f"{'discriminator forward, img/s':<34}{_pm(report['discriminator']['img_per_s_spread']):>30}",
    ]
    for name, ph in report.get("phases", {}).items():
        lines.append(f"{'phase ' + name + ', s/call':<34}{_pm(ph['seconds']):>30}"
                     f"   x{ph['calls_per_iteration']} = {ph['seconds_per_iteration']:.2f} s/iter "
                     f"({100 * ph['share']:.0f}%)")
    load = it.get("load_average_after")
    cores = report["environment"].get("cpu_count") or 1
    if load is not None and load > cores:
        lines.append(f"WARNING: load average {load:.1f} on {cores} cores during the run: other processes "
                     "competed for the CPU, the times are pessimistic.")
    mem = report["memory"]
    lines += ["", f"peak host memory {mem['host_peak_gb']:.2f} GB"
              + (f", peak GPU memory {mem['gpu_peak_gb']:.2f} GB" if mem.get("gpu_peak_gb") is not None else "")]
    if "flops" in report:
        f = report["flops"]
        lines.append(f"FLOPs/img: generator {_fmt(f['generator_per_img'], 2)} "
                     f"({_fmt(report['generator']['flop_per_s'], 2)}FLOP/s), discriminator "
                     f"{_fmt(f['discriminator_per_img'], 2)} ({_fmt(report['discriminator']['flop_per_s'], 2)}FLOP/s), "
                     f"training {_fmt(f['train_per_img'], 2)} ({_fmt(report['train_flop_per_s'], 2)}FLOP/s)")
    sp, (lo, hi) = report["speedup"], report["reference_generator_img_per_s"]
    lines.append(f"vs stylegan2-ada-pytorch CPU reference ({report['reference_s_per_kimg']:.0f} s/kimg, "
                 f"{lo:.0f}-{hi:.0f} img/s): training "
                 f"{sp['train_vs_reference']:.2f}x, generator {sp['generator_vs_reference_high']:.2f}-"
                 f"{sp['generator_vs_reference_low']:.2f}x")
    for name, tgt in report["targets"].items():
        if tgt["applicable"]:
            lines.append(f"target {name}: {'MET' if tgt['met'] else 'NOT MET'}")
    return "\n".join(lines)


def format_comparison(reports: Sequence[dict[str, Any]]) -> str:
    """One row per configuration (e.g. XLA on/off x fused/non-fused modconv)."""
    head = f"{'xla':<6}{'fused':<7}{'mp':<5}{'s/kimg':>10}{'train img/s':>13}{'G img/s':>10}{'D img/s':>10}"
    rows = [head]
    for r in reports:
        rows.append(f"{str(r['xla']):<6}{str(r['fused_modconv']):<7}{str(r['mixed_precision'])[:1]:<5}"
                    f"{r['s_per_kimg']:>10.1f}{r['img_per_s']:>13.2f}{r['generator_img_per_s']:>10.1f}"
                    f"{r['discriminator_img_per_s']:>10.1f}")
    return "\n".join(rows)
