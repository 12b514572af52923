"""tfstylegan.apps.generation and launchers/generate.py: seeds, the seed -> image convention, PNGs, figures."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfstylegan.apps import figures, generation
from tfstylegan.config import get_preset
from tfstylegan.utils.errors import UserError
from _checkpoints import save_tiny

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["meningioma", "glioma", "pituitary"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A 16x16 phantom dataset with masks, and tiny per-class, masked and conditional checkpoints."""
    from tfstylegan.data.phantom import write_phantom_dataset
    from tfstylegan.data.prepare import prepare

    root = tmp_path_factory.mktemp("generate")
    write_phantom_dataset(root / "raw", num_patients_per_class=4, slices_per_patient=2, size=64, progress=False)
    prepare(root / "raw", root / "data", resolution=16, progress=False)
    tiny = get_preset("tiny")
    return {
        "data": root / "data",
        "glioma": save_tiny(root / "glioma", tiny, ["glioma"], "glioma", False, False),
        "mask": save_tiny(root / "mask", tiny.with_data(img_channels=2), ["glioma"], "glioma", False, True),
        "cond": save_tiny(root / "cond", tiny.with_data(c_dim=3), CLASSES, None, True, False),
    }


def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "launchers.generate", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


# --- seeds --------------------------------------------------------------------------------------------------

def test_parse_seeds():
    assert generation.parse_seeds("0,1,7") == [0, 1, 7]
    assert generation.parse_seeds("0-3") == [0, 1, 2, 3]
    assert generation.parse_seeds("5, 0-2,1,9-9") == [5, 0, 1, 2, 9]
    assert generation.parse_seeds([3, 3, 4]) == [3, 4]
    assert generation.parse_seeds(4294967295) == [4294967295]
    for bad in ("", "a", "-1", "3-1", "1-2-3", "4294967296", "1.5"):
        with pytest.raises(UserError):
            generation.parse_seeds(bad)


def test_parse_checkpoint_spec():
    assert generation.parse_checkpoint_spec("runs/a") == {None: "runs/a"}
    assert generation.parse_checkpoint_spec("glioma=a, pituitary=b") == {"glioma": "a", "pituitary": "b"}
    for bad in ("", "glioma=a,b", "glioma=a,glioma=b", "=a"):
        with pytest.raises(UserError):
            generation.parse_checkpoint_spec(bad)


def test_interpolation_ws_is_a_fixed_step_walk():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 32)).astype(np.float32)
    ws, step = figures.interpolation_ws(a, b, 5)
    assert ws.shape == (5, 6, 32)
    np.testing.assert_allclose(ws[0], a, atol=1e-6)
    np.testing.assert_allclose(ws[-1], b, atol=1e-6)
    steps = np.linalg.norm(np.diff(ws[:, 0].astype(np.float64), axis=0), axis=1)
    np.testing.assert_allclose(steps, step, rtol=1e-5)
    np.testing.assert_allclose(step * 4, np.linalg.norm(b[0] - a[0]), rtol=1e-5)
    with pytest.raises(UserError):
        figures.interpolation_ws(a, b, 1)


def test_side_by_side_puts_mask_right_of_image():
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[..., 1] = 1.0
    out = figures.side_by_side(x)
    assert out.shape == (1, 2, 4, 1)
    np.testing.assert_array_equal(out[0, :, :2, 0], 0)
    np.testing.assert_array_equal(out[0, :, 2:, 0], 1)


# --- the seed convention ------------------------------------------------------------------------------------

def test_seed_means_the_same_image_whatever_the_batch(assets):
    from tfstylegan.networks import seed_to_z

    gen = generation.load_class_generator(assets["glioma"])
    both = generation.generate_images(gen, [3, 5], batch_size=2)
    alone = generation.generate_images(gen, [5], batch_size=1)
    np.testing.assert_allclose(both[1], alone[0], atol=1e-5)
    z = np.random.RandomState(5).randn(1, gen.G.z_dim).astype(np.float32)
    np.testing.assert_array_equal(z, seed_to_z([5], gen.G.z_dim))
    direct = np.asarray(gen.G(z, noise_mode="const"))
    np.testing.assert_allclose(alone, direct, atol=1e-5)
    assert not np.allclose(both[0], both[1])
    # random noise is seeded by the image's seed: reproducible, and different from const
    r1 = generation.generate_images(gen, [5], noise_mode="random")
    r2 = generation.generate_images(gen, [3, 5], noise_mode="random")
    np.testing.assert_allclose(r1[0], r2[1], atol=1e-5)


def test_conditional_class_selection(assets):
    with pytest.raises(UserError, match="meningioma, glioma, pituitary"):
        generation.load_class_generator(assets["cond"])
    with pytest.raises(UserError, match="no class 'notumor'"):
        generation.load_class_generator(assets["cond"], "notumor")
    gens = generation.load_class_generators(str(assets["cond"]))
    assert list(gens) == CLASSES and [g.class_id for g in gens.values()] == [0, 1, 2]
    a = generation.generate_images(gens["meningioma"], [0])
    b = generation.generate_images(gens["pituitary"], [0])
    assert not np.allclose(a, b)  # the label changes the image
    with pytest.raises(UserError, match="trained on class 'glioma'"):
        generation.load_class_generator(assets["glioma"], "pituitary")


def test_style_mixing_with_all_layers_gives_the_column_images(assets):
    gen = generation.load_class_generator(assets["glioma"])
    num_ws = gen.G.num_ws
    fig = figures.style_mixing_figure(gen, [0, 1], [2, 3, 4], col_styles=range(num_ws))
    h = w = 16 + figures.FIGURE_PADDING
    assert fig.shape == (3 * h - 2, 4 * w - 2, 1)
    top = [fig[0:16, c * w:c * w + 16] for c in range(1, 4)]
    for r in (1, 2):
        for c in range(1, 4):
            np.testing.assert_allclose(fig[r * h:r * h + 16, c * w:c * w + 16].astype(int), top[c - 1].astype(int),
                                       atol=1)
    left = fig[h:h + 16, 0:16]
    own = generation.to_pixels(generation.generate_images(gen, [0]))[0]
    np.testing.assert_allclose(left.astype(int), own.astype(int), atol=1)


# --- the launcher -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_launcher_writes_pngs_that_match_the_generator(assets, tmp_path):
    out = tmp_path / "gen"
    r = _launch("--checkpoint", assets["glioma"], "--seeds", "0-2,7", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    gen = generation.load_class_generator(assets["glioma"])
    expected = generation.to_pixels(generation.generate_images(gen, [7]))[0, ..., 0]
    png = np.asarray(Image.open(out / "seed0007.png"))
    assert png.dtype == np.uint8 and png.shape == (16, 16)
    np.testing.assert_array_equal(png.astype(int), expected.astype(int))

    out16 = tmp_path / "gen16"
    r = _launch("--checkpoint", assets["glioma"], "--seeds", "7", "--bit_depth", "16", "--truncation_psi", "0.5",
                "--out", out16)
    assert r.returncode == 0, r.stderr
    png16 = np.asarray(Image.open(out16 / "seed0007.png"))
    assert png16.dtype in (np.uint16, np.int32) and png16.max() > 255
    truncated = generation.generate_images(gen, [7], truncation_psi=0.5)
    np.testing.assert_allclose(png16.astype(np.float64) / 32767.5 - 1, np.clip(truncated[0, ..., 0], -1, 1), atol=2e-3)


@pytest.mark.slow
def test_launcher_figures_with_masks(assets, tmp_path):
    out = tmp_path / "figs"
    r = _launch("--checkpoint", assets["mask"], "--seeds", "0-9", "--figures", "--data", assets["data"],
                "--interp_steps", "5", "--style_rows", "0,1", "--style_cols", "2-4", "--out", out)
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    for name in ("seed0000.png", "seed0000_mask.png", "fig2_real_vs_generated_glioma.png",
                 "fig3_grid3x3_glioma.png", "fig4_mosaic_glioma.png", "style_mixing.png", "interpolation.png"):
        assert name in names
    tile_w = 2 * 16 + figures.FIGURE_PADDING  # image and mask side by side
    k = 128 // 16  # figures of 16-px slices are upscaled 8x (nearest) for viewing
    fig3 = np.asarray(Image.open(out / "fig3_grid3x3_glioma.png"))
    assert fig3.shape == (k * (3 * 18 - 2), k * (3 * tile_w - 2))
    np.testing.assert_array_equal(fig3[::k, ::k].repeat(k, 0).repeat(k, 1), fig3)  # exact pixel blocks
    fig2 = np.asarray(Image.open(out / "fig2_real_vs_generated_glioma.png"))
    assert fig2.shape == (k * (2 * 18 - 2), k * (6 * tile_w - 2))
    interp = np.asarray(Image.open(out / "interpolation.png"))
    assert interp.shape == (k * (3 * 18 - 2), k * (5 * tile_w - 2))  # seeds 0-3: three walks of 5 images
    style = np.asarray(Image.open(out / "style_mixing.png"))
    assert style.shape == (k * (3 * 18 - 2), k * (4 * tile_w - 2))


@pytest.mark.slow
def test_launcher_bad_inputs_exit_1(assets, tmp_path):
    r = _launch("--checkpoint", assets["cond"], "--seeds", "0", "--out", tmp_path / "a")
    assert r.returncode == 1 and "error:" in r.stderr and "meningioma, glioma, pituitary" in r.stderr
    r = _launch("--checkpoint", assets["glioma"], "--seeds", "3-1", "--out", tmp_path / "b")
    assert r.returncode == 1 and "error:" in r.stderr and "descending" in r.stderr
    r = _launch("--checkpoint", tmp_path / "missing", "--seeds", "0", "--out", tmp_path / "c")
    assert r.returncode == 1 and "error:" in r.stderr and "does not exist" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
