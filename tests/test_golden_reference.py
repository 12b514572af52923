"""tfstylegan against golden values from the reference implementation, NVlabs/stylegan2-ada-pytorch.

The goldens in tests/golden/ were written by tests/golden/make_golden.py (run by hand under PyTorch,
see its docstring); every random draw the reference made is stored with them and replayed here.

Tolerances. Float32 on both sides, different op orders: outputs and first-order gradients agree to
a few 1e-6 of their scale and are checked at 1e-4 of it (`assert_close`). Looser, and why, where
noted at the check.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.augment import AUGMENT_SPECS, AugmentPipe, draw_random
from tfstylegan.config import get_preset

GOLDEN = Path(__file__).parent / "golden"


def _load(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name) as data:
        return {k: data[k] for k in data.files}


def nhwc(x: np.ndarray) -> tf.Tensor:
    return tf.constant(np.transpose(x, [0, 2, 3, 1]))


def assert_close(actual, expected, rtol: float = 1e-4, name: str = ""):
    """|actual - expected| <= rtol * max|expected| everywhere (scale-relative: elementwise relative
    errors of values near zero say nothing about an implementation)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(), 1e-30)
    err = np.abs(actual - expected).max()
    assert err <= rtol * scale, f"{name}: max error {err:.3g} > {rtol:g} x scale {scale:.3g}"


# ---------------------------------------------------------------------------------------------
# Augmentation (augment.npz): each 'bgc' op alone at p = 1, all of them at p = 0.7 on 1 and 3 channels,
# and strong geometric transforms whose padding margin reaches its clamp.

AUGMENT = _load("augment.npz")
AUGMENT_CASES = sorted({k.split("/")[0] for k in AUGMENT})


@pytest.mark.parametrize("case", AUGMENT_CASES)
def test_augment_pipe_matches_reference(case):
    g = {k[len(case) + 1:]: v for k, v in AUGMENT.items() if k.startswith(case + "/")}
    pipe = AugmentPipe(p=float(g["p"]), **json.loads(str(g["kwargs"])))
    x, upstream = nhwc(g["images"]), nhwc(g["upstream"])
    n, h, w, c = x.shape
    draws = dict(draw_random(tf.constant([0, 0]), n))  # ops the reference did not draw for are off
    draws.update({k[len("draws/"):]: tf.constant(v) for k, v in g.items() if k.startswith("draws/")})
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = pipe.apply(x, pipe.params_from_draws(draws, h, w, pipe.color_channels_of(c)))
        inner = tf.reduce_sum(y * upstream)
    assert_close(y, np.transpose(g["output"], [0, 2, 3, 1]), name="output")
    assert_close(tape.gradient(inner, x), np.transpose(g["grad"], [0, 2, 3, 1]), name="gradient")


def test_strong_geometric_case_reaches_the_margin_clamp():
    """The golden that checks the zero region beyond the reference's clamped padding is a real check."""
    g = {k[len("geom_strong/"):]: v for k, v in AUGMENT.items() if k.startswith("geom_strong/")}
    pipe = AugmentPipe(p=1.0, **json.loads(str(g["kwargs"])))
    draws = dict(draw_random(tf.constant([0, 0]), 4))
    draws.update({k[len("draws/"):]: tf.constant(v) for k, v in g.items() if k.startswith("draws/")})
    g_inv = pipe.params_from_draws(draws, 16, 16)["g_inv"].numpy()
    corners = np.array([[-7.5, -7.5, 1], [7.5, -7.5, 1], [7.5, 7.5, 1], [-7.5, 7.5, 1]]).T
    reach = np.abs(np.einsum("nij,jk->nik", g_inv, corners)[:, :2]).max()
    assert reach + 6 - 7.5 > 15  # margin before the clamp at size - 1 = 15


# ---------------------------------------------------------------------------------------------
# Presets (configs.json): the reference's train.py settings for every cfg at 32..1024 with 1 and 8
# GPUs, computed by the reference's own setup_training_loop_kwargs.

CONFIGS = json.loads((GOLDEN / "configs.json").read_text())


def _preset_values(name: str, resolution: int, num_gpus: int) -> dict:
    p = get_preset(name, resolution=resolution, num_gpus=num_gpus)
    g, d, t = p.generator, p.discriminator, p.train
    return dict(batch_size=t.batch_size, mbstd_group_size=d.mbstd_group_size, channel_base=g.channel_base,
                d_channel_base=d.channel_base, channel_max=g.channel_max, mapping_layers=g.mapping_layers,
                num_fp16_res=g.num_fp16_res, conv_clamp=g.conv_clamp, d_num_fp16_res=d.num_fp16_res,
                d_conv_clamp=d.conv_clamp, g_lr=t.g_lr, d_lr=t.d_lr, betas=list(t.betas), epsilon=t.epsilon,
                r1_gamma=t.r1_gamma, ema_kimg=t.ema_kimg, ema_rampup=t.ema_rampup, total_kimg=t.total_kimg,
                pl_weight=t.pl_weight, style_mixing_prob=t.style_mixing_prob, d_architecture=d.architecture,
                ada_target=t.ada_target, augment_pipe=sorted(k for k, v in AUGMENT_SPECS[t.augment_pipe].items() if v))


def test_presets_equal_the_reference_configs():
    assert len(CONFIGS) == 6 * 6 * 2
    mismatches = []
    for key, ref in sorted(CONFIGS.items()):
        name, res, gpus = key.split("/")
        ours = _preset_values(name, int(res), int(gpus))
        for field, value in ours.items():
            same = value == ref[field] or (isinstance(value, float) and value == pytest.approx(ref[field], rel=1e-12))
            if not same:
                mismatches.append(f"{key} {field}: ours {value!r}, reference {ref[field]!r}")
        assert ref["batch_size"] % int(gpus) == 0
    assert not mismatches, "\n".join(mismatches)


def test_auto_table_at_32_to_1024_on_1_and_8_gpus():
    """The 'auto' rows written out (train.py: mb = max(min(gpus * min(4096 // res, 32), 64), gpus),
    mbstd = min(mb // gpus, 4), fmaps = 1 if res >= 512 else 0.5, lr = 0.002 if res >= 1024 else
    0.0025, gamma = 0.0002 res^2 / mb, ema = mb * 10 / 32), checked against the reference's own."""
    table = {  # (res, gpus): (batch, mbstd, channel_base, lr, gamma, ema_kimg)
        (32, 1): (32, 4, 16384, 0.0025, 0.0064, 10.0), (32, 8): (64, 4, 16384, 0.0025, 0.0032, 20.0),
        (64, 1): (32, 4, 16384, 0.0025, 0.0256, 10.0), (64, 8): (64, 4, 16384, 0.0025, 0.0128, 20.0),
        (128, 1): (32, 4, 16384, 0.0025, 0.1024, 10.0), (128, 8): (64, 4, 16384, 0.0025, 0.0512, 20.0),
        (256, 1): (16, 4, 16384, 0.0025, 0.8192, 5.0), (256, 8): (64, 4, 16384, 0.0025, 0.2048, 20.0),
        (512, 1): (8, 4, 32768, 0.0025, 6.5536, 2.5), (512, 8): (64, 4, 32768, 0.0025, 0.8192, 20.0),
        (1024, 1): (4, 4, 32768, 0.002, 52.4288, 1.25), (1024, 8): (32, 4, 32768, 0.002, 6.5536, 10.0),
    }
    for (res, gpus), expected in table.items():
        ref = CONFIGS[f"auto/{res}/{gpus}"]
        assert (ref["batch_size"], ref["mbstd_group_size"], ref["channel_base"], ref["g_lr"]) == expected[:4]
        assert (ref["r1_gamma"], ref["ema_kimg"]) == pytest.approx(expected[4:], rel=1e-12)
        p = get_preset("auto", resolution=res, num_gpus=gpus)
        ours = (p.train.batch_size, p.discriminator.mbstd_group_size, p.generator.channel_base, p.train.g_lr)
        assert ours == expected[:4]
        assert (p.train.r1_gamma, p.train.ema_kimg) == pytest.approx(expected[4:], rel=1e-12)
        assert p.generator.img_resolution == res and p.train.ema_rampup == 0.05 and p.generator.mapping_layers == 2

