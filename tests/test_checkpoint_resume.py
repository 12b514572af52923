"""Crash safety and multi-process training, each in real subprocesses (tests/_train_worker.py).

- A run SIGKILLed while writing a checkpoint leaves `latest_checkpoint` on the previous,
  complete checkpoint; started again it ends with bit-identical weights (and kimg, ADA p) to an
  uninterrupted run (deterministic ops on CPU).
- A run sent SIGTERM in the middle of a tick saves at the next step boundary and exits 143;
  started again it too ends bit-identical to the uninterrupted run.
- Two worker processes on 127.0.0.1 (TF_CONFIG, MultiWorkerMirroredStrategy) train the tiny
  config together and end with identical weights.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfstylegan.training import checkpoint as ckpt_lib

WORKER = str(Path(__file__).with_name("_train_worker.py"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data16(phantom_data):
    return str(phantom_data)


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


def _start(args, **env):
    return subprocess.Popen([sys.executable, WORKER, *args], cwd=REPO, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=400):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def uninterrupted(data16, tmp_path_factory):
    """The reference: 8 steps of batch 4, a tick (and a checkpoint) every 2 steps; its run folder and weights."""
    root = tmp_path_factory.mktemp("uninterrupted")
    rc, out = _finish(_start(["--data", data16, "--run_dir", str(root / "full"), "--dump", str(root / "full.npz")]))
    assert rc == 0, out
    return root / "full", _load(root / "full.npz")


@pytest.mark.slow
def test_sigkill_during_checkpoint_then_resume_matches_uninterrupted_run(data16, uninterrupted, tmp_path):
    killed = _start(["--data", data16, "--run_dir", str(tmp_path / "killed"), "--dump", str(tmp_path / "x.npz"),
                     "--kill_at_save", "2"])
    rc_killed, out_killed = _finish(killed)
    assert rc_killed == -signal.SIGKILL, out_killed
    assert not (tmp_path / "x.npz").exists()

    # The kill hit the second save: the latest checkpoint is still the complete first one.
    latest = ckpt_lib.latest_checkpoint(tmp_path / "killed")
    assert Path(latest).name == "ckpt-2"
    G, D, G_ema, info = ckpt_lib.load_networks(tmp_path / "killed")
    assert info["class_name"] == "glioma" and ckpt_lib.is_training_checkpoint(latest)

    # Started again on the same run folder, it continues from step 2 (kimg 0.008) to the end.
    resumed = _start(["--data", data16, "--run_dir", str(tmp_path / "killed"), "--dump",
                      str(tmp_path / "resumed.npz")])
    rc, out = _finish(resumed)
    assert rc == 0, out
    a, b = uninterrupted[1], _load(tmp_path / "resumed.npz")
    assert a.keys() == b.keys() and len(a) > 50
    assert float(a["kimg"]) == float(b["kimg"]) == pytest.approx(0.032)
    assert float(b["p"]) == float(a["p"])
    mismatched = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not mismatched, mismatched
    stats = (tmp_path / "killed" / "stats.jsonl").read_text().splitlines()
    ticks = [json.loads(line)["Progress/tick"] for line in stats]
    assert ticks == [1, 2, 3, 4]  # tick 2 was logged before the kill, then redone from the checkpoint
    ps = [json.loads(line)["Progress/augment"] for line in (uninterrupted[0] / "stats.jsonl").read_text().splitlines()]
    assert max(ps) > 0  # ADA moved p, and the resumed run followed the same path


@pytest.mark.slow
def test_sigterm_mid_tick_saves_then_resume_matches_uninterrupted_run(data16, uninterrupted, tmp_path):
    # Ticks of 4 steps here (2 in the reference: ticks do not change the training), SIGTERM during step 5.
    run = str(tmp_path / "run")
    rc, out = _finish(_start(["--data", data16, "--run_dir", run, "--dump", str(tmp_path / "x.npz"),
                              "--kimg_per_tick", "0.016", "--signal_at_step", "5", "--signal", "TERM"]))
    assert rc == 128 + signal.SIGTERM, out
    assert f"stopped by SIGTERM at tick 2 (kimg 0.024, step 6); saved {run}/checkpoints/ckpt-6." in out
    assert not (tmp_path / "x.npz").exists()
    assert Path(ckpt_lib.latest_checkpoint(run)).name == "ckpt-6"

    rc, out = _finish(_start(["--data", data16, "--run_dir", run, "--dump", str(tmp_path / "resumed.npz"),
                              "--kimg_per_tick", "0.016"]))
    assert rc == 0, out
    a, b = uninterrupted[1], _load(tmp_path / "resumed.npz")
    assert a.keys() == b.keys() and float(b["kimg"]) == pytest.approx(0.032) and float(b["p"]) == float(a["p"])
    mismatched = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not mismatched, mismatched


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_together_and_agree(data16, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(_start(["--data", data16, "--run_dir", str(tmp_path / f"worker{i}"), "--dump",
                             str(tmp_path / f"w{i}.npz"), "--strategy", "multi_worker", "--total_kimg", "0.008",
                             "--kimg_per_tick", "0.008"], TF_CONFIG=tf_config))
    results = [_finish(p) for p in procs]
    for rc, out in results:
        assert rc == 0, out
    w0, w1 = _load(tmp_path / "w0.npz"), _load(tmp_path / "w1.npz")
    assert float(w0["kimg"]) == pytest.approx(0.008)
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)
    # only the chief writes the run folder
    assert (tmp_path / "worker0" / "checkpoints" / "checkpoint").is_file()
    assert not (tmp_path / "worker1" / "checkpoints").exists()
    info = ckpt_lib.load_run_info(tmp_path / "worker0")
    assert info["options"]["num_replicas"] == 2
