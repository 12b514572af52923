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

from tfstylegan.augment import AugmentPipe, draw_random

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

