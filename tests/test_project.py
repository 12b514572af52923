"""tfstylegan.apps.projection and launchers/project.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfstylegan.apps import generation, projection
from tfstylegan.config import get_preset
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.images import save_png, to_uint8

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints["glioma"]


def test_learning_rate_schedule_is_the_official_ramp():
    config = projection.ProjectionConfig(num_steps=100)
    assert projection.learning_rate(0, config) == 0.0
    assert projection.learning_rate(5, config) == pytest.approx(0.1)  # end of the 5% ramp-up
    assert projection.learning_rate(50, config) == pytest.approx(0.1)
    assert projection.learning_rate(2, config) == pytest.approx(0.1 * 2 / 5)
    assert projection.learning_rate(75, config) == pytest.approx(0.1)  # start of the 25% ramp-down
    assert projection.learning_rate(100 - 12.5, config) == pytest.approx(0.05)  # cosine half-way
    assert projection.learning_rate(100, config) == pytest.approx(0.0, abs=1e-12)


def test_nonfinite_settings_are_refused():
    for kwargs in ({"initial_learning_rate": float("nan")}, {"feature_weight": float("inf")},
                   {"initial_learning_rate": float("inf")}):
        with pytest.raises(UserError, match="finite"):
            projection.ProjectionConfig(**kwargs)


def test_projected_w_file_is_checked_against_the_generator(checkpoint, tmp_path):
    G = generation.load_class_generator(checkpoint).G
    good = np.zeros([2, G.num_ws, G.w_dim], np.float32)
    np.savez(tmp_path / "ok.npz", w=good)
    ws, noise = projection.load_projected_w(tmp_path / "ok.npz", G)
    assert ws.shape == (2, G.num_ws, G.w_dim) and noise is None
    np.savez(tmp_path / "shape.npz", w=good[:, :3])
    np.savez(tmp_path / "nan.npz", w=np.full_like(good, np.nan))
    np.savez(tmp_path / "nokey.npz", ws=good)
    np.savez(tmp_path / "noise.npz", w=good, noise_0=np.zeros([3, 3], np.float32))
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    for name, message in (("shape", r"shape \(2, 3, 32\)"), ("nan", "NaN"), ("nokey", "no array 'w'"),
                          ("noise", "noise buffers do not fit"), ("junk", "Could not read"),
                          ("missing", "does not exist")):
        with pytest.raises(UserError, match=message):
            projection.load_projected_w(tmp_path / f"{name}.npz", G)


def test_noise_regularization_golden():
    ones = np.ones([16, 16], np.float32)
    assert float(projection.noise_regularization([ones])) == pytest.approx(4.0)  # 2 scales x 2 shifts x 1^2
    stripes = np.tile(np.array([[1], [-1]], np.float32), [4, 8])  # [8, 8] rows 1, -1, ...
    # horizontal shift: corr 1; vertical shift: corr -1 -> squares 1 + 1; one scale (8x8)
    assert float(projection.noise_regularization([stripes])) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    white = rng.standard_normal([64, 64]).astype(np.float32)
    assert float(projection.noise_regularization([white])) < 0.01


@pytest.mark.slow
def test_projection_recovers_a_generated_image(checkpoint):
    gen = generation.load_class_generator(checkpoint)
    target = generation.generate_images(gen, [123])[0]
    config = projection.ProjectionConfig(num_steps=40, w_avg_samples=2000)
    result = projection.project(gen, target, config, show_progress=False)
    assert result.ws.shape == (1, gen.G.num_ws, gen.G.w_dim)
    np.testing.assert_allclose(result.ws, np.repeat(result.ws[:, :1], gen.G.num_ws, axis=1))  # W, not W+
    initial = np.mean((result.snapshots[0] - target) ** 2)
    final = np.mean((result.image - target) ** 2)
    assert final < 0.25 * initial, (initial, final)
    assert len(result.losses) == 40 and result.snapshot_steps[0] == 0 and result.snapshot_steps[-1] == 40
    # the generator's own noise buffers are restored
    again = generation.generate_images(gen, [123])[0]
    np.testing.assert_allclose(again, target, atol=1e-6)
    with pytest.raises(UserError, match="16x16"):
        projection.project(gen, np.zeros([8, 8, 1], np.float32), config, show_progress=False)


def _launch(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "launchers.project", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_launcher_w_plus_with_judge(checkpoint, tiny_judge, tmp_path):
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, [32, 32, 1]).astype(np.float32)  # resized to 16x16 by the projector
    save_png(tmp_path / "t.png", to_uint8(target))
    out = tmp_path / "proj"
    r = _launch("--checkpoint", checkpoint, "--target", tmp_path / "t.png", "--steps", "6", "--w_plus",
                "--classifier", tiny_judge, "--out", out)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} >= {"proj.png", "target.png", "projected_w.npz", "progress.png",
                                                "projection.json"}
    w = np.load(out / "projected_w.npz")["w"]
    assert w.shape == (1, 6, 32) and not np.allclose(w[:, 0], w[:, 1])  # W+: one w per layer
    assert np.asarray(Image.open(out / "proj.png")).shape == (16, 16)
    assert np.asarray(Image.open(out / "progress.png")).shape[0] == 16
    info = json.loads((out / "projection.json").read_text())
    assert len(info["losses"]) == 6 and info["losses"][-1]["feature"] > 0

    r = _launch("--checkpoint", checkpoint, "--target", tmp_path / "t.png", "--data", tmp_path, "--out",
                tmp_path / "bad")
    assert r.returncode == 1 and "error:" in r.stderr and "exactly one" in r.stderr
    r = _launch("--checkpoint", checkpoint, "--target", tmp_path / "missing.png", "--out", tmp_path / "bad2")
    assert r.returncode == 1 and "error:" in r.stderr and "does not exist" in r.stderr
    r = _launch("--network", checkpoint, "--target", tmp_path / "t.png", "--lr", "nan", "--outdir", tmp_path / "bad3")
    assert r.returncode == 1 and "error: --lr must be a finite number" in r.stderr, r.stderr


@pytest.mark.slow
def test_generate_projected_w_renders_the_projection(tmp_path):
    from tfstylegan.networks import Discriminator, Generator
    from tfstylegan.training.checkpoint import save_networks

    tiny = get_preset("tiny")  # noise strengths are 0 at init: make the noise buffers matter
    G, D, G_ema = (Generator(tiny.generator, name="G"), Discriminator(tiny.discriminator, name="D"),
                   Generator(tiny.generator, name="G_ema"))
    for v in G_ema.weights:
        if v.path.endswith("noise_strength"):
            v.assign(0.5)
    info = {"preset": tiny.to_dict(), "class_names": ["glioma"], "class_name": "glioma", "conditional": False,
            "with_mask": False, "data": None, "options": {}}
    checkpoint = save_networks(tmp_path / "noisy", info, G, D, G_ema)
    gen = generation.load_class_generator(checkpoint)
    save_png(tmp_path / "t.png", to_uint8(generation.generate_images(gen, [7])[0]))
    config = projection.ProjectionConfig(num_steps=4, w_avg_samples=100)
    projection.run_projection(str(checkpoint), tmp_path / "proj", target_path=str(tmp_path / "t.png"), config=config,
                              show_progress=False)
    out = tmp_path / "render"
    r = subprocess.run([sys.executable, "-m", "launchers.generate", "--network", str(checkpoint), "--projected_w",
                        str(tmp_path / "proj" / "projected_w.npz"), "--outdir", str(out)], cwd=REPO,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["proj00.png"]
    proj = np.asarray(Image.open(tmp_path / "proj" / "proj.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "proj00.png")), proj)
    # the projection's optimised noise is part of the image, and the generator's own buffers are left as they were
    G = gen.G
    ws, noise = projection.load_projected_w(tmp_path / "proj" / "projected_w.npz", G)
    before = [np.asarray(v).copy() for v in projection._noise_variables(G).values()]
    with projection.projection_noise(G, noise):
        with_noise = np.asarray(G.synthesis(ws, noise_mode="const"))
    after = [np.asarray(v) for v in projection._noise_variables(G).values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    np.testing.assert_array_equal(to_uint8(with_noise[0, ..., 0]), proj)
    assert not np.array_equal(to_uint8(np.asarray(G.synthesis(ws, noise_mode="const"))[0, ..., 0]), proj)
