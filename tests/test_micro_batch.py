"""--batch_gpu (ADA's per-GPU micro-batch with gradient accumulation): the same global batch gives the same
update as without micro-batches, on one device and with two replicas; micro-batches keep the minibatch-std
groups of the whole batch."""

from __future__ import annotations

import dataclasses
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
from tfstylegan.training.distribute import get_strategy
from tfstylegan.training.trainer import build_trainer, check_batch
from tfstylegan.utils.errors import UserError

# eps=1 makes Adam's first step proportional to the gradient (with 1e-8 it is lr * sign(g), which turns
# rounding noise in near-zero gradients into full-size steps); R1 runs at step 0.
_COMPARE = dict(batch_size=8, epsilon=1.0, aug="ada", aug_p=0.3, augment_pipe="blit")  # blit: the cheapest graph


def _trainer(data, strategy=None, mbstd=None, **train_changes):
    """A conditional tiny trainer (the labels are sliced too) without synthesis noise: its draws have the shape of
    each micro-batch, so they differ from the whole batch's; with noise off the same update is expected."""
    manifest = read_manifest(data)
    layout = class_layout(manifest, data, None, True)
    preset = resolve_preset("tiny", manifest, layout, False, train_changes)
    preset = dataclasses.replace(preset, generator=preset.generator.replace(use_noise=False))
    if mbstd is not None:
        preset = dataclasses.replace(preset, discriminator=preset.discriminator.replace(mbstd_group_size=mbstd))
    keras.utils.set_random_seed(0)
    return build_trainer(preset, layout, strategy or tf.distribute.get_strategy())


def _copy_weights(src, dst):
    for n in ("G", "D", "G_ema"):
        for a, b in zip(getattr(src, n).variables, getattr(dst, n).variables):
            b.assign(a.numpy())


def _weights(trainer):
    return {f"{n}/{i}/{v.name}": v.numpy().copy()
            for n in ("G", "D") for i, v in enumerate(getattr(trainer, n).variables)}


def _step(trainer, batch):
    """(weight changes, scalar stats) of step 0 on `batch`."""
    before = _weights(trainer)
    stats = trainer.train_step(*batch, 0, 0)
    after = _weights(trainer)
    return {k: after[k] - before[k] for k in before}, {k: float(v) for k, v in stats.items() if v.shape.rank == 0}


def _assert_same(full, micro, stats_rtol=1e-5, pl_rtol=5e-3, update_tol=1e-3):
    (d1, s1), (d2, s2) = full, micro
    assert set(s1) == set(s2) and {"G_loss", "D_loss", "r1_penalty", "pl_penalty", "real_sign"} <= set(s1)
    for k in s1:
        # each micro-batch's path-length target lerp(pl_mean, mean(its lengths), decay) differs from the whole
        # batch's by decay * a difference of means (ADA's per-GPU pl_mean does the same): 1.3e-3 measured
        assert s2[k] == pytest.approx(s1[k], rel=pl_rtol if k == "pl_penalty" else stats_rtol, abs=1e-7), k
    for net in ("G", "D"):
        scale = max(np.abs(v).max() for k, v in d1.items() if k.startswith(net))
        worst = max(np.abs(d2[k] - d1[k]).max() for k in d1 if k.startswith(net))
        assert 0 < scale and worst <= update_tol * scale, (net, worst / scale)


def test_batch_gpu_must_divide_and_fit_the_groups(phantom_data):
    from tfstylegan.config import get_preset

    tiny = get_preset("tiny")
    t, d = tiny.train.replace(batch_size=8), tiny.discriminator  # mbstd group 2, pl shrink 2
    assert check_batch(t.replace(batch_gpu=4), d, 1) == 8 and check_batch(t.replace(batch_gpu=2), d, 2) == 4
    with pytest.raises(UserError, match="--batch_gpu 3 must divide the per-replica batch 8.*--batch_gpu 2"):
        check_batch(t.replace(batch_gpu=3), d, 1)
    with pytest.raises(UserError, match="--batch_gpu 8 must divide the per-replica batch 4"):
        check_batch(t.replace(batch_gpu=8), d, 2)
    # a micro-batch smaller than the group makes smaller groups (as ADA); one that is not a multiple is refused
    assert check_batch(t.replace(batch_gpu=2), d.replace(mbstd_group_size=4), 1) == 8
    with pytest.raises(UserError, match="--batch_gpu micro-batch 6 .* minibatch-stddev group 4"):
        check_batch(t.replace(batch_size=12, batch_gpu=6), d.replace(mbstd_group_size=4), 1)
    with pytest.raises(UserError, match="pl_batch_shrink 2"):
        check_batch(t.replace(batch_gpu=1), d.replace(mbstd_group_size=1), 1)
    with pytest.raises(UserError, match="batch_gpu"):
        t.replace(batch_gpu=-1)


def test_strided_micro_batches_keep_the_minibatch_std_groups():
    """D's logits of micro-batch k = rows k, k+R, ... equal the whole batch's rows (groups <= micro-batch);
    contiguous micro-batches would not (MinibatchStd groups rows i mod N/G)."""
    from tfstylegan.config import DiscriminatorConfig
    from tfstylegan.networks import Discriminator

    keras.utils.set_random_seed(0)
    D = Discriminator(DiscriminatorConfig(img_resolution=16, img_channels=1, channel_base=256, channel_max=32,
                                          mbstd_group_size=2))
    x = tf.random.stateless_normal([8, 16, 16, 1], seed=[0, 1])
    whole = D(x, None).numpy()
    for rounds in (2, 4):
        strided = np.empty_like(whole)
        for k in range(rounds):
            strided[k::rounds] = D(x[k::rounds], None).numpy()
        np.testing.assert_allclose(strided, whole, rtol=1e-5, atol=1e-6)
    contiguous = np.concatenate([D(x[:4], None).numpy(), D(x[4:], None).numpy()])
    assert np.abs(contiguous - whole).max() > 1e-4  # 100x the tolerance above (4e-4 measured)


def compare_micro_batches(data) -> None:
    """Batch 8 at once vs 4 micro-batches of 2 on one device, and vs 2 replicas x 2 micro-batches of 2 (path
    length on): the same losses, ADA statistic, pl_mean and weight updates. Minibatch-std group 1: replicas
    split the batch contiguously, so larger groups differ across replicas (the strided micro-batches keep them,
    as the test above shows)."""
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, "tests/conftest.py should configure two logical CPUs"
    batch = next(RealImageStream(data, None, False, False, 0, 8))
    full = _trainer(data, mbstd=1, **_COMPARE)
    micro = _trainer(data, mbstd=1, batch_gpu=2, **_COMPARE)
    replicas = _trainer(data, strategy=strategy, mbstd=1, batch_gpu=2, **_COMPARE)
    assert (full.rounds, micro.rounds, replicas.rounds, replicas.local_batch) == (1, 4, 2, 4)
    _copy_weights(full, micro)
    _copy_weights(full, replicas)
    # Eagerly: seconds instead of minutes of graph building (the graphs unroll the micro-batches; the same
    # Python builds them, and tests/test_training.py runs the steps as graphs with and without replicas).
    tf.config.run_functions_eagerly(True)
    try:
        reference, one_device, two_replicas = _step(full, batch), _step(micro, batch), _step(replicas, batch)
    finally:
        tf.config.run_functions_eagerly(False)
    for trainer, result in ((micro, one_device), (replicas, two_replicas)):
        _assert_same(reference, result)
        assert float(trainer.state.pl_mean.numpy()) == pytest.approx(float(full.state.pl_mean.numpy()), rel=1e-5)
        assert float(trainer.pipe.p.numpy()) == pytest.approx(float(full.pipe.p.numpy()))


@pytest.mark.slow
def test_batch_gpu_gives_the_full_batch_update(phantom_data):
    """`compare_micro_batches` in a fresh process: MirroredStrategy's collectives run eagerly there, and eager
    collectives leave instance keys behind that collide with later graph-mode strategies in the same process
    (measured: tests/test_training.py's two-replica test then failed with a collective shape mismatch)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, str(phantom_data)], cwd=Path(__file__).parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "micro-batches equal the full batch" in proc.stdout


if __name__ == "__main__":
    import conftest  # noqa: F401  (two logical CPUs, before TensorFlow initialises its devices)

    compare_micro_batches(Path(sys.argv[1]))
    print("micro-batches equal the full batch")
