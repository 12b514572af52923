"""tfstylegan.apps.generation and launchers/generate.py: seeds, the seed -> image convention, PNGs, figures."""

import itertools
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfstylegan.apps import figures, generation
from tfstylegan.data.classes import CLASS_NAMES
from tfstylegan.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CLASSES = list(CLASS_NAMES)


@pytest.fixture(scope="module")
def assets(phantom_data, tiny_checkpoints):
    """The shared 16x16 phantom dataset with masks, and tiny per-class, masked and conditional checkpoints."""
    return {"data": phantom_data, "glioma": tiny_checkpoints["glioma"], "mask": tiny_checkpoints["mask"],
            "cond": tiny_checkpoints["cond"]}


def _launch(*args, launcher="generate"):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", f"launchers.{launcher}", *map(str, args)], cwd=REPO, env=env,
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


def test_seed_ranges_are_lazy_and_keep_the_list_semantics():
    huge = generation.parse_seed_ranges("0-4294967295")  # no list of 2**32 ints is ever built
    assert len(huge) == 2 ** 32 and huge[-1] == 4294967295 and huge[7] == 7 and list(huge[10:13]) == [10, 11, 12]
    seeds = generation.parse_seed_ranges("5,0-7,3,20-22,6-8")
    want = [5, 0, 1, 2, 3, 4, 6, 7, 20, 21, 22, 8]
    assert seeds == want and list(seeds) == want and len(seeds) == len(want)
    assert [seeds[i] for i in range(-len(want), len(want))] == want + want
    assert list(seeds[2:9]) == want[2:9] and seeds[::3] == want[::3]
    with pytest.raises(IndexError):
        seeds[len(want)]


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


def test_images_stream_batch_by_batch_and_nothing_accumulates(assets, tmp_path):
    gen = generation.load_class_generator(assets["glioma"])
    # a lazy stream: the first batches of 2**32 seeds come at once, each the images of its own seeds
    stream = generation.iter_images(gen, generation.parse_seed_ranges("0-4294967295"), batch_size=4)
    first = list(itertools.islice(stream, 2))
    assert [seeds for seeds, _ in first] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    np.testing.assert_allclose(first[1][1], generation.generate_images(gen, [4, 5, 6, 7]), atol=1e-6)
    stream.close()

    # write_images: each batch is on disk before the next is made, and no batch outlives its turn
    out = tmp_path / "stream"
    seen, alive = [], []

    def on_batch(seeds, images):
        assert images.shape == (len(seeds), 16, 16, 1) and len(seeds) <= 3
        alive.append(sum(ref() is not None for ref in seen))  # earlier batches still referenced somewhere
        seen.append(weakref.ref(images))
        written = sorted(p.name for p in out.iterdir())
        assert written == [f"seed{s:04d}.png" for s in range(10, 10 + 3 * len(seen))][:len(written)]
        assert len(written) == min(3 * len(seen), 10)

    n = generation.write_images(out, gen, range(10, 20), batch_size=3, on_batch=on_batch)
    assert n == 10 and len(seen) == 4 and alive == [0, 0, 0, 0]
    png = np.asarray(Image.open(out / "seed0015.png"))
    np.testing.assert_array_equal(png, generation.to_pixels(generation.generate_images(gen, [15]))[0, ..., 0])


def test_nonfinite_psi_and_z_are_refused(assets, tmp_path):
    gen = generation.load_class_generator(assets["glioma"])
    for psi in (float("nan"), float("inf"), -float("inf"), "nan"):
        with pytest.raises(UserError, match="finite"):
            generation.seeds_to_ws(gen, [0], psi)
        with pytest.raises(UserError, match="finite"):
            next(generation.iter_images(gen, [0], psi))
        with pytest.raises(UserError, match="finite"):
            generation.generate(assets["glioma"], [0], tmp_path / "out", truncation_psi=psi)
    assert not (tmp_path / "out").exists()
    from tfstylegan.networks import seed_to_z

    z = seed_to_z([0, 1, 2], gen.G.z_dim)
    np.testing.assert_array_equal(generation.z_to_ws(gen, z), generation.seeds_to_ws(gen, [0, 1, 2]))
    for bad in (np.nan, np.inf):
        z_bad = z.copy()
        z_bad[1, 3] = bad
        with pytest.raises(UserError, match="NaN or inf in 1 of 3 rows"):
            generation.z_to_ws(gen, z_bad)
    with pytest.raises(UserError, match=rf"z must be \[N, {gen.G.z_dim}\]"):
        generation.z_to_ws(gen, z[:, :5])


def test_class_by_index_and_output_folder_rules(assets, tmp_path):
    cond = generation.load_class_generator(assets["cond"], "1")
    assert cond.class_name == "glioma" and cond.class_id == 1
    with pytest.raises(UserError, match="0=meningioma, 1=glioma, 2=pituitary"):
        generation.load_class_generator(assets["cond"], 3)
    # outputs are never replaced silently; PNG temporaries of a killed run do not count and are removed
    from tfstylegan.utils.io import _owner_tag

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = _owner_tag().rsplit("-", 1)[0]
    out = tmp_path / "out"
    out.mkdir()
    (out / f".seed0003.png.{host}-{gone.pid}.abc123_x.tmp").write_bytes(b"partial")
    assert generation.prepare_output_folder(out) == out and list(out.iterdir()) == []
    (out / "seed0000.png").write_bytes(b"old")
    with pytest.raises(UserError, match="already exists and is not empty.*--overwrite"):
        generation.check_output_folder(out)
    (out / f".seed0001.png.{host}-{gone.pid}.k2j4_h1x.tmp").write_bytes(b"partial")
    generation.prepare_output_folder(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["seed0000.png"]
    with pytest.raises(UserError, match="is a file"):
        generation.check_output_folder(out / "seed0000.png", overwrite=True)


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


def test_launcher_all_classes_in_one_process(assets, tmp_path):
    out = tmp_path / "all"
    r = _launch("--checkpoint", assets["cond"], "--class_name", "all", "--seeds", "0-3", "--figures", "--data",
                assets["data"], "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)
    gens = generation.load_class_generators(str(assets["cond"]))
    for cls in CLASSES:  # each folder is what --class_name <cls> writes
        names = {p.name for p in (out / cls).iterdir()}
        assert {"seed0000.png", "seed0003.png", f"fig3_grid3x3_{cls}.png", f"fig2_real_vs_generated_{cls}.png",
                "style_mixing.png", "interpolation.png"} <= names
        expected = generation.to_pixels(generation.generate_images(gens[cls], [3]))[0, ..., 0]
        np.testing.assert_array_equal(np.asarray(Image.open(out / cls / "seed0003.png")).astype(int),
                                      expected.astype(int))
    # per-class checkpoints by spec; an existing class folder is refused before anything is written
    (tmp_path / "spec" / "glioma").mkdir(parents=True)
    (tmp_path / "spec" / "glioma" / "keep.png").write_bytes(b"x")
    r = _launch("--checkpoint", f"glioma={assets['glioma']}", "--class_name", "all", "--seeds", "0",
                "--out", tmp_path / "spec")
    assert r.returncode == 1 and "already exists and is not empty" in r.stderr
    assert [p.name for p in (tmp_path / "spec" / "glioma").iterdir()] == ["keep.png"]
    r = _launch("--checkpoint", f"glioma={assets['glioma']}", "--class_name", "all", "--seeds", "0",
                "--out", tmp_path / "spec2")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "spec2" / "glioma").iterdir()] == ["seed0000.png"]


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
    # a NaN or infinite psi would give black images: refused by generate and evaluate
    r = _launch("--checkpoint", assets["glioma"], "--seeds", "0", "--trunc", "nan", "--out", tmp_path / "d")
    assert r.returncode == 1 and "error: --truncation_psi must be a finite number" in r.stderr, r.stderr
    r = _launch("--network", assets["glioma"], "--classifier", tmp_path / "judge.keras", "--data", assets["data"],
                "--truncation_psi", "inf", "--outdir", tmp_path / "e", launcher="evaluate")
    assert r.returncode == 1 and "error: --truncation_psi must be a finite number" in r.stderr, r.stderr
    assert not any((tmp_path / name).exists() for name in "abcde")


@pytest.mark.slow
def test_launcher_killed_midway_keeps_whole_pngs_and_refuses_to_overwrite(assets, tmp_path):
    out = tmp_path / "big"
    log = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "launchers.generate", "--checkpoint", str(assets["glioma"]),
                             "--seeds", "0-10000000", "--batch", "4", "--out", str(out)], cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and len(list(out.glob("seed*.png"))) >= 12):
            assert proc.poll() is None and time.monotonic() < deadline, open(tmp_path / "stderr.txt").read()
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    names = sorted(p.name for p in out.glob("seed*.png"))
    n = len(names)
    assert n >= 12 and names == [f"seed{i:04d}.png" for i in range(n)]  # written in order, nothing skipped
    gen = generation.load_class_generator(assets["glioma"])
    want = generation.to_pixels(generation.generate_images(gen, range(n)))[..., 0]
    for i, name in enumerate(names):  # every PNG kept is whole
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), want[i])

    r = _launch("--checkpoint", assets["glioma"], "--seeds", "0-15", "--out", out)
    assert r.returncode == 1 and "already exists and is not empty" in r.stderr and "--overwrite" in r.stderr, r.stderr
    assert sorted(p.name for p in out.glob("seed*.png")) == names
    r = _launch("--checkpoint", assets["glioma"], "--seeds", "0-15", "--out", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not list(out.glob(".*.tmp"))  # a partial file of the killed run is removed, not kept
    assert {f"seed{i:04d}.png" for i in range(16)} <= {p.name for p in out.iterdir()}
    np.testing.assert_array_equal(np.asarray(Image.open(out / "seed0015.png")),
                                  generation.to_pixels(generation.generate_images(gen, [15]))[0, ..., 0])


@pytest.mark.slow
def test_launcher_renders_an_official_rgb_network_with_the_official_names(assets, tmp_path):
    from test_import_pretrained import (
        official_discriminator_params,
        official_G,
        official_generator_params,
        write_official_pickle,
    )

    from tfstylegan.export import legacy
    from tfstylegan.networks import seed_to_z
    from tfstylegan.utils.images import to_uint8

    rng = np.random.default_rng(3)
    gs = official_generator_params(rng)
    pkl = write_official_pickle(tmp_path / "net.pkl", gs, official_generator_params(rng),
                                official_discriminator_params(rng))
    out = tmp_path / "rgb"
    r = _launch("--network", pkl, "--seeds", "0-4", "--trunc", "0.7", "--batch_size", "2", "--figures",
                "--outdir", out)
    assert r.returncode == 0, r.stderr
    z = seed_to_z([3], 16)
    png = Image.open(out / "seed0003.png")
    assert png.mode == "RGB" and png.size == (16, 16)
    # the model's own output (the importer's networks), and the official forward pass to within one level
    _, _, G_ema, _, _ = legacy.convert_official_pickle(pkl, preset="tiny", img_channels=3)
    np.testing.assert_array_equal(np.asarray(png), to_uint8(G_ema(z, truncation_psi=0.7, noise_mode="const"))[0])
    official = np.transpose(official_G(gs, z, psi=0.7), (0, 2, 3, 1))[0]
    assert np.abs(np.asarray(png).astype(int) - to_uint8(official).astype(int)).max() <= 1
    for name in ("fig3_grid3x3_all.png", "fig4_mosaic_all.png", "style_mixing.png", "interpolation.png"):
        assert Image.open(out / name).mode == "RGB"
    # a folder written by import_pretrained --img_channels 3 renders the same images
    imported = legacy.import_official_pickle(pkl, tmp_path / "imported", preset="tiny", img_channels=3)
    generation.generate(str(imported), [3], tmp_path / "from_folder", truncation_psi=0.7, show_progress=False)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "from_folder" / "seed0003.png")), np.asarray(png))
    with pytest.raises(UserError, match="--bit_depth 16 is for grayscale"):
        generation.generate(str(imported), [3], tmp_path / "b16", bit_depth=16)

    # --class as an index, as the official tools take it
    r = _launch("--network", assets["cond"], "--class", "1", "--seeds", "3", "--outdir", tmp_path / "cls")
    assert r.returncode == 0, r.stderr
    glioma = generation.load_class_generator(assets["cond"], "glioma")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "cls" / "seed0003.png")),
                                  generation.to_pixels(generation.generate_images(glioma, [3]))[0, ..., 0])
