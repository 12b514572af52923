"""SavedModel export for TF Serving: signatures, dtypes, shapes, determinism, equality with the in-process models."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.config import get_preset
from tfstylegan.export.saved_model import (export_classifier, export_generator, images_to_uint8, seed_to_z_tf)
from tfstylegan.networks import Discriminator, Generator
from tfstylegan.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"


def _generator(c_dim=0, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    G = Generator(get_preset("tiny").generator.replace(c_dim=c_dim), name="G_ema")
    # a non-trivial w_avg and noise strengths so truncation and const noise are exercised
    G.mapping.w_avg.assign(np.random.RandomState(seed).randn(G.w_dim).astype(np.float32))
    for block in G.synthesis.blocks:
        for layer in (block.conv0, block.conv1):
            if layer is not None:
                layer.noise_strength.assign(0.5)
    return G


@pytest.fixture(scope="module")
def uncond_export(tmp_path_factory):
    G = _generator()
    path = export_generator(G, tmp_path_factory.mktemp("serving"), "generator_glioma", version=3,
                            truncation_psi=0.7, class_names=["glioma"])
    return G, path


def test_generator_export_layout_and_signatures(uncond_export):
    G, path = uncond_export
    assert path.name == "3" and path.parent.name == "generator_glioma"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    meta = json.loads((path / "assets.extra" / "tfstylegan_export.json").read_text())
    assert meta["default_truncation_psi"] == pytest.approx(0.7) and meta["noise_mode"] == "const"
    m = tf.saved_model.load(str(path))
    assert set(m.signatures) == {"serving_default", "images_float", "from_z"}
    sd = m.signatures["serving_default"]
    _, inputs = sd.structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "seed": (tf.int64, [None]), "truncation_psi": (tf.float32, [None])}
    assert sd.structured_outputs["images"].dtype == tf.uint8


def test_generator_export_matches_in_process_and_is_deterministic(uncond_export):
    G, path = uncond_export
    m = tf.saved_model.load(str(path))
    seeds = tf.constant([0, 7, 123456789], tf.int64)
    psi = tf.constant([1.0, 0.5, 0.7])
    u8 = m.signatures["serving_default"](seed=seeds, truncation_psi=psi)["images"]
    assert u8.dtype == tf.uint8 and u8.shape == (3, 16, 16, 1)
    again = m.signatures["serving_default"](seed=seeds, truncation_psi=psi)["images"]
    np.testing.assert_array_equal(u8.numpy(), again.numpy())
    flt = m.signatures["images_float"](seed=seeds, truncation_psi=psi)["images"]
    assert flt.dtype == tf.float32 and flt.shape == (3, 16, 16, 1)
    np.testing.assert_array_equal(images_to_uint8(flt).numpy(), u8.numpy())
    # the seed convention, and equality with the in-process EMA generator at the same z
    z = seed_to_z_tf(seeds, G.z_dim)
    np.testing.assert_array_equal(z[1].numpy(), tf.random.stateless_normal([G.z_dim], seed=[7, 0]).numpy())
    want = np.concatenate([G(z[i:i + 1], truncation_psi=float(p), noise_mode="const").numpy()
                           for i, p in enumerate(psi.numpy())])
    np.testing.assert_allclose(flt.numpy(), want, atol=1e-5)
    out = m.signatures["from_z"](z=z, truncation_psi=psi)
    np.testing.assert_allclose(out["images_float"].numpy(), want, atol=1e-5)
    np.testing.assert_array_equal(out["images"].numpy(), u8.numpy())
    # psi: empty -> the export's default (0.7); one value -> every sample
    default = m.signatures["images_float"](seed=seeds, truncation_psi=tf.constant([], tf.float32))["images"]
    one = m.signatures["images_float"](seed=seeds, truncation_psi=tf.constant([0.7]))["images"]
    np.testing.assert_allclose(default.numpy(), one.numpy(), atol=1e-6)
    np.testing.assert_allclose(default.numpy()[2], flt.numpy()[2], atol=1e-6)
    assert np.abs(default.numpy()[0] - flt.numpy()[0]).max() > 1e-3  # psi 0.7 differs from psi 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation_psi"):
        m.signatures["images_float"](seed=seeds, truncation_psi=tf.constant([1.0, 1.0]))


def test_served_requests_are_checked_before_anything_is_generated(uncond_export):
    G, path = uncond_export
    m = tf.saved_model.load(str(path))
    sd, from_z = m.signatures["serving_default"], m.signatures["from_z"]
    seeds, z = tf.constant([1, 2], tf.int64), np.zeros([2, G.z_dim], np.float32)
    bad_z = z.copy()
    bad_z[1, 3] = np.nan
    cases = {
        "truncation_psi must be finite": lambda: sd(seed=seeds, truncation_psi=tf.constant([np.nan])),
        "truncation_psi must be finite ": lambda: sd(seed=seeds, truncation_psi=tf.constant([1.0, np.inf])),
        "empty request: send at least one seed": lambda: sd(seed=tf.constant([], tf.int64),
                                                             truncation_psi=tf.constant([], tf.float32)),
        "too many samples in one request: at most 64": lambda: sd(seed=tf.range(65, dtype=tf.int64),
                                                                   truncation_psi=tf.constant([1.0])),
        "z must be finite": lambda: from_z(z=tf.constant(bad_z), truncation_psi=tf.constant([1.0])),
    }
    for message, request in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message.strip()):
            request()
    assert from_z(z=tf.constant(z), truncation_psi=tf.constant([1.0]))["images"].shape == (2, 16, 16, 1)
    assert sd(seed=tf.range(64, dtype=tf.int64), truncation_psi=tf.constant([]))["images"].shape[0] == 64


def test_conditional_generator_export(tmp_path):
    G = _generator(c_dim=3, seed=1)
    path = export_generator(G, tmp_path, "generator", version=1, class_names=["meningioma", "glioma", "pituitary"],
                            max_batch=3)
    assert json.loads((path / "assets.extra" / "tfstylegan_export.json").read_text())["max_batch"] == 3
    m = tf.saved_model.load(str(path))
    _, inputs = m.signatures["serving_default"].structured_input_signature
    assert inputs["class_id"].dtype == tf.int32 and inputs["seed"].dtype == tf.int64
    seeds = tf.constant([5, 5, 5], tf.int64)
    cls = tf.constant([0, 1, 2], tf.int32)
    psi = tf.constant([1.0])
    u8 = m.signatures["serving_default"](seed=seeds, class_id=cls, truncation_psi=psi)["images"].numpy()
    assert u8.dtype == np.uint8 and u8.shape == (3, 16, 16, 1)
    assert np.any(u8[0] != u8[1]) and np.any(u8[1] != u8[2])  # the class changes the image
    z = np.random.RandomState(0).randn(3, G.z_dim).astype(np.float32)
    out = m.signatures["from_z"](z=tf.constant(z), class_id=cls, truncation_psi=psi)
    want = G(tf.constant(z), G.one_hot(cls), noise_mode="const").numpy()
    np.testing.assert_allclose(out["images_float"].numpy(), want, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_id"):
        m.signatures["serving_default"](seed=seeds, class_id=tf.constant([0, 1, 3]), truncation_psi=psi)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_id must have one value per seed"):
        m.signatures["serving_default"](seed=seeds, class_id=tf.constant([0, 1]), truncation_psi=psi)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 3 \\(--max_batch at export\\)"):
        m.signatures["serving_default"](seed=tf.constant([1, 2, 3, 4], tf.int64), class_id=tf.constant([0, 1, 2, 0]),
                                        truncation_psi=psi)


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(uncond_export, tmp_path):
    _, path = uncond_export
    r = subprocess.run([str(SAVED_MODEL_CLI), "show", "--dir", str(path), "--all"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "signature_def['serving_default']" in out and "signature_def['from_z']" in out
    assert "inputs['seed']" in out and "DT_UINT8" in out
    np.save(tmp_path / "seed.npy", np.array([1, 2], np.int64))
    np.save(tmp_path / "psi.npy", np.array([], np.float32))
    r = subprocess.run([str(SAVED_MODEL_CLI), "run", "--dir", str(path), "--tag_set", "serve", "--signature_def",
                        "serving_default", "--inputs",
                        f"seed={tmp_path / 'seed.npy'};truncation_psi={tmp_path / 'psi.npy'}",
                        "--outdir", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    images = np.load(tmp_path / "out" / "images.npy")
    m = tf.saved_model.load(str(path))
    want = m.signatures["serving_default"](seed=tf.constant([1, 2], tf.int64), truncation_psi=tf.constant([]))
    np.testing.assert_array_equal(images, want["images"].numpy())


def test_export_refuses_existing_version_and_bad_names(uncond_export, tmp_path):
    G, path = uncond_export
    with pytest.raises(FileExistsError):
        export_generator(G, path.parents[1], "generator_glioma", version=3)
    with pytest.raises(UserError, match="--version"):
        export_generator(G, tmp_path, "g", version=0)
    with pytest.raises(UserError, match="--name"):
        export_generator(G, tmp_path, "a/b", version=1)


@pytest.mark.slow
def test_classifier_export_any_size_gray_or_rgb(tmp_path):
    import keras

    from classifier.model import build_classifier, from_uint8

    keras.utils.set_random_seed(0)
    model = build_classifier(["meningioma", "glioma", "pituitary"], input_size=75)
    path = export_classifier(model, tmp_path, version=2)
    assert path == tmp_path / "classifier" / "2"
    m = tf.saved_model.load(str(path))
    assert list(m.signatures) == ["serving_default"]
    f = m.signatures["serving_default"]
    rng = np.random.RandomState(0)
    gray = rng.randint(0, 256, [2, 40, 52, 1]).astype(np.uint8)
    out = f(images=tf.constant(gray))
    assert out["probabilities"].shape == (2, 3) and out["features"].shape == (2, 2048)
    assert out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1.0, atol=1e-5)
    feats, probs = model.features_and_probs(from_uint8(gray))
    np.testing.assert_allclose(out["probabilities"].numpy(), probs.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["features"].numpy(), feats.numpy(), rtol=1e-4, atol=1e-4)
    # RGB of a gray image gives the gray result; another size works
    rgb = np.repeat(rng.randint(0, 256, [1, 90, 80, 1]).astype(np.uint8), 3, axis=-1)
    out_rgb = f(images=tf.constant(rgb))
    out_g = f(images=tf.constant(rgb[..., :1]))
    np.testing.assert_allclose(out_rgb["probabilities"].numpy(), out_g["probabilities"].numpy(), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 \\(gray\\) or 3"):
        f(images=tf.zeros([1, 80, 80, 2], tf.uint8))


@pytest.mark.slow
def test_export_launcher_from_checkpoint(tmp_path):
    from tfstylegan.training.checkpoint import save_networks

    preset = get_preset("tiny")
    G_ema = _generator(seed=3)
    G, D = Generator(preset.generator, name="G"), Discriminator(preset.discriminator, name="D")
    run_info = {"preset": preset.to_dict(), "class_names": ["pituitary"], "class_name": "pituitary",
                "conditional": False, "with_mask": False, "data": None, "options": {}}
    ckpt = save_networks(tmp_path / "ckpt", run_info, G, D, G_ema)
    r = subprocess.run([sys.executable, str(ROOT / "launchers" / "export.py"), f"--checkpoint={ckpt}",
                        f"--out={tmp_path / 'serving'}", "--truncation_psi=0.5"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "serving" / "generator_pituitary" / "1"
    m = tf.saved_model.load(str(path))
    z = np.random.RandomState(1).randn(2, G_ema.z_dim).astype(np.float32)
    got = m.signatures["from_z"](z=tf.constant(z), truncation_psi=tf.constant([], tf.float32))["images_float"]
    want = G_ema(tf.constant(z), truncation_psi=0.5, noise_mode="const").numpy()  # the EMA generator's weights
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    r = subprocess.run([sys.executable, str(ROOT / "launchers" / "export.py"), f"--out={tmp_path / 's2'}"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "Nothing to export" in r.stderr
    # exporting again: refused before writing (or replaced whole with --overwrite), never a partial export
    export = [sys.executable, str(ROOT / "launchers" / "export.py"), f"--checkpoint={ckpt}"]
    r = subprocess.run(export + [f"--out={tmp_path / 'serving'}"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and f"{path} already exists (exported before?)" in r.stderr, r.stderr
    r = subprocess.run(export + [f"--checkpoint={ckpt}", f"--out={tmp_path / 's3'}"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 1 and "would both be exported to" in r.stderr and not (tmp_path / "s3").exists()
    r = subprocess.run(export + [f"--out={tmp_path / 'serving'}", "--overwrite", "--max_batch=2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads((path / "assets.extra" / "tfstylegan_export.json").read_text())["max_batch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["1"]  # no .1.*.tmp / .old left beside it
