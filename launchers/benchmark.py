"""Benchmarks StyleGAN2 training and inference speed and memory (`tfstylegan.apps.benchmark`).

Examples:
  python -m launchers.benchmark --preset bench32 --device cpu --json bench32.json
  python -m launchers.benchmark --preset bench32 --device cpu --compare --json bench32_all.json
  python -m launchers.benchmark --preset auto --device gpu --mixed_precision --xla --json auto_gpu.json
  python -m launchers.benchmark --preset tiny --repeats 1 --json /tmp/tiny.json      (CI smoke test)

Measured after warm-up, median and spread over --repeats: one full training iteration (a lazy
cycle of 16 steps: Gmain, Greg every 4, Dmain, Dreg every 16, G EMA, ADA) as s/kimg and img/s,
each phase alone, generator inference (G_ema, no gradient) and discriminator forward in img/s,
FLOPs per image and FLOP/s, peak host and GPU memory. `--compare` runs XLA on/off x fused/non-fused
modulated convolutions, each in a fresh process, and reports them all (the top level is the
configuration the other flags ask for).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from absl import flags

from tfstylegan.apps import benchmark_report
from tfstylegan.config import PRESET_NAMES, get_preset
from tfstylegan.utils.cli import run
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import write_json

_PRESET = flags.DEFINE_enum("preset", "bench32", list(PRESET_NAMES), "Preset to benchmark.")
_BATCH = flags.DEFINE_integer("batch", 0, "Global batch size (0: the preset's).")
_XLA = flags.DEFINE_bool("xla", None, "Compile the steps with XLA (default: the preset's).")
_FUSED = flags.DEFINE_bool("fused_modconv", None, "Grouped-conv modulated convolutions (default: the preset's).")
_MP = flags.DEFINE_bool("mixed_precision", False, "float16 in the 4 highest-resolution blocks.")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                              "tf.distribute strategy (mirrored: every GPU).")
_DEVICE = flags.DEFINE_enum("device", "auto", ["auto", "cpu", "gpu"], "Where to run (auto: a GPU if present).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions of each measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed full iterations first (the first compiles).")
_INFER = flags.DEFINE_integer("inference_batches", 8, "Generator/discriminator batches per timed repetition.")
_PHASES = flags.DEFINE_bool("phases", True, "Also time each training phase alone.")
_FLOPS = flags.DEFINE_bool("flops", True, "Count FLOPs with TensorFlow's graph profiler.")
_INTRA = flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow intra-op threads (0: one per core).")
_INTER = flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
_PROFILE = flags.DEFINE_string("profile_dir", None, "Write a TensorBoard profiler trace of one full iteration.")
_COMPARE = flags.DEFINE_bool("compare", False, "Measure XLA on/off x fused/non-fused modconv (fresh process each).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the networks and the synthetic data.")
_JSON = flags.DEFINE_string("json", None, "Write the report as JSON here (atomically).")
_TARGETS = flags.DEFINE_string("targets", None, "Reference numbers and targets to compare with (JSON; default "
                               "launchers/configs/benchmark_targets.json).")

_REPO = Path(__file__).resolve().parents[1]


def _child_flags(xla: bool, fused: bool, json_path: str) -> list[str]:
    args = [f"--preset={_PRESET.value}", f"--batch={_BATCH.value}", f"--{'' if xla else 'no'}xla",
            f"--{'' if fused else 'no'}fused_modconv", f"--{'' if _MP.value else 'no'}mixed_precision",
            f"--strategy={_STRATEGY.value}", f"--device={_DEVICE.value}", f"--repeats={_REPEATS.value}",
            f"--warmup={_WARMUP.value}", f"--inference_batches={_INFER.value}",
            f"--{'' if _PHASES.value else 'no'}phases", f"--{'' if _FLOPS.value else 'no'}flops",
            f"--intra_op_threads={_INTRA.value}", f"--inter_op_threads={_INTER.value}", f"--seed={_SEED.value}",
            "--nocompare", f"--json={json_path}"]
    return args


def _compare(options) -> dict:
    preset = get_preset(_PRESET.value)
    want = (preset.train.xla if _XLA.value is None else _XLA.value,
            preset.generator.fused_modconv if _FUSED.value is None else _FUSED.value)
    reports = []
    with tempfile.TemporaryDirectory(prefix="tfstylegan-bench-") as tmp:
        for xla in (True, False):
            for fused in (True, False):
                path = str(Path(tmp) / f"xla{int(xla)}_fused{int(fused)}.json")
                print(f"== xla {xla}, fused_modconv {fused}", flush=True)
                proc = subprocess.run([sys.executable, "-m", "launchers.benchmark", *_child_flags(xla, fused, path)],
                                      cwd=_REPO)
                if proc.returncode != 0:
                    raise UserError(f"The benchmark with xla={xla}, fused_modconv={fused} failed (exit status "
                                    f"{proc.returncode}; its output is above).")
                reports.append(json.loads(Path(path).read_text(encoding="utf-8")))
    main = next(r for r in reports if (r["xla"], r["fused_modconv"]) == want)
    fastest = min(reports, key=lambda r: r["s_per_kimg"])
    main = dict(main)
    main["variants"] = reports
    main["fastest"] = {"xla": fastest["xla"], "fused_modconv": fastest["fused_modconv"],
                       "s_per_kimg": fastest["s_per_kimg"],
                       "generator_img_per_s_best": max(r["generator_img_per_s"] for r in reports)}
    print("\n" + benchmark_report.format_comparison(reports))
    print(f"fastest full iteration: xla {fastest['xla']}, fused_modconv {fastest['fused_modconv']}")
    return main


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.apps import benchmark

    spec = benchmark_report.load_targets(_TARGETS.value or benchmark_report.DEFAULT_TARGETS)

    options = benchmark.BenchmarkOptions(
        preset=_PRESET.value, batch_size=_BATCH.value or None, xla=_XLA.value, fused_modconv=_FUSED.value,
        mixed_precision=_MP.value, strategy=_STRATEGY.value, device=_DEVICE.value, repeats=_REPEATS.value,
        warmup=_WARMUP.value, inference_batches=_INFER.value, phases=_PHASES.value, flops=_FLOPS.value,
        profile_dir=_PROFILE.value, seed=_SEED.value)
    if _COMPARE.value:
        report = _compare(options)
    else:
        benchmark.configure_runtime(_DEVICE.value, _INTRA.value, _INTER.value)
        report = benchmark.run_benchmark(options, log=lambda msg: print(msg, flush=True))
    report = benchmark_report.compare(report, spec)
    report["command"] = " ".join(["python -m launchers.benchmark", *sys.argv[1:]])
    print("\n" + benchmark_report.format_report(report))
    if _JSON.value:
        write_json(_JSON.value, report)
        print(f"wrote {_JSON.value}")


if __name__ == "__main__":
    run(main)
