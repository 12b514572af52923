r"""The whole study, end to end, on the built-in phantom data (or your Figshare data).

`make demo` runs this. Each stage is one of the real launchers, run as a subprocess with the
same flags a user would type, so the demo exercises exactly the user-facing code paths:

  1. make_phantom      phantom patients written in the real Figshare v7.3 .mat layout
  2. prepare_data      crop the centre half, resize to 32x32 (the study's first stage), patient-wise splits
  3. train_classifier  the InceptionV3 judge (small input, random init: no weights can be downloaded); it needs
                       only the data, so it trains beside stage 4 at low priority, its lines in a log file
  4. train_stylegan    one conditional StyleGAN2 for the three classes ('demo' preset, 20 kimg), or with
                       --per_class one model per tumor class as the study (same total budget, split three ways)
  5. evaluate          Inception Score of real vs generated per class, FID/KID/precision/recall, memorization;
                       it needs nothing stages 6-8 make, so it runs beside them, its lines in a log file
  6. generate          the study's figures per class, one process for all classes (real vs generated, 3x3
                       grid, mosaic, style mixing, interpolation)
  7. export            SavedModels for TF Serving (generators and classifier)
  8. synthesize        a small synthetic dataset (16 slices per class with --fast, 64 otherwise), privacy-filtered
                       against the real training slices in pixels and judge features, with its privacy report

Usage:
  python -m launchers.demo --out demo_out
  python -m launchers.demo --out demo_out --data /path/to/figshare   # real data instead of the phantom
  python -m launchers.demo --out demo_out --kimg 30                    # a bigger budget
  python -m launchers.demo --out demo_out --per_class                  # three models, as the study
  python -m launchers.demo --out demo_fast --fast                      # the CI smoke mode (about 3 min)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from absl import flags

from tfstylegan.apps.evaluation.report import quality_checks, quality_table, results_table
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.utils.cli import run
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.progress import format_duration

_OUT = flags.DEFINE_string("out", "demo_out", "Folder for everything the demo writes.")
_DATA = flags.DEFINE_string("data", None, "A Figshare source (folder of .mat files or the zips) instead of the "
                            "built-in phantom data.")
_KIMG = flags.DEFINE_float("kimg", None, "Total StyleGAN2 training budget in thousands of real images (default 20; "
                           "0.05 with --fast); with --per_class each model gets a third.")
_FAST = flags.DEFINE_bool("fast", False, "Smoke mode for CI: tiny networks, few images, minutes.")
_PER_CLASS = flags.DEFINE_bool("per_class", False, "Train one model per tumor class (the study) instead of one "
                               "conditional model; 20 kimg then leave each model too few steps to resemble a "
                               "head, so give a bigger --kimg (3x the steps cost 3x the minutes).")
_RESOLUTION = flags.DEFINE_integer("resolution", 32, "Training resolution (32 is the study's first stage).")
_OVERWRITE = flags.DEFINE_bool("overwrite", True, "Replace an earlier demo in --out (only a folder this demo made).")

CLASSES = CLASS_NAMES
_MARKER = "demo.json"


def _settings(fast: bool) -> dict:
    if fast:
        return dict(patients=6, slices=2, preset="tiny", kimg=0.05, kimg_per_tick=0.05, batch=4,
                    classifier_epochs=2, classifier_size=75, classifier_batch=16, num_images=24, ppl=8, seeds="0-8",
                    resolution=16, synthetic=16, min_class_prob=0.0)
    return dict(patients=30, slices=4, preset="demo", kimg=20.0, kimg_per_tick=2.0, batch=8,
                classifier_epochs=6, classifier_size=75, classifier_batch=16, num_images=100, ppl=50, seeds="0-15",
                resolution=_RESOLUTION.value, synthetic=64, min_class_prob=0.5)


# TensorFlow's own thread settings for the two trainings that run side by side (a user's setting wins).
_GAN_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}
_JUDGE_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


class _Background:
    """A launcher running beside the stages that follow, its console lines kept in a log file."""

    def __init__(self, index: int, title: str, command: str, proc: subprocess.Popen, log: Path, start: float,
                 beside: str = "the next stage"):
        self.index, self.title, self.command, self.proc, self.log, self.start = index, title, command, proc, log, start
        self.beside = beside
        self.end: float | None = None  # when the process exited, not when the demo collected it
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        self.proc.wait()
        self.end = time.perf_counter()

    def seconds(self) -> float:
        """Its own run time (waits for it to end)."""
        self._watcher.join()
        return self.end - self.start


class _Stages:
    """Runs launcher subprocesses with a progress line per stage and a timing table at the end."""

    def __init__(self, total: int):
        self.total = total
        self.index = 0
        self.timings: list[tuple[str, float]] = []
        self.background: list[_Background] = []

    def _announce(self, title: str, launcher: str, args: tuple[str, ...], note: str = "",
                  threads: dict[str, str] | None = None) -> tuple[list[str], str, dict[str, str]]:
        self.index += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        prefix = ""
        for name, value in (threads or {}).items():
            env.setdefault(name, value)  # the user's own setting wins
            prefix += f"{name}={env[name]} "
        command = f"{prefix}python -m launchers.{launcher} {' '.join(args)}"
        print(f"\n[demo {self.index}/{self.total}] {title}{note}\n  $ {command}", flush=True)
        return [sys.executable, "-m", f"launchers.{launcher}", *args], command, env

    def __call__(self, title: str, launcher: str, *args: str, threads: dict[str, str] | None = None) -> None:
        cmd, command, env = self._announce(title, launcher, args, threads=threads)
        start = time.perf_counter()
        result = subprocess.run(cmd, env=env)
        took = time.perf_counter() - start
        self.timings.append((title, took))
        if result.returncode != 0:
            raise UserError(f"demo stage '{title}' failed (exit {result.returncode}); its messages are above. "
                            f"Command: {command}")
        print(f"[demo {self.index}/{self.total}] {title}: done in {format_duration(took)}", flush=True)

    def start(self, title: str, launcher: str, *args: str, log: Path, beside: str = "the next stage",
              threads: dict[str, str] | None = None) -> _Background:
        """Starts a stage beside the next ones, at low CPU priority (it fills the cores they leave idle)."""
        cmd, command, env = self._announce(title, launcher, args, f" (beside {beside}; its lines go to {log})",
                                           threads)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as f:  # the child keeps its own handle
            proc = subprocess.Popen(cmd, env=env, stdout=f,
                                    stderr=subprocess.STDOUT, preexec_fn=_lower_priority)
        job = _Background(self.index, title, command, proc, log, time.perf_counter(), beside)
        self.background.append(job)
        return job

    def wait(self, job: _Background) -> None:
        """Waits for a background stage; shows the end of its log, raises if it failed."""
        code = job.proc.wait()
        took = job.seconds()
        self.background.remove(job)
        self.timings.append((f"{job.title} (beside {job.beside})", took))
        lines = job.log.read_text(errors="replace").splitlines()
        shown = lines[-(12 if code else 3):]
        print(f"\n[demo {job.index}/{self.total}] {job.title}: last lines of {job.log}:", flush=True)
        for line in shown:
            print(f"  | {line}", flush=True)
        if code != 0:
            raise UserError(f"demo stage '{job.title}' failed (exit {code}); its messages are in {job.log}. "
                            f"Command: {job.command}")
        print(f"[demo {job.index}/{self.total}] {job.title}: done in {format_duration(took)}", flush=True)

    def stop_background(self) -> None:
        """Ends background stages still running (the demo failed or was interrupted)."""
        for job in self.background:
            if job.proc.poll() is None:
                job.proc.terminate()
                try:
                    job.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    job.proc.kill()
        self.background.clear()


def _lower_priority() -> None:
    """(in the child) nice 10: the StyleGAN2 training beside it keeps the cores it uses."""
    os.nice(10)


def _only_run_dir(parent: Path) -> Path:
    runs = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(runs) != 1:
        raise UserError(f"expected one run folder in {parent}, found {[p.name for p in runs]}")
    return runs[0]


def main(argv):
    del argv
    s = _settings(_FAST.value)
    if _KIMG.value is not None:
        if _KIMG.value <= 0:
            raise UserError(f"--kimg must be > 0. Received: --kimg={_KIMG.value}")
        s["kimg"] = _KIMG.value
    out = Path(_OUT.value).resolve()
    if out.exists() and any(out.iterdir()):
        if not (_OVERWRITE.value and (out / _MARKER).exists()):
            raise UserError(f"{out} exists and was not made by this demo; choose another --out.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text(json.dumps({"settings": s, "data": _DATA.value, "started": time.time()}, indent=2))

    classes = CLASSES
    per_class = _PER_CLASS.value
    n_stages = (0 if _DATA.value else 1) + 1 + 1 + (len(classes) if per_class else 1) + 4
    stage = _Stages(n_stages)
    t0 = time.perf_counter()

    try:
        source = _DATA.value
        if not source:
            source = str(out / "phantom_mat")
            stage("phantom patients in the Figshare .mat layout", "make_phantom", f"--out={source}",
                  f"--patients_per_class={s['patients']}", f"--slices_per_patient={s['slices']}", "--seed=0")
        data = out / "data"
        stage(f"prepare data ({s['resolution']}x{s['resolution']}, patient-wise splits)", "prepare_data",
              f"--source={source}", f"--out={data}", f"--resolution={s['resolution']}", "--split=0.6,0.2,0.2")

        # The judge needs only the data: it trains beside StyleGAN2, at low priority, on one thread (one
        # core; its results do not depend on how busy the machine is). StyleGAN2's small ops do not pay for
        # intra-op threads: one intra-op and two inter-op threads take less CPU time per kimg than TensorFlow's
        # default and leave the judge its core (launchers/benchmark.py --preset demo --intra_op_threads=1
        # --inter_op_threads=2; README, 'The demo').
        clf_dir = out / "classifier"
        judge = stage.start("InceptionV3 judge (random init, small input)", "train_classifier", f"--data={data}",
                            f"--out={clf_dir}", "--weights=none", f"--epochs={s['classifier_epochs']}",
                            f"--input_size={s['classifier_size']}", f"--batch={s['classifier_batch']}", "--patience=0",
                            log=out / "logs" / "train_classifier.log", beside="StyleGAN2", threads=_JUDGE_THREADS)
        classifier = clf_dir / "classifier.keras"

        kimg = s["kimg"] / len(classes) if per_class else s["kimg"]
        common = [f"--data={data}", f"--preset={s['preset']}", f"--kimg={kimg:g}",
                  f"--kimg_per_tick={min(s['kimg_per_tick'], kimg):g}", f"--batch={s['batch']}", "--snapshot_ticks=2",
                  "--mirror"]
        checkpoints: dict[str, Path] = {}  # class -> run folder (the same conditional run for every class)
        if per_class:
            for cls in classes:
                parent = out / "stylegan" / cls
                stage(f"StyleGAN2 for {cls} ({kimg:g} kimg)", "train_stylegan", f"--out={parent}",
                      f"--class_name={cls}", *common, threads=_GAN_THREADS)
                checkpoints[cls] = _only_run_dir(parent)
            checkpoint_flag = ",".join(f"{c}={p}" for c, p in checkpoints.items())
        else:
            parent = out / "stylegan" / "conditional"
            stage(f"conditional StyleGAN2 for {', '.join(classes)} ({kimg:g} kimg)", "train_stylegan",
                  f"--out={parent}", "--conditional", *common, threads=_GAN_THREADS)
            run_dir = _only_run_dir(parent)
            checkpoints = {cls: run_dir for cls in classes}
            checkpoint_flag = str(run_dir)

        stage.wait(judge)

        # evaluate needs both networks and nothing the next three stages make: it runs beside them (each of
        # the four spends much of its time single-threaded, importing TensorFlow and tracing).
        eval_dir = out / "evaluation"
        evaluation = stage.start("evaluate: Inception Score real vs generated, FID/KID/P/R, memorization", "evaluate",
                                 f"--checkpoint={checkpoint_flag}", f"--classifier={classifier}", f"--data={data}",
                                 f"--out={eval_dir}", f"--num_images={s['num_images']}", f"--ppl_samples={s['ppl']}",
                                 "--kid_subsets=20", log=out / "logs" / "evaluate.log",
                                 beside="generate, export and synthesize")

        fig_dir = out / "figures"
        stage("generate: seeds and the study's figures for every class", "generate", f"--checkpoint={checkpoint_flag}",
              "--class_name=all", f"--seeds={s['seeds']}", f"--out={fig_dir}", "--figures", f"--data={data}")

        export_dir = out / "serving"
        export_args = [f"--out={export_dir}", f"--classifier={classifier}"]
        export_args += [f"--checkpoint={p}" for p in dict.fromkeys(checkpoints.values())]
        stage("export SavedModels for TF Serving", "export", *export_args)

        synthetic_dir = out / "synthetic"
        # the quick judge of --fast is barely trained: its class probabilities would make a poor quality filter
        stage(f"synthesize: {s['synthetic']} filtered slices per class with a privacy report", "synthesize",
              f"--checkpoint={checkpoint_flag}", f"--classifier={classifier}", f"--data={data}",
              f"--out={synthetic_dir}", f"--num_per_class={s['synthetic']}", f"--min_class_prob={s['min_class_prob']}")

        stage.wait(evaluation)

        total = time.perf_counter() - t0
        results = json.loads((eval_dir / "results.json").read_text())
        checks = quality_checks(results)
        summary = {"settings": s, "data": source, "total_seconds": round(total, 1),
                   "stages": [{"stage": t, "seconds": round(d, 1)} for t, d in stage.timings],
                   "checkpoints": {k: str(v) for k, v in checkpoints.items()}, "per_class": per_class,
                   "quality_checks": checks}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))

        print("\n" + "=" * 72)
        print(f"demo finished in {format_duration(total)}")
        for t, d in stage.timings:
            print(f"  {format_duration(d):>9}  {t}")
        print("\nInception Score from the judge (the study: 2.6 real vs 2.4 generated on 300 images of all classes,")
        print("which is the 'pooled' row; per class, a confident judge scores about 1 by construction)")
        print(results_table(results))
        print(f"\nquality targets ({sum(c['ok'] for c in checks)} of {len(checks)} met"
              f"{'; --fast trains for seconds and is not expected to meet them' if _FAST.value else ''}):")
        print(quality_table(checks))
        print(f"\npictures:     {fig_dir}/ and {eval_dir}/figures/")
        print(f"results:      {eval_dir}/results.json, {clf_dir}/metrics.json")
        print(f"serving:      {export_dir}/")
        print(f"synthetic:    {synthetic_dir}/ (privacy report: {synthetic_dir}/privacy/report.json)")
        print(f"tensorboard:  tensorboard --logdir {out}")

    finally:  # a failed or interrupted demo leaves no stage running behind it
        stage.stop_background()

if __name__ == "__main__":
    run(main)
