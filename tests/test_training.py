"""StyleGAN2 training loop: optimizer/EMA math, tiny runs, tf.distribute, XLA, mixed precision,
TensorBoard output, checkpoint API and launcher errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.config import resolve_preset
from tfstylegan.data.classes import class_layout
from tfstylegan.data.pipeline import read_manifest
from tfstylegan.data.stream import RealImageStream
from tfstylegan.losses import style_mix
from tfstylegan.networks import build_networks
from tfstylegan.training import checkpoint as ckpt_lib
from tfstylegan.training.distribute import get_strategy
from tfstylegan.training.loop import train
from tfstylegan.training.trainer import build_trainer, ema_beta, lazy_adam_hparams, make_optimizer
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data16(phantom_data):
    return str(phantom_data)


def _trainer(data, strategy=None, class_name="glioma", conditional=False, with_mask=False, d_changes=None,
             **train_changes):
    manifest = read_manifest(data)
    layout = class_layout(manifest, data, class_name, conditional)
    preset = resolve_preset("tiny", manifest, layout, with_mask, train_changes)
    if d_changes:
        preset = dataclasses.replace(preset, discriminator=preset.discriminator.replace(**d_changes))
    keras.utils.set_random_seed(0)
    return build_trainer(preset, layout, strategy or tf.distribute.get_strategy())


def _weights(trainer, nets=("G", "D", "G_ema")):
    return {f"{n}/{i}/{v.name}": v.numpy().copy() for n in nets for i, v in enumerate(getattr(trainer, n).variables)}


def _copy_weights(src, dst):
    for n in ("G", "D", "G_ema"):
        for a, b in zip(getattr(src, n).variables, getattr(dst, n).variables):
            b.assign(a.numpy())


def _batches(data, n, class_name="glioma", with_mask=False, batch=4):
    stream = RealImageStream(data, class_name, with_mask, False, 0, batch)
    return [next(stream) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Pure math.

def test_lazy_adam_hparams_match_the_paper():
    h = lazy_adam_hparams(0.0025, (0.0, 0.99), 1e-8, 16)
    c = 16 / 17
    assert h["learning_rate"] == pytest.approx(0.0025 * c)
    assert h["beta_1"] == 0.0
    assert h["beta_2"] == pytest.approx(0.99 ** c)
    assert h["epsilon"] == 1e-8
    h4 = lazy_adam_hparams(0.002, (0.5, 0.99), 1e-8, 4)
    assert h4["beta_1"] == pytest.approx(0.5 ** 0.8) and h4["learning_rate"] == pytest.approx(0.0016)
    h1 = lazy_adam_hparams(0.002, (0.5, 0.99), 1e-8, 1)  # as the reference: every step, two half-rate steps
    assert h1["learning_rate"] == pytest.approx(0.001) and h1["beta_2"] == pytest.approx(0.99 ** 0.5)
    opt = make_optimizer(0.0025, (0.0, 0.99), 1e-8, 16, mixed_precision=False)
    assert float(opt.learning_rate) == pytest.approx(0.0025 * c)
    assert opt.beta_2 == pytest.approx(0.99 ** c)
    assert isinstance(make_optimizer(0.0025, (0.0, 0.99), 1e-8, 4, True), keras.optimizers.LossScaleOptimizer)


def test_ema_beta_ramp_up():
    assert ema_beta(0, 16, 10.0, 0.05) == 0.0  # G_ema starts as a copy of G
    assert ema_beta(1000, 16, 10.0, 0.05) == pytest.approx(0.5 ** (16 / 50))  # ramping: 5% of 1000 images
    assert ema_beta(10 ** 7, 16, 10.0, 0.05) == pytest.approx(0.5 ** (16 / 10000))  # capped at ema_kimg
    assert ema_beta(0, 16, 10.0, None) == pytest.approx(0.5 ** (16 / 10000))  # no ramp-up
    assert ema_beta(0, 16, 0.0, None) == 0.0


def test_style_mix_one_cutoff_per_batch():
    ws, other = tf.zeros([6, 8, 3]), tf.ones([6, 8, 3])
    seen = set()
    for k in range(20):
        mixed = style_mix(ws, other, 1.0, tf.constant([k, 1], tf.int64)).numpy()
        per_ws = mixed[0, :, 0]
        cutoff = int(np.argmax(per_ws)) if per_ws.any() else 8
        assert 1 <= cutoff < 8 and np.all(per_ws[cutoff:] == 1) and np.all(per_ws[:cutoff] == 0)
        assert np.all(mixed == mixed[:1])  # the same cutoff for every sample
        seen.add(cutoff)
    assert len(seen) > 2
    np.testing.assert_array_equal(style_mix(ws, other, 0.0, tf.constant([0, 1], tf.int64)), ws)


# ---------------------------------------------------------------------------------------------
# Training steps.

@pytest.mark.slow
def test_tiny_steps_finite_change_weights_and_are_reproducible(data16):
    batches = _batches(data16, 2)
    runs = []
    for _ in range(2):
        trainer = _trainer(data16)
        before = _weights(trainer)
        stats = [trainer.train_step(real, labels, step, 4 * step) for step, (real, labels) in enumerate(batches)]
        runs.append((before, _weights(trainer), stats))
    (before, after, stats), (before2, after2, stats2) = runs
    for s in stats:
        assert all(np.all(np.isfinite(v.numpy())) for v in s.values()), s
    assert {"G_loss", "D_loss", "pl_penalty", "r1_penalty", "real_sign", "fake_sign"} <= set(stats[0])
    for net in ("G", "D", "G_ema"):
        changed = [k for k in before if k.startswith(net + "/") and not np.array_equal(before[k], after[k])]
        assert len(changed) > 5, net
    # two runs with the same seed: same initial weights and the same updates
    for k in before:
        np.testing.assert_array_equal(before[k], before2[k])
        np.testing.assert_allclose(after[k], after2[k], rtol=0, atol=1e-6, err_msg=k)
    assert float(stats[1]["G_loss"]) == pytest.approx(float(stats2[1]["G_loss"]), abs=1e-6)


def _deltas(trainer, batch, **kw):
    before = _weights(trainer, ("G", "D"))
    stats = trainer.train_step(*batch, 0, 0)
    after = _weights(trainer, ("G", "D"))
    return {k: after[k] - before[k] for k in before}, {k: float(v) for k, v in stats.items() if v.shape.rank == 0}


def _assert_same_update(d1, d2, rtol, skip_noise_strength=False):
    scale = max(np.abs(v).max() for v in d1.values())
    for k in d1:
        if skip_noise_strength and k.endswith("/noise_strength"):
            continue
        np.testing.assert_allclose(d2[k], d1[k], rtol=rtol, atol=rtol * scale, err_msg=k)


# eps=1 makes Adam's first step proportional to the gradient (with the default 1e-8 it is
# lr * sign(g), which turns rounding noise in near-zero gradients into full-size steps).
_COMPARE = dict(pl_weight=0.0, epsilon=1.0, aug="ada", aug_p=0.3)


@pytest.mark.slow
def test_two_replicas_give_the_same_update_as_one_device(data16):
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, "tests/conftest.py should configure two logical CPUs"
    batch = _batches(data16, 1, class_name=None)[0]
    one = _trainer(data16, class_name=None, conditional=True, d_changes={"mbstd_group_size": 1}, **_COMPARE)
    two = _trainer(data16, strategy=strategy, class_name=None, conditional=True, d_changes={"mbstd_group_size": 1},
                   **_COMPARE)
    _copy_weights(one, two)
    d1, s1 = _deltas(one, batch)
    d2, s2 = _deltas(two, batch)
    for k in ("G_loss", "D_loss", "r1_penalty", "real_sign"):
        assert s2[k] == pytest.approx(s1[k], rel=1e-4, abs=1e-6), k
    # The synthesis noise is drawn per replica (its shape is the local batch), so the gradient of
    # the noise strengths (the noise's correlation with dL/dx) differs; everything else must agree.
    _assert_same_update(d1, d2, rtol=1e-3, skip_noise_strength=True)
    assert float(two.pipe.p.numpy()) == pytest.approx(float(one.pipe.p.numpy()))


def test_batch_must_divide_over_replicas(data16):
    with pytest.raises(UserError, match="not divisible by the 2 replicas"):
        _trainer(data16, strategy=get_strategy("mirrored"), batch_size=3)
    with pytest.raises(UserError, match="minibatch-stddev group"):
        _trainer(data16, batch_size=3)


@pytest.mark.slow
def test_xla_agrees_with_eager(data16):
    batch = _batches(data16, 1)[0]
    # Without augmentation: XLA's CPU compile of Gmain through the ADA resampling gradient takes
    # minutes (142 s measured for tiny); the augment pipe's own XLA test covers that op.
    compare = dict(_COMPARE, aug="none")
    eager = _trainer(data16, xla=False, **compare)
    xla = _trainer(data16, xla=True, **compare)
    _copy_weights(eager, xla)
    d1, s1 = _deltas(eager, batch)
    d2, s2 = _deltas(xla, batch)
    for k in ("G_loss", "D_loss", "r1_penalty"):
        assert np.isfinite(s2[k]) and s2[k] == pytest.approx(s1[k], rel=1e-3, abs=1e-5), k
    # TF's stateless normal (the synthesis noise) draws other numbers under XLA, so only the noise
    # strengths' gradients (the noise's correlation with dL/dx) may differ.
    _assert_same_update(d1, d2, rtol=2e-3, skip_noise_strength=True)


@pytest.mark.slow
def test_mixed_precision_finite_and_close_to_float32(data16):
    batch = _batches(data16, 1)[0]
    fp32 = _trainer(data16, **_COMPARE)
    mixed = _trainer(data16, mixed_precision=True, **_COMPARE)
    assert mixed.preset.generator.num_fp16_res > 0 and mixed.preset.generator.conv_clamp == 256
    assert any(b.compute_dtype == "float16" for b in mixed.G.synthesis.blocks)
    _copy_weights(fp32, mixed)
    d1, s1 = _deltas(fp32, batch)
    d2, s2 = _deltas(mixed, batch)
    for k in ("G_loss", "D_loss", "r1_penalty"):
        assert np.isfinite(s2[k]) and s2[k] == pytest.approx(s1[k], rel=2e-2, abs=1e-3), k
    v1 = np.concatenate([v.ravel() for v in d1.values()])
    v2 = np.concatenate([v.ravel() for v in d2.values()])
    assert np.all(np.isfinite(v2)) and np.abs(v2).max() > 0
    assert np.corrcoef(v1, v2)[0, 1] > 0.99


# ---------------------------------------------------------------------------------------------
# The library entry end to end: outputs, TensorBoard, checkpoint API.

def _events(folder):
    from tensorflow.core.util import event_pb2  # noqa: F401  (registers the proto)

    scalars, images = {}, {}
    for path in Path(folder).glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "images":
                    images.setdefault(value.tag, []).append(tensor)
                elif plugin == "scalars":
                    scalars.setdefault(value.tag, []).append(float(tensor))
    return scalars, images


@pytest.mark.slow
def test_conditional_with_mask_run_outputs_and_checkpoint_api(data16, tmp_path):
    run = tmp_path / "00000-tiny-cond"
    stats = train(run, "tiny", data16, conditional=True, with_mask=True, verbose=False,
                  train_overrides={"total_kimg": 0.016, "kimg_per_tick": 0.008})
    assert stats["Progress/kimg"] == pytest.approx(0.016) and np.isfinite(stats["Loss/G/loss"])
    info = ckpt_lib.load_run_info(run)
    assert info["class_names"] == ["meningioma", "glioma", "pituitary"] and info["conditional"] and info["with_mask"]
    assert info == json.loads((run / "checkpoints" / "run.json").read_text())
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [x["Progress/tick"] for x in lines] == [1, 2]

    scalars, images = _events(run / "tensorboard")
    for tag in ("Loss/G/loss", "Loss/D/loss", "Progress/augment", "Timing/sec_per_kimg", "Timing/img_per_sec",
                "Loss/signs/real", "Resources/peak_host_mem_gb"):
        assert len(scalars[tag]) == 2 and all(np.isfinite(scalars[tag])), tag
    assert set(images) == {"samples/meningioma", "samples/glioma", "samples/pituitary"}
    img = images["samples/glioma"][-1]  # [width, height, encoded png]
    decoded = tf.io.decode_png(img[2]).numpy()
    assert decoded.shape == (4 * 17 - 1, 8 * (2 * 16 + 1) - 1, 1)  # 8x4 grid, image | mask side by side
    assert decoded.std() > 0
    assert (run / "samples" / "reals.png").is_file()
    # one grid per tick, named by images seen: ticks of 8 images no longer overwrite each other
    assert sorted(p.name for p in (run / "samples").glob("fakes*.png")) == ["fakes000000008.png", "fakes000000016.png"]

    G, info2 = ckpt_lib.load_generator(run)
    assert info2 == info and G.c_dim == 3
    out = G(tf.random.normal([2, G.z_dim]), G.one_hot([0, 2]), noise_mode="const")
    assert out.shape == (2, 16, 16, 2)
    G2, D2, G_ema2, _ = ckpt_lib.load_networks(run / "checkpoints")
    assert D2(out, G.one_hot([0, 2])).shape == (2, 1)
    for a, b in zip(G.variables, G_ema2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert ckpt_lib.is_training_checkpoint(ckpt_lib.latest_checkpoint(run))

    exported = ckpt_lib.save_networks(tmp_path / "imported", info, G2, D2, G_ema2)
    assert not ckpt_lib.is_training_checkpoint(ckpt_lib.latest_checkpoint(exported))
    G3, D3, G_ema3, _ = ckpt_lib.load_networks(exported)
    for a, b in zip(D2.variables + G_ema2.variables, D3.variables + G_ema3.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(UserError, match="neither a run folder"):
        ckpt_lib.load_run_info(tmp_path)


def test_resume_from_networks_only_checkpoint_starts_at_kimg_zero(data16, tmp_path):
    manifest = read_manifest(data16)
    layout = class_layout(manifest, data16, "glioma", False)
    preset = resolve_preset("tiny", manifest, layout, False)
    G, D, G_ema = build_networks(preset)
    ckpt_lib.save_networks(tmp_path / "pretrained", {"preset": preset.to_dict(), "class_names": ["glioma"]},
                           G, D, G_ema)
    run = tmp_path / "run"
    stats = train(run, "tiny", data16, class_name="glioma", resume=tmp_path / "pretrained", tensorboard=False,
                  verbose=False, train_overrides={"total_kimg": 0.004, "kimg_per_tick": 0.004})
    assert stats["Progress/kimg"] == pytest.approx(0.004) and stats["Progress/step"] == 1


def test_unknown_class_and_missing_mask_are_user_errors(data16, tmp_path):
    manifest = read_manifest(data16)
    with pytest.raises(UserError, match="has no class 'notumor'"):
        class_layout(manifest, data16, "notumor", False)
    with pytest.raises(UserError, match="exclude each other"):
        class_layout(manifest, data16, "glioma", True)
    no_mask = dict(manifest, has_mask=False)
    with pytest.raises(UserError, match="--with_mask"):
        resolve_preset("tiny", no_mask, class_layout(manifest, data16, "glioma", False), True)


def test_launcher_errors_exit_1(data16, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmds = [[sys.executable, "-m", "launchers.train_stylegan", "--data", str(tmp_path / "nope"), "--out",
             str(tmp_path / "runs")],
            [sys.executable, "-m", "launchers.train_stylegan", "--data", data16, "--out", str(tmp_path / "runs"),
             "--preset", "tiny", "--class_name", "astrocytoma"]]
    procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    (out1, err1, rc1), (out2, err2, rc2) = results
    assert rc1 == 1 and "error:" in err1 and "does not exist" in err1 and "Traceback" not in err1
    assert rc2 == 1 and "error:" in err2 and "astrocytoma" in err2 and "Traceback" not in err2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_study_flagfiles_parse(tmp_path):
    code = (
        "import copy, json, sys\n"
        "from absl import flags\n"
        "import launchers.train_stylegan  # noqa: F401 (defines the flags)\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    fv = flags.FlagValues()\n"
        "    for f in flags.FLAGS.get_key_flags_for_module('launchers.train_stylegan'):\n"
        "        fv[f.name] = copy.deepcopy(f)\n"
        "    fv(['prog', '--flagfile=launchers/configs/' + name])\n"
        "    out[name] = {k: fv[k].value for k in ('preset', 'class_name', 'conditional', 'resume', 'kimg', 'aug',\n"
        "                                           'target', 'mirror', 'freeze_d', 'data')}\n"
        "print(json.dumps(out))\n")
    names = [f"figshare_256_{c}.cfg" for c in ("meningioma", "glioma", "pituitary")] + ["figshare_32_stage1.cfg"]
    proc = subprocess.run([sys.executable, "-c", code, *names], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    for c in ("meningioma", "glioma", "pituitary"):
        cfg = parsed[f"figshare_256_{c}.cfg"]
        assert cfg["class_name"] == c and cfg["preset"] == "paper256" and cfg["resume"]
        assert cfg["aug"] == "ada" and cfg["target"] == 0.6 and cfg["freeze_d"] == 4
    stage1 = parsed["figshare_32_stage1.cfg"]
    assert stage1["conditional"] and stage1["class_name"] is None and stage1["data"].endswith("figshare32")
