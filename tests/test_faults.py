"""Faults during long work: divergence, signals, damaged checkpoints, a full disk, killed writers, permissions.

Most training tests here replace `Trainer.train_step` by a cheap deterministic stand-in (no graph
tracing): what is tested is the loop around it (ticks, checks, saves, resume), not the maths. The
bit-exact resume after SIGTERM with real steps is in test_checkpoint_resume.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training.guards import TrainingDiverged, TrainingInterrupted
from tfstylegan.training.loop import train
from tfstylegan.training.trainer import Trainer
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import atomic_dir, atomic_open, atomic_path, remove_stale_temporaries, write_json

REPO = Path(__file__).resolve().parents[1]
WORKER = str(Path(__file__).with_name("_train_worker.py"))


def _fake_steps(monkeypatch, nan_weights_at=None, nan_losses_at=(), signal_at=None):
    """A stand-in `train_step`: nudges a G weight; NaN weights/losses or a real signal at chosen steps."""

    def train_step(self, real, labels, step, cur_nimg):
        v = self.G.trainable_variables[0]
        v.assign_add(tf.fill(v.shape, 1e-3))
        if nan_weights_at is not None and step >= nan_weights_at:
            v.assign(tf.fill(v.shape, float("nan")))
        if signal_at is not None and step == signal_at[0]:
            os.kill(os.getpid(), signal_at[1])
        return {"G_loss": tf.constant(float("nan") if step in nan_losses_at else 0.5), "D_loss": tf.constant(0.7)}

    monkeypatch.setattr(Trainer, "train_step", train_step)


def _train(run, data, keep=3, minutes=None, **overrides):
    """Tiny glioma run, batch 4: a tick of 0.008 kimg is 2 steps."""
    return train(run, "tiny", data, class_name="glioma", tensorboard=False, keep_checkpoints=keep,
                 snapshot_minutes=minutes, train_overrides={"total_kimg": 0.04, "kimg_per_tick": 0.008,
                                                            "snapshot_ticks": 1, **overrides})


def _ckpt_files(run):
    return sorted(p.name for p in (Path(run) / "checkpoints").iterdir() if p.name.startswith("ckpt-"))


def _ticks(run):
    return [json.loads(line)["Progress/tick"] for line in (Path(run) / "stats.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def three_checkpoints(phantom_data, tmp_path_factory):
    """A 6-step run checkpointed by --snapshot_minutes alone (snapshot_ticks 100): ckpt-2, ckpt-4, ckpt-6."""
    run = tmp_path_factory.mktemp("three") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _fake_steps(mp)
        _train(run, phantom_data, minutes=1e-9, total_kimg=0.024, snapshot_ticks=100)
    return run


# -- divergence ----------------------------------------------------------------------------------------------------

def test_diverging_run_stops_at_the_tick_and_keeps_its_good_checkpoint(phantom_data, tmp_path, monkeypatch):
    _fake_steps(monkeypatch, nan_weights_at=5)  # tick 3 is steps 4, 5
    with pytest.raises(TrainingDiverged, match=r"diverged at tick 3 \(kimg 0.024, step 6\): non-finite values .*"
                                               r"G/.* the last good checkpoint is .*ckpt-4"):
        _train(tmp_path / "run", phantom_data, keep=1)  # keep 1: a bad save would rotate the good one out
    assert _ckpt_files(tmp_path / "run") == ["ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert ckpt_lib.verify_checkpoint(ckpt_lib.latest_checkpoint(tmp_path / "run")) is None  # finite, readable
    assert _ticks(tmp_path / "run") == [1, 2, 3]  # the bad tick is logged (losses as null), then the stop


def test_losses_nonfinite_for_a_whole_tick_stop_the_run_a_few_only_warn(phantom_data, tmp_path, monkeypatch,
                                                                        capsys):
    _fake_steps(monkeypatch, nan_losses_at={1, 2, 3})  # tick 1: 1 of 2 steps; tick 2: both
    with pytest.raises(TrainingDiverged, match="tick 2 .*non-finite losses in all 2 steps of the tick.*ckpt-2"):
        _train(tmp_path / "run", phantom_data)
    assert "warning: tick 1: 1 of 2 steps had non-finite losses" in capsys.readouterr().out
    assert _ckpt_files(tmp_path / "run") == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]


@pytest.mark.slow
def test_nan_through_the_launcher_exits_1_naming_the_tick_and_checkpoint(phantom_data, tmp_path):
    r = subprocess.run([sys.executable, WORKER, "--launcher_nan_at_step", "3", "--", "--data", str(phantom_data),
                        "--out", str(tmp_path), "--preset", "tiny", "--class_name", "glioma", "--kimg", "0.04",
                        "--kimg_per_tick", "0.008", "--snapshot_ticks", "1", "--notensorboard"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    (run,) = tmp_path.iterdir()
    err = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(err) == 1 and err[-1].startswith("error: training diverged at tick 2 (kimg 0.016, step 4)"), r.stderr
    assert f"the last good checkpoint is {run}/checkpoints/ckpt-2" in err[-1]
    assert "done:" not in r.stdout
    assert _ckpt_files(run) == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]


# -- signals and snapshot intervals --------------------------------------------------------------------------------

def test_sigterm_and_sigint_save_at_the_next_step_then_resume_continues(phantom_data, tmp_path, monkeypatch, capfd):
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    long_ticks = {"kimg_per_tick": 0.016, "snapshot_ticks": 100}  # 4 steps a tick, no scheduled save before the end
    _fake_steps(monkeypatch, signal_at=(5, signal.SIGTERM))
    with pytest.raises(TrainingInterrupted) as e:
        _train(run, phantom_data, **long_ticks)
    assert e.value.exit_code == 143 and Path(e.value.checkpoint).name == "ckpt-6"
    assert "stopped by SIGTERM at tick 2 (kimg 0.024, step 6)" in str(e.value)
    assert "received SIGTERM: saving a checkpoint after the current step" in capfd.readouterr().err
    assert _ckpt_files(run) == ["ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert _ticks(run) == [1, 2]  # tick 2 closed early at the signal
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

    _fake_steps(monkeypatch, signal_at=(7, signal.SIGINT))  # started again on the folder: continues at step 6
    with pytest.raises(TrainingInterrupted) as e:
        _train(run, phantom_data, **long_ticks)
    assert e.value.exit_code == 130 and Path(e.value.checkpoint).name == "ckpt-8"

    _fake_steps(monkeypatch)
    last = _train(run, phantom_data, **long_ticks)
    assert last["Progress/kimg"] == pytest.approx(0.04) and last["Progress/step"] == 10
    assert _ticks(run) == [1, 2, 3, 4]
    assert Path(ckpt_lib.latest_checkpoint(run)).name == "ckpt-10"


def test_snapshot_minutes_checkpoint_between_scheduled_snapshots_and_grids_never_overwrite(three_checkpoints):
    run = three_checkpoints
    assert _ckpt_files(run) == [f"ckpt-{n}.{ext}" for n in (2, 4, 6) for ext in ("data-00000-of-00001", "index")]
    # ticks of 8 images (< 1 kimg): one grid each, named by images seen
    assert sorted(p.name for p in (run / "samples").glob("fakes*.png")) == [
        "fakes000000008.png", "fakes000000016.png", "fakes000000024.png"]


# -- damaged checkpoints --------------------------------------------------------------------------------------------

def _truncate(prefix):
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 10])  # cuts into every network's tensors


def _flip_bit(prefix):
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    data.write_bytes(bytes(raw))


def test_resume_falls_back_to_the_newest_intact_checkpoint(three_checkpoints, phantom_data, tmp_path, monkeypatch,
                                                           capsys):
    run = tmp_path / "run"
    shutil.copytree(three_checkpoints, run)
    ckpts = run / "checkpoints"
    _truncate(ckpts / "ckpt-6")
    _flip_bit(ckpts / "ckpt-4")
    lines = []
    assert ckpt_lib.newest_intact_checkpoint(run, say=lines.append) == str(ckpts / "ckpt-2")
    assert lines == [f"warning: {ckpts}/ckpt-6 is truncated (its .data file is shorter than its .index says: a "
                     "copy or a write was cut off); resuming from ckpt-2, the newest intact checkpoint.",
                     f"warning: {ckpts}/ckpt-4 is damaged (a checksum does not match: a flipped bit or a partial "
                     "overwrite); resuming from ckpt-2, the newest intact checkpoint."]
    # loaders (generate, export, evaluate) refuse with one line and name the others
    with pytest.raises(UserError, match=r"ckpt-6 is truncated .*Other checkpoints in .*: ckpt-4, ckpt-2") as e:
        ckpt_lib.load_generator(run)
    assert "\n" not in str(e.value)

    (ckpts / "ckpt-9_temp").mkdir()  # and what a kill while saving leaves
    stale_png = run / "samples" / f".fakes000000032.png.{_host()}-{_dead_pid()}.k1ll3d.tmp"
    stale_png.write_bytes(b"half a png")
    _fake_steps(monkeypatch)
    last = _train(run, phantom_data, total_kimg=0.032)  # started again on the folder: from ckpt-2 to step 8
    assert last["Progress/step"] == 8
    out, err = capsys.readouterr()
    assert "ckpt-6 is truncated" in err and "ckpt-4 is damaged" in err
    assert f"removed what an interrupted run left in {run}: ckpt-9_temp/, samples/{stale_png.name}" in out
    assert not stale_png.exists() and not (ckpts / "ckpt-9_temp").exists()
    for name in ("ckpt-4", "ckpt-6", "ckpt-8"):  # the damaged ones were written again by the resumed run
        assert ckpt_lib.verify_checkpoint(str(ckpts / name)) is None

    _truncate(ckpts / "ckpt-8")
    _truncate(ckpts / "ckpt-6")
    _truncate(ckpts / "ckpt-4")
    with pytest.raises(UserError, match=r"has no intact checkpoint: ckpt-8 is truncated .*; ckpt-6 .*; ckpt-4 "):
        ckpt_lib.newest_intact_checkpoint(run)


@pytest.mark.slow
def test_launcher_refusals_leave_no_run_folder(three_checkpoints, phantom_data, tmp_path):
    """A damaged --resume, another --preset on resume, --gamma inf: one line, exit 1, no (empty) run folder."""
    broken = tmp_path / "broken"
    shutil.copytree(three_checkpoints, broken)
    for n in (2, 4, 6):
        _truncate(broken / "checkpoints" / f"ckpt-{n}")
    base = [sys.executable, "-m", "launchers.train_stylegan", "--data", str(phantom_data), "--class_name", "glioma",
            "--out", str(tmp_path / "runs")]
    cases = {"has no intact checkpoint: ckpt-6 is truncated": ["--resume", str(broken)],
             f"--preset demo: --resume {three_checkpoints} continues a 'tiny' run": [
                 "--resume", str(three_checkpoints), "--preset", "demo"],
             "--gamma must be a finite number. Received: --gamma=inf": ["--gamma", "inf", "--preset", "tiny"]}
    for expected, args in cases.items():
        r = subprocess.run(base + args, cwd=REPO, capture_output=True, text=True, timeout=600)
        errors = [line for line in r.stderr.splitlines() if line.startswith(("error", "Traceback", "warning"))]
        assert r.returncode == 1 and len(errors) == 1 and expected in errors[0], r.stderr
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_loaders_refuse_a_nonfinite_model(tmp_path):
    from tfstylegan.config import get_preset
    from tfstylegan.export.saved_model import export_checkpoint_generator, export_generator
    from tfstylegan.networks import Discriminator, Generator

    preset = get_preset("tiny")
    G, D, G_ema = (Generator(preset.generator, name="G"), Discriminator(preset.discriminator, name="D"),
                   Generator(preset.generator, name="G_ema"))
    G_ema.synthesis.trainable_variables[3].assign(tf.fill(G_ema.synthesis.trainable_variables[3].shape, np.inf))
    info = {"preset": preset.to_dict(), "class_names": ["glioma"], "class_name": "glioma", "conditional": False,
            "with_mask": False, "data": None, "options": {}}
    folder = ckpt_lib.save_networks(tmp_path / "nan", info, G, D, G_ema)
    with pytest.raises(UserError, match=r"ckpt-0 holds non-finite weights \(NaN/inf in 1 tensors, e.g. G_ema/"):
        ckpt_lib.load_generator(folder)
    ckpt_lib.load_generator(folder, which="G")  # G itself is finite
    with pytest.raises(UserError, match="non-finite weights"):
        export_checkpoint_generator(folder, tmp_path / "serving")
    with pytest.raises(UserError, match="Refusing to export generator_glioma: the generator holds NaN/inf"):
        export_generator(G_ema, tmp_path / "serving", "generator_glioma")
    assert not (tmp_path / "serving").exists() or not list((tmp_path / "serving").rglob("*"))
    assert "holds NaN/inf values" in ckpt_lib.verify_checkpoint(str(folder / "ckpt-0"))


# -- a full disk ------------------------------------------------------------------------------------------------------

def test_disk_full_during_a_checkpoint_leaves_no_debris_and_the_previous_intact(phantom_data, tmp_path, monkeypatch):
    """ENOSPC as TensorFlow 2.21 reports it on a full tmpfs: ResourceExhaustedError, an empty ckpt-N_temp/ left."""
    real_save = tf.train.CheckpointManager.save
    calls = []

    def save(self, checkpoint_number=None, **kw):
        calls.append(checkpoint_number)
        if len(calls) == 2:
            temp = Path(self.directory) / f"ckpt-{checkpoint_number}_temp"
            temp.mkdir()
            (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
            raise tf.errors.ResourceExhaustedError(None, None, "")
        return real_save(self, checkpoint_number=checkpoint_number, **kw)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    _fake_steps(monkeypatch)
    with pytest.raises(ckpt_lib.DiskFull, match=r"No space left on device while writing .*ckpt-4 \(it needs about "
                                                r"\d+\.\d MB, \d+\.\d MB free there\)\. The partial files were removed "
                                                r"and the previous checkpoint .*ckpt-2 is intact"):
        _train(tmp_path / "run", phantom_data)
    assert _ckpt_files(tmp_path / "run") == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert ckpt_lib.verify_checkpoint(ckpt_lib.latest_checkpoint(tmp_path / "run")) is None


# -- killed writers, permissions ----------------------------------------------------------------------------------

def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    host = _host()
    dead, alive = _dead_pid(), os.getpid()
    stale_dir = tmp_path / f".data16.{host}-{dead}.abc123_x.tmp"
    stale_old = tmp_path / f".data16.{host}-{dead}.zz9.old"
    stale_file = tmp_path / f".img.png.{host}-{dead}.q1w2e3r4.tmp"
    live = tmp_path / f".data16.{host}-{alive}.k3y.tmp"
    other_host = tmp_path / f".data16.otherhost-{dead}.k3y.tmp"
    for d in (stale_dir, stale_old, live, other_host):
        d.mkdir()
        (d / "part").write_text("x")
    stale_file.write_text("x")
    with atomic_dir(tmp_path / "data16") as tmp:  # a new prepare into the same folder: its own debris goes
        (tmp / "manifest.json").write_text("{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["data16", live.name, other_host.name, stale_file.name])
    assert remove_stale_temporaries(tmp_path) == [stale_file]  # a launcher sweeping its output folder


def test_checkpoint_debris_of_a_killed_save_is_removed_on_restart(tmp_path):
    folder = tmp_path / "checkpoints"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])), str(folder), max_to_keep=3)
    manager.save(checkpoint_number=2)
    manager.save(checkpoint_number=4)
    for name in ("ckpt-6.index", "ckpt-6.data-00000-of-00001", "ckpt-4.data-00000-of-00001.tempstate123",
                 "checkpoint.tmp0a1b2c"):
        (folder / name).write_bytes(b"partial")  # a save killed before the state file named ckpt-6
    (folder / "ckpt-8_temp").mkdir()
    removed = ckpt_lib.remove_checkpoint_debris(folder)
    assert sorted(removed) == ["checkpoint.tmp0a1b2c", "ckpt-4.data-00000-of-00001.tempstate123",
                               "ckpt-6.data-00000-of-00001", "ckpt-6.index", "ckpt-8_temp/"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_atomic_outputs_get_the_umask_modes(tmp_path, umask, file_mode, dir_mode):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"1")
        with atomic_open(tmp_path / "c.txt") as f:
            f.write("c")
        with atomic_dir(tmp_path / "export") as tmp:
            (tmp / "saved_model.pb").write_bytes(b"1")
            (tmp / "variables").mkdir()
    finally:
        os.umask(previous)
    for name in ("a.json", "b.bin", "c.txt", "export/saved_model.pb"):
        assert (tmp_path / name).stat().st_mode & 0o777 == file_mode, name
    for name in ("export", "export/variables"):
        assert (tmp_path / name).stat().st_mode & 0o777 == dir_mode, name


def test_overwrite_leaves_no_old_or_tmp_debris(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file in the way")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "newer.txt").write_text("newer")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["newer.txt"]


# -- prepare: a split that small data cannot follow -----------------------------------------------------------

def test_split_small_data_cannot_follow_is_reported(phantom_data, tmp_path, capsys):
    from tfstylegan.data.prepare import prepare, split_patients, split_shortfall

    patients = {f"p{i}": [c] for i, c in enumerate(["glioma"] * 4 + ["meningioma"] * 4 + ["pituitary"] * 4)}
    assert split_shortfall(split_patients(patients, (0.6, 0.2, 0.2), 0), (0.6, 0.2, 0.2), tolerance=0.25) is None
    prepare(phantom_data.parent / "src", tmp_path / "d", resolution=16, split=(0.98, 0.01, 0.01), progress=False)
    err = capsys.readouterr().err
    assert ("warning: --split 0.98,0.01,0.01 on 12 patients became train 6 (50%) / val 3 (25%) / test 3 (25%): per "
            "class, a split asked for gets at least one patient") in err
