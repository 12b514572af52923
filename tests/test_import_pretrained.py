"""Official TF1 pickle import: restricted unpickling, faithful weights, checks, resumable output.

The official networks are reproduced by an independent numpy forward pass written from the
TF1 graph (NVlabs/stylegan2 `networks_stylegan2.py`, `dnnlib/tflib/ops/upfirdn_2d.py`):
NCHW, per-sample modulated weights, TF1's fused `upsample_conv_2d` (transposed conv with
the flipped kernel, then the FIR filter) and `conv_downsample_2d`, NCHW flatten before
`4x4/Dense0`. The fake pickle is built by pickling a stand-in `dnnlib.tflib.network.Network`.
"""

import contextlib
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfstylegan.export import legacy
from tfstylegan.training.checkpoint import load_generator, load_networks, load_run_info
from tfstylegan.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# A small official-layout network: 16x16, z = w = 16, 2 mapping layers, TF1 fmap_base 64
# (channels 32, 16, 8 at 4, 8, 16), fmap_max 32.
RES, ZDIM, MAP, FMAP_BASE, FMAP_MAX = 16, 16, 2, 64, 32
LRMUL = 0.01
SQRT2 = np.sqrt(2.0)


def nf(res):
    """Channels at resolution `res` (TF1 nf(log2(res) - 1))."""
    return min(2 * FMAP_BASE // res, FMAP_MAX)


# ----------------------------------------------------------------------------------------------
# Building official-layout pickles.

@contextlib.contextmanager
def fake_dnnlib():
    """Registers stand-in `dnnlib.tflib.network.Network` and `dnnlib.EasyDict` while pickling."""
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    class EasyDict(dict):
        pass

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib", "EasyDict"
    mods["dnnlib.tflib.network"].Network = Network
    mods["dnnlib"].EasyDict = EasyDict
    sys.modules.update(mods)
    try:
        yield Network, EasyDict
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _state(Network, name, func, static_kwargs, variables, components=None):
    return Network({"version": 4, "name": name, "static_kwargs": static_kwargs,
                    "components": components or {},
                    "build_module_src": "import os\nos.system('echo this must never run')\n",
                    "build_func_name": func, "variables": list(variables.items())})


def official_generator_params(rng, channels=3):
    """{'mapping/...': ..., 'synthesis/...': ..., 'dlatent_avg': ...} with official names and shapes."""
    p = {}
    for i in range(MAP):
        p[f"mapping/Dense{i}/weight"] = rng.standard_normal([ZDIM, ZDIM]) / LRMUL  # stored N(0, 1/lrmul)
        p[f"mapping/Dense{i}/bias"] = rng.standard_normal([ZDIM]) * 10
    p["dlatent_avg"] = rng.standard_normal([ZDIM])
    p["synthesis/4x4/Const/const"] = rng.standard_normal([1, nf(4), 4, 4])

    def layer(scope, cin, cout, k=3, noise=True):
        p[f"{scope}/weight"] = rng.standard_normal([k, k, cin, cout])
        p[f"{scope}/bias"] = rng.standard_normal([cout]) * 0.2
        p[f"{scope}/mod_weight"] = rng.standard_normal([ZDIM, cin])
        p[f"{scope}/mod_bias"] = rng.standard_normal([cin]) * 0.2
        if noise:
            p[f"{scope}/noise_strength"] = np.float32(rng.standard_normal() * 0.3)

    layer("synthesis/4x4/Conv", nf(4), nf(4))
    layer("synthesis/4x4/ToRGB", nf(4), channels, k=1, noise=False)
    r = 8
    while r <= RES:
        layer(f"synthesis/{r}x{r}/Conv0_up", nf(r // 2), nf(r))
        layer(f"synthesis/{r}x{r}/Conv1", nf(r), nf(r))
        layer(f"synthesis/{r}x{r}/ToRGB", nf(r), channels, k=1, noise=False)
        r *= 2
    for k in range(2 * int(np.log2(RES)) - 3):
        r = 2 ** (2 + (k + 1) // 2)
        p[f"synthesis/noise{k}"] = rng.standard_normal([1, 1, r, r])
    return {k: np.asarray(v, np.float32) for k, v in p.items()}


def official_discriminator_params(rng, channels=3):
    p = {f"{RES}x{RES}/FromRGB/weight": rng.standard_normal([1, 1, channels, nf(RES)]),
         f"{RES}x{RES}/FromRGB/bias": rng.standard_normal([nf(RES)]) * 0.2}
    r = RES
    while r > 4:
        p[f"{r}x{r}/Conv0/weight"] = rng.standard_normal([3, 3, nf(r), nf(r)])
        p[f"{r}x{r}/Conv0/bias"] = rng.standard_normal([nf(r)]) * 0.2
        p[f"{r}x{r}/Conv1_down/weight"] = rng.standard_normal([3, 3, nf(r), nf(r // 2)])
        p[f"{r}x{r}/Conv1_down/bias"] = rng.standard_normal([nf(r // 2)]) * 0.2
        p[f"{r}x{r}/Skip/weight"] = rng.standard_normal([1, 1, nf(r), nf(r // 2)])
        r //= 2
    c = nf(4)
    p["4x4/Conv/weight"] = rng.standard_normal([3, 3, c + 1, c])
    p["4x4/Conv/bias"] = rng.standard_normal([c]) * 0.2
    p["4x4/Dense0/weight"] = rng.standard_normal([c * 16, c])
    p["4x4/Dense0/bias"] = rng.standard_normal([c]) * 0.2
    p["Output/weight"] = rng.standard_normal([c, 1])
    p["Output/bias"] = rng.standard_normal([1]) * 0.2
    return {k: np.asarray(v, np.float32) for k, v in p.items()}


def g_kwargs(**over):
    kw = {"num_channels": 3, "resolution": RES, "label_size": 0, "latent_size": ZDIM, "dlatent_size": ZDIM,
          "mapping_layers": MAP, "fmap_base": FMAP_BASE, "fmap_max": FMAP_MAX}
    kw.update(over)
    return kw


def d_kwargs(**over):
    kw = {"num_channels": 3, "resolution": RES, "label_size": 0, "fmap_base": FMAP_BASE, "fmap_max": FMAP_MAX,
          "mbstd_group_size": 2}
    kw.update(over)
    return kw


def _tf_generator(Network, EasyDict, params, name, kwargs):
    mapping = {k[len("mapping/"):]: v for k, v in params.items() if k.startswith("mapping/")}
    synthesis = {k[len("synthesis/"):]: v for k, v in params.items() if k.startswith("synthesis/")}
    comps = {"mapping": _state(Network, "G_mapping", "training.networks_stylegan2.G_mapping", {}, mapping),
             "synthesis": _state(Network, "G_synthesis", "training.networks_stylegan2.G_synthesis_stylegan2", {},
                                 synthesis)}
    return _state(Network, name, "training.networks_stylegan2.G_main", EasyDict(kwargs),
                  {"dlatent_avg": params["dlatent_avg"]}, comps)


def write_official_pickle(path, gs_params, g_params, d_params, gk=None, dk=None, only_gs=False):
    with fake_dnnlib() as (Network, EasyDict):
        Gs = _tf_generator(Network, EasyDict, gs_params, "Gs", gk or g_kwargs())
        G = _tf_generator(Network, EasyDict, g_params, "G", gk or g_kwargs())
        D = _state(Network, "D", "training.networks_stylegan2.D_stylegan2", dk or d_kwargs(), d_params)
        with open(path, "wb") as f:
            pickle.dump(Gs if only_gs else (G, D, Gs), f, protocol=3)
    assert "dnnlib" not in sys.modules
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    rng = np.random.default_rng(123)
    gs, g, d = official_generator_params(rng), official_generator_params(rng), official_discriminator_params(rng)
    path = write_official_pickle(tmp_path_factory.mktemp("pkl") / "official.pkl", gs, g, d)
    return path, gs, g, d


# ----------------------------------------------------------------------------------------------
# The official TF1 forward pass, in numpy (NCHW).

def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x) * SQRT2


def setup_kernel(k=(1, 3, 3, 1)):
    k = np.asarray(k, np.float64)
    k = np.outer(k, k)
    return k / k.sum()


def upfirdn(x, k, up=1, down=1, pad0=0, pad1=0):
    """TF1 `_upfirdn_2d_ref` on [N, C, H, W]: zero-insert, pad, convolve with k, subsample."""
    n, c, h, w = x.shape
    if up > 1:
        z = np.zeros([n, c, h * up, w * up], x.dtype)
        z[:, :, ::up, ::up] = x
        x = z
    x = np.pad(x, [(0, 0), (0, 0), (pad0, pad1), (pad0, pad1)])
    kf = k[::-1, ::-1]  # convolution
    kh, kw = k.shape
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros([n, c, oh, ow])
    for dy in range(kh):
        for dx in range(kw):
            out += x[:, :, dy:dy + oh, dx:dx + ow] * kf[dy, dx]
    return out[:, :, ::down, ::down]


def conv(x, w, pad, stride=1):
    """Correlation of x [N, I, H, W] with per-sample w [N, kh, kw, I, O] (or shared [kh, kw, I, O])."""
    if w.ndim == 4:
        w = np.broadcast_to(w, (x.shape[0],) + w.shape)
    x = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    kh, kw = w.shape[1:3]
    oh = (x.shape[2] - kh) // stride + 1
    ow = (x.shape[3] - kw) // stride + 1
    out = np.zeros([x.shape[0], w.shape[-1], oh, ow])
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, :, dy:dy + stride * (oh - 1) + 1:stride, dx:dx + stride * (ow - 1) + 1:stride]
            out += np.einsum("nihw,nio->nohw", patch, w[:, dy, dx])
    return out


def conv_transpose(x, W, stride):
    """tf.nn.conv2d_transpose (VALID) of x [N, I, H, W] with per-sample W [N, kh, kw, O, I]."""
    n, _, h, wd = x.shape
    kh, kw, o = W.shape[1], W.shape[2], W.shape[3]
    out = np.zeros([n, o, (h - 1) * stride + kh, (wd - 1) * stride + kw])
    for dy in range(kh):
        for dx in range(kw):
            out[:, :, dy:dy + stride * (h - 1) + 1:stride, dx:dx + stride * (wd - 1) + 1:stride] += \
                np.einsum("nihw,noi->nohw", x, W[:, dy, dx])
    return out


def upsample_conv_2d(x, w):
    """TF1 upsample_conv_2d, factor 2: transposed conv with the flipped kernel, then the FIR filter."""
    k = setup_kernel() * 4
    kw = w.shape[2]
    p = (k.shape[0] - 2) - (kw - 1)
    W = np.transpose(w[:, ::-1, ::-1], (0, 1, 2, 4, 3))  # [N, kh, kw, O, I]
    x = conv_transpose(x, W, 2)
    return upfirdn(x, k, pad0=(p + 1) // 2 + 1, pad1=p // 2 + 1)


def conv_downsample_2d(x, w):
    """TF1 conv_downsample_2d, factor 2: FIR filter with padding, then a stride-2 VALID conv."""
    k = setup_kernel()
    kw = w.shape[1]
    p = (k.shape[0] - 2) + (kw - 1)
    x = upfirdn(x, k, pad0=(p + 1) // 2, pad1=p // 2)
    return conv(x, w, pad=0, stride=2)


def upsample_2d(x):
    k = setup_kernel() * 4
    p = k.shape[0] - 2
    return upfirdn(x, k, up=2, pad0=(p + 1) // 2 + 1, pad1=p // 2)


def modulated_conv(x, y, P, scope, demodulate=True, up=False):
    w = P[f"{scope}/weight"].astype(np.float64)
    w = w / np.sqrt(np.prod(w.shape[:-1]))  # equalized lr runtime coefficient
    s = y @ (P[f"{scope}/mod_weight"] / np.sqrt(ZDIM)) + P[f"{scope}/mod_bias"] + 1  # [N, I]
    ww = w[None] * s[:, None, None, :, None]
    if demodulate:
        ww = ww / np.sqrt(np.sum(ww ** 2, axis=(1, 2, 3), keepdims=True) + 1e-8)
    if up:
        return upsample_conv_2d(x, ww)
    return conv(x, ww, pad=w.shape[0] // 2)


def official_G(P, z, psi=1.0):
    """G_main(z, truncation_psi=psi, randomize_noise=False) of the official TF1 code -> NCHW float."""
    x = z.astype(np.float64)
    x = x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)
    for i in range(MAP):
        x = lrelu(x @ (P[f"mapping/Dense{i}/weight"] * LRMUL / np.sqrt(ZDIM)) + P[f"mapping/Dense{i}/bias"] * LRMUL)
    num_layers = 2 * int(np.log2(RES)) - 2
    dl = np.repeat(x[:, None], num_layers, axis=1)
    dl = P["dlatent_avg"] + psi * (dl - P["dlatent_avg"])

    def layer(x, idx, scope, up=False):
        x = modulated_conv(x, dl[:, idx], P, f"synthesis/{scope}", up=up)
        x = x + P[f"synthesis/noise{idx}"] * P[f"synthesis/{scope}/noise_strength"]
        return lrelu(x + P[f"synthesis/{scope}/bias"][None, :, None, None])

    def torgb(x, idx, res):
        t = modulated_conv(x, dl[:, idx], P, f"synthesis/{res}x{res}/ToRGB", demodulate=False)
        return t + P[f"synthesis/{res}x{res}/ToRGB/bias"][None, :, None, None]

    x = np.repeat(P["synthesis/4x4/Const/const"].astype(np.float64), len(z), axis=0)
    x = layer(x, 0, "4x4/Conv")
    y = torgb(x, 1, 4)
    for res_log2 in range(3, int(np.log2(RES)) + 1):
        r = 2 ** res_log2
        x = layer(x, res_log2 * 2 - 5, f"{r}x{r}/Conv0_up", up=True)
        x = layer(x, res_log2 * 2 - 4, f"{r}x{r}/Conv1")
        y = upsample_2d(y) + torgb(x, res_log2 * 2 - 3, r)
    return y


def official_D(P, img, group=2):
    """D_stylegan2 (resnet) of the official TF1 code on NCHW images -> logits [N, 1]."""
    def dense(x, scope):
        w = P[f"{scope}/weight"] / np.sqrt(P[f"{scope}/weight"].shape[0])
        return x.reshape(len(x), -1) @ w + P[f"{scope}/bias"]  # NCHW flatten

    def conv_layer(x, scope, down=False):
        w = P[f"{scope}/weight"].astype(np.float64)
        w = w / np.sqrt(np.prod(w.shape[:-1]))
        return conv_downsample_2d(x, w[None].repeat(len(x), 0)) if down else conv(x, w, pad=w.shape[0] // 2)

    def bias(x, scope):
        return x + P[f"{scope}/bias"][None, :, None, None]

    x = lrelu(bias(conv_layer(img.astype(np.float64), f"{RES}x{RES}/FromRGB"), f"{RES}x{RES}/FromRGB"))
    r = RES
    while r > 4:
        t = x
        x = lrelu(bias(conv_layer(x, f"{r}x{r}/Conv0"), f"{r}x{r}/Conv0"))
        x = lrelu(bias(conv_layer(x, f"{r}x{r}/Conv1_down", down=True), f"{r}x{r}/Conv1_down"))
        t = conv_layer(t, f"{r}x{r}/Skip", down=True)
        x = (x + t) / SQRT2
        r //= 2
    n, c, h, w = x.shape
    y = x.reshape(group, -1, 1, c, h, w)
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt(np.mean(y ** 2, axis=0) + 1e-8)
    y = y.mean(axis=(2, 3, 4))[:, :, None, None]  # [M, 1, 1, 1]
    y = np.tile(y, (group, 1, h, w))
    x = np.concatenate([x, y], axis=1)
    x = lrelu(bias(conv_layer(x, "4x4/Conv"), "4x4/Conv"))
    x = lrelu(dense(x, "4x4/Dense0"))
    return dense(x, "Output")


# ----------------------------------------------------------------------------------------------
# Tests.

def _z(n=4, seed=0):
    return np.random.RandomState(seed).randn(n, ZDIM).astype(np.float32)


@pytest.fixture(scope="module")
def converted(official):
    path = official[0]
    return legacy.convert_official_pickle(path, preset="tiny", img_channels=1, rgb_to_gray="luminance")


def test_imported_generator_equals_official_forward_pass(official, converted):
    _, gs, g, _ = official
    G, _, G_ema, preset, info = converted
    assert preset.generator.img_channels == 1 and preset.generator.channel_base == 2 * FMAP_BASE
    z = _z()
    lum = np.array([0.299, 0.587, 0.114])
    for psi in (1.0, 0.6):
        rgb = official_G(gs, z, psi=psi)  # [N, 3, H, W]
        want = np.einsum("nchw,c->nhw", rgb, lum)[..., None]
        got = G_ema(tf.constant(z), truncation_psi=psi, noise_mode="const").numpy()
        assert got.shape == (4, RES, RES, 1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # G holds G's weights, not Gs's
    want_g = np.einsum("nchw,c->nhw", official_G(g, z), lum)[..., None]
    np.testing.assert_allclose(G(tf.constant(z), noise_mode="const").numpy(), want_g, rtol=1e-4,
                               atol=1e-4 * np.abs(want_g).max())
    assert info["rgb_to_gray"] == "luminance" and info["source_channels"] == 3


def test_imported_generator_keeps_rgb_when_asked(official):
    path, gs, _, _ = official
    _, _, G_ema, preset, _ = legacy.convert_official_pickle(path, preset="tiny", img_channels=3)
    z = _z(2, seed=5)
    want = np.transpose(official_G(gs, z), (0, 2, 3, 1))
    got = G_ema(tf.constant(z), noise_mode="const").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # the uint8 images agree to within one level, as the official tools' conversion
    to8 = lambda a: np.clip(a * 127.5 + 128, 0, 255).astype(np.uint8)  # noqa: E731
    assert np.abs(to8(got).astype(int) - to8(want).astype(int)).max() <= 1


def test_imported_discriminator_equals_official_on_gray(official, converted):
    _, _, _, d = official
    _, D, _, _, _ = converted
    gray = np.random.RandomState(1).uniform(-1, 1, [4, RES, RES, 1]).astype(np.float32)
    want = official_D(d, np.repeat(np.transpose(gray, (0, 3, 1, 2)), 3, axis=1))
    got = D(tf.constant(gray)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("mode,coefs", [("mean", (1 / 3, 1 / 3, 1 / 3)), ("first", (1, 0, 0))])
def test_rgb_to_gray_modes(official, mode, coefs):
    path, gs, _, _ = official
    _, _, G_ema, _, _ = legacy.convert_official_pickle(path, preset="tiny", rgb_to_gray=mode)
    z = _z(2, seed=3)
    want = np.einsum("nchw,c->nhw", official_G(gs, z), np.asarray(coefs))[..., None]
    np.testing.assert_allclose(G_ema(tf.constant(z), noise_mode="const").numpy(), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


def test_import_writes_resumable_checkpoint_folder(official, tmp_path):
    path, gs, _, _ = official
    out = legacy.import_official_pickle(path, tmp_path / "imported", preset="tiny")
    info = load_run_info(out)
    assert info["preset"]["generator"]["mapping_layers"] == MAP
    assert info["options"]["imported"]["sha256"]
    G, D, G_ema, info2 = load_networks(out)
    assert info2 == info
    Gl, _ = load_generator(out)
    z = _z(2)
    want = np.einsum("nchw,c->nhw", official_G(gs, z), [0.299, 0.587, 0.114])[..., None]
    np.testing.assert_allclose(Gl(tf.constant(z), noise_mode="const").numpy(), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())
    with pytest.raises(FileExistsError):
        legacy.import_official_pickle(path, out, preset="tiny")


def test_only_gs_pickle_gives_g_copy_and_fresh_d(tmp_path):
    rng = np.random.default_rng(7)
    gs = official_generator_params(rng)
    p = write_official_pickle(tmp_path / "gs.pkl", gs, gs, {}, only_gs=True)
    G, D, G_ema, _, info = legacy.convert_official_pickle(p, preset="tiny")
    z = tf.constant(_z(2))
    np.testing.assert_array_equal(G(z, noise_mode="const").numpy(), G_ema(z, noise_mode="const").numpy())
    assert "random init" in info["discriminator"]


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pkl"
    with open(bad, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(UserError, match=r"refusing to load '(posix|os|nt)\.system'.*evil\.pkl|evil\.pkl.*refusing"):
        legacy.load_official_pickle(bad)
    assert not marker.exists()
    # the same payload hidden inside an official-looking network state
    with fake_dnnlib() as (Network, EasyDict):
        net = _state(Network, "Gs", "G_main", {"resolution": Evil()}, {})
        with open(tmp_path / "evil2.pkl", "wb") as f:
            pickle.dump(net, f)
    with pytest.raises(UserError, match="refusing"):
        legacy.load_official_pickle(tmp_path / "evil2.pkl")
    assert not marker.exists()
    # builtins.eval through the launcher: clean error, exit 1, nothing run
    evil3 = tmp_path / "evil3.pkl"
    evil3.write_bytes(b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR.")
    r = subprocess.run([sys.executable, str(ROOT / "launchers" / "import_pretrained.py"), f"--pkl={evil3}",
                        f"--out={tmp_path / 'o'}", "--preset=tiny"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1, r.stderr
    assert "refusing to load 'builtins.eval'" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_network_state_source_is_never_executed(official, monkeypatch):
    # build_module_src holds code; loading must neither exec nor compile it
    import builtins

    calls = []
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: calls.append(a))
    G, D, Gs = legacy.load_official_pickle(official[0])
    assert Gs.state["build_module_src"].startswith("import os") and not calls


def test_mismatched_mapping_depth_and_resolution_are_clear_errors(official, tmp_path):
    path = official[0]
    with pytest.raises(UserError, match=r"2 mapping layers but preset 'paper256' uses 8.*--preset (tiny|demo)"):
        legacy.convert_official_pickle(path, preset="paper256")
    with pytest.raises(UserError, match=r"16x16 but 32x32 is expected.*--resolution 16"):
        legacy.convert_official_pickle(path, preset="tiny", resolution=32)
    rng = np.random.default_rng(0)
    gs = official_generator_params(rng)
    p = write_official_pickle(tmp_path / "cond.pkl", gs, gs, official_discriminator_params(rng),
                              gk=g_kwargs(label_size=10))
    with pytest.raises(UserError, match="class-conditional"):
        legacy.convert_official_pickle(p, preset="tiny")
    bad_fmaps = write_official_pickle(tmp_path / "fm.pkl", gs, gs, official_discriminator_params(rng),
                                      gk=g_kwargs(fmap_base=128))
    with pytest.raises(UserError, match=r"shape"):
        legacy.convert_official_pickle(bad_fmaps, preset="tiny")
    odd = write_official_pickle(tmp_path / "odd.pkl", gs, gs, official_discriminator_params(rng),
                                gk=g_kwargs(foo_bar=1))
    with pytest.raises(UserError, match="foo_bar"):
        legacy.convert_official_pickle(odd, preset="tiny")


def test_pytorch_and_garbage_files_are_refused(tmp_path):
    torchy = tmp_path / "torch.pkl"
    torchy.write_bytes(b"\x80\x03ctorch._utils\n_rebuild_tensor_v2\nq\x00.")
    with pytest.raises(UserError, match="PyTorch"):
        legacy.load_official_pickle(torchy)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a readable network pickle"):
        legacy.load_official_pickle(junk)
    with pytest.raises(UserError, match="does not exist"):
        legacy.load_official_pickle(tmp_path / "missing.pkl")


def test_launcher_imports_and_output_is_a_checkpoint(official, tmp_path):
    out = tmp_path / "imp"
    r = subprocess.run([sys.executable, str(ROOT / "launchers" / "import_pretrained.py"), f"--pkl={official[0]}",
                        f"--out={out}", "--preset=tiny", "--rgb_to_gray=mean"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = load_run_info(out)
    assert info["options"]["imported"]["rgb_to_gray"] == "mean"
    assert (out / "run.json").is_file()
