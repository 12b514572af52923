"""Import of the official NVlabs StyleGAN2 / StyleGAN2-ADA TensorFlow 1 network pickles.

An official `.pkl` is a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects (or
one `Gs`). Unpickling it the normal way imports `dnnlib` and EXECUTES the Python source
stored in the file (`build_module_src`). This module never does: `RestrictedUnpickler`
maps the few classes an official pickle needs to inert records (`NetworkRecord`, a plain
dict for `EasyDict`, numpy's array reconstructors) and refuses every other global with a
`UserError` naming the class and the file, so a malicious pickle cannot run anything.

The conversion follows stylegan2-ada-pytorch `legacy.py` (it does the same without TF1):

- Stored TF1 weights are unscaled, exactly like ours (equalized lr: the runtime gain
  `lrmul / sqrt(fan_in)` is applied in the layer), and TF1 layouts are ours already
  (dense `[in, out]`, conv `[kh, kw, in, out]`): weights copy as they are.
- `mod_bias` is stored without the constant +1 of the style affine; ours includes it.
- `Conv0_up` runs a transposed conv on the kernel flipped in TF1; our up-layer (like
  PyTorch's) convolves with its weight, so the imported weight is `w[::-1, ::-1]`.
- The const input `[1, C, 4, 4]` is NCHW -> ours `[4, 4, C]`; `noise{k}` `[1, 1, r, r]`
  -> `noise_const [r, r]` of SynthesisLayer k (k = 0 for 4x4/Conv, then Conv0_up, Conv1
  per resolution); `dlatent_avg` -> `mapping.w_avg`.
- The discriminator's `4x4/Dense0` consumes a flatten in NCHW order (c, h, w); ours
  flattens NHWC (h, w, c), so its rows are permuted.

RGB -> 1 channel (MRI): the skip generator's image is a sum of ToRGB outputs (linear in
ToRGB's weight and bias), so reducing ToRGB's 3 output channels with coefficients
`a` gives exactly `a . RGB` of the official image: 'luminance' (ITU-R 601,
0.299 R + 0.587 G + 0.114 B, what `tf.image.rgb_to_grayscale` and our folder loader
use), 'mean' (1/3 each) or 'first' (R). FromRGB gets a gray image g; the official D sees
an RGB image (g, g, g), so FromRGB's weights are summed over the 3 input channels (and
divided by sqrt(3): the runtime gain 1/sqrt(fan_in) grows when fan_in drops from 3 to 1):
the imported D on g equals the official D on (g, g, g) whatever `rgb_to_gray` is.

(Over 400 lines on purpose: one foreign format, the official TF1 pickle; the safe unpickler and the
name mapping belong together.)
"""

from __future__ import annotations

import codecs
import collections
import io
import math
import pickle
import re
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import keras
import numpy as np

from tfstylegan.config import DiscriminatorConfig, GeneratorConfig, Preset, get_preset, PRESET_NAMES
from tfstylegan.networks import Discriminator, Generator
from tfstylegan.training.checkpoint import save_networks
from tfstylegan.utils.errors import UserError
from tfstylegan.utils.io import sha256_file

try:
    from numpy._core import multiarray as _core_ma
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _core_ma

RGB_TO_GRAY = {
    "luminance": (0.299, 0.587, 0.114),
    "mean": (1.0 / 3, 1.0 / 3, 1.0 / 3),
    "first": (1.0, 0.0, 0.0),
}


# ----------------------------------------------------------------------------------------------
# Restricted unpickling.

class NetworkRecord:
    """Inert stand-in for `dnnlib.tflib.network.Network`: keeps the pickled state, runs nothing.

    Attributes (from the state dict): `version`, `name`, `static_kwargs`, `components`
    {name: NetworkRecord}, `variables` [(name, ndarray)], `build_func_name`.
    `build_module_src` is kept as text only for error messages; it is never executed.
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UserError(f"Network state must be a dict. Received: {type(state).__name__}")
        self.state = state

    @property
    def version(self) -> int:
        return int(self.state.get("version", 0))

    @property
    def name(self) -> str:
        return str(self.state.get("name", "?"))

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state.get("static_kwargs") or {})

    @property
    def components(self) -> dict:
        return dict(self.state.get("components") or {})

    @property
    def variables(self) -> list:
        return list(self.state.get("variables") or [])

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name", "?"))

    def params(self) -> dict[str, np.ndarray]:
        """All variables by full name ('Dense0/weight', 'mapping/Dense0/weight', ...), as legacy.py."""
        out: dict[str, np.ndarray] = {}

        def recurse(prefix: str, net: NetworkRecord) -> None:
            for name, value in net.variables:
                out[prefix + str(name)] = value
            for cname, comp in net.components.items():
                if not isinstance(comp, NetworkRecord):
                    raise UserError(f"Component {cname!r} of network {net.name!r} is a {type(comp).__name__}, "
                                    f"not a network.")
                recurse(prefix + str(cname) + "/", comp)

        recurse("", self)
        return out


class _EasyDictRecord(dict):
    """Inert stand-in for `dnnlib.EasyDict` (a dict)."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _core_ma._reconstruct
        allowed[(mod, "scalar")] = _core_ma.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed = {
        ("dnnlib.tflib.network", "Network"): NetworkRecord,
        ("dnnlib.util", "EasyDict"): _EasyDictRecord,
        ("dnnlib", "EasyDict"): _EasyDictRecord,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
    }
    allowed.update(_numpy_globals())
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds official network records and numpy arrays; it refuses
    every other class or function (`os.system`, `builtins.eval`, `subprocess.Popen`, ...)
    with a `UserError` before anything is called."""

    def __init__(self, file, path: str = "<pickle>"):
        super().__init__(file)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        obj = self._allowed.get((module, name))
        if obj is not None:
            return obj
        hint = ""
        if module.split(".")[0] in ("torch", "training", "torch_utils"):
            hint = (" It looks like a stylegan2-ada-pytorch (PyTorch) pickle; only the official TF1 pickles "
                    "of NVlabs/stylegan2 and NVlabs/stylegan2-ada can be imported.")
        raise UserError(
            f"{self._path}: refusing to load '{module}.{name}': an official StyleGAN2 network pickle holds only "
            f"dnnlib networks and numpy arrays, and loading anything else could run code from the file.{hint} "
            f"Nothing from the file was executed. Use an official NVlabs stylegan2 / stylegan2-ada .pkl.")

    def persistent_load(self, pid):
        raise UserError(f"{self._path}: refusing persistent id {pid!r}: not an official network pickle.")


def restricted_load(data_or_file, path: str = "<pickle>") -> Any:
    """Unpickles bytes or a binary file object with `RestrictedUnpickler` (runs no code from it)."""
    f = io.BytesIO(data_or_file) if isinstance(data_or_file, (bytes, bytearray)) else data_or_file
    try:
        return RestrictedUnpickler(f, path=path).load()
    except UserError:
        raise
    except Exception as e:  # truncated / not a pickle
        raise UserError(f"{path}: not a readable network pickle ({type(e).__name__}: {e}). "
                        f"Check the download is complete.") from None


def load_official_pickle(path) -> tuple[NetworkRecord | None, NetworkRecord | None, NetworkRecord]:
    """Reads an official TF1 pickle without executing it. Returns (G, D, Gs); G and D are None
    when the file holds only Gs."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Pickle {path} does not exist. Pass --pkl with a downloaded official .pkl file.")
    with open(path, "rb") as f:
        data = restricted_load(f, path=str(path))
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, NetworkRecord) for n in data):
        G, D, Gs = data
    elif isinstance(data, NetworkRecord):
        G, D, Gs = None, None, data
    else:
        raise UserError(f"{path}: expected a tuple (G, D, Gs) of TF networks or one network. "
                        f"Received: {type(data).__name__}")
    for net in (G, D, Gs):
        if net is not None and net.version < 4:
            raise UserError(f"{path}: network {net.name!r} has pickle version {net.version}; only versions 4 and 5 "
                            f"(NVlabs stylegan2 / stylegan2-ada) are supported.")
    return G, D, Gs


# ----------------------------------------------------------------------------------------------
# Static kwargs -> configs.

_G_IGNORED = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "randomize_noise",
              "is_training", "is_validation", "return_dlatents", "dtype", "fused_modconv", "components",
              "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta_val", "fmap_decay", "fmap_min",
              "num_fp16_res", "conv_clamp"}
_D_IGNORED = {"structure", "freeze_layers", "is_training", "dtype", "fmap_decay", "fmap_min",
              "num_fp16_res", "conv_clamp", "mbstd_group_size"}


def _kwargs(net: NetworkRecord, path: str, known: set[str], ignored: set[str]) -> dict:
    kw = net.static_kwargs
    unknown = sorted(set(kw) - known - ignored)
    if unknown:
        raise UserError(f"{path}: network {net.name!r} has build arguments this importer does not know: {unknown}. "
                        f"Only the official StyleGAN2 (config F) and StyleGAN2-ADA networks are supported.")
    return kw


def _generator_config(Gs: NetworkRecord, path: str, img_channels: int) -> tuple[GeneratorConfig, int]:
    """GeneratorConfig from Gs's static kwargs (defaults as legacy.py). Returns (config, source channels)."""
    known = {"latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",
             "label_fmaps", "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta",
             "dlatent_avg_beta", "fmap_base", "fmap_max", "architecture", "resample_kernel", "use_noise",
             "nonlinearity"}
    kw = _kwargs(Gs, path, known, _G_IGNORED)
    z_dim, w_dim = int(kw.get("latent_size", 512)), int(kw.get("dlatent_size", 512))
    c_dim = int(kw.get("label_size", 0) or 0)
    if c_dim:
        raise UserError(f"{path}: the generator is class-conditional ({c_dim} labels of its own dataset). Import an "
                        f"unconditional pickle and fine-tune it per tumor class instead.")
    for key, want in (("mapping_nonlinearity", "lrelu"), ("nonlinearity", "lrelu"), ("architecture", "skip")):
        if kw.get(key, want) != want:
            raise UserError(f"{path}: generator {key}={kw[key]!r} is not supported (only the official {want!r}).")
    if kw.get("mapping_fmaps") not in (None, w_dim):
        raise UserError(f"{path}: mapping_fmaps={kw['mapping_fmaps']} != dlatent_size={w_dim} is not supported.")
    if not kw.get("use_noise", True):
        raise UserError(f"{path}: generators without noise inputs (use_noise=False) are not supported.")
    src_channels = int(kw.get("num_channels", 3))
    beta = kw.get("w_avg_beta", kw.get("dlatent_avg_beta", 0.995))
    cfg = GeneratorConfig(
        z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=int(kw.get("resolution", 1024)),
        img_channels=img_channels, mapping_layers=int(kw.get("mapping_layers", 8)),
        mapping_lr_multiplier=float(kw.get("mapping_lrmul", 0.01)),
        w_avg_beta=0.995 if beta is None else float(beta),
        channel_base=int(kw.get("fmap_base", 16384)) * 2, channel_max=int(kw.get("fmap_max", 512)),
        resample_filter=tuple(int(t) for t in kw.get("resample_kernel", (1, 3, 3, 1))), architecture="skip",
        use_noise=True)
    return cfg, src_channels


def _discriminator_config(D: NetworkRecord, path: str, img_channels: int,
                          mbstd_group_size: int) -> DiscriminatorConfig:
    known = {"label_size", "resolution", "num_channels", "architecture", "fmap_base", "fmap_max", "nonlinearity",
             "resample_kernel", "mbstd_num_features", "mapping_layers", "mapping_fmaps", "mapping_lrmul"}
    kw = _kwargs(D, path, known, _D_IGNORED)
    if int(kw.get("label_size", 0) or 0):
        raise UserError(f"{path}: the discriminator is class-conditional; only unconditional pickles are supported.")
    for key, want in (("nonlinearity", "lrelu"), ("architecture", "resnet")):
        if kw.get(key, want) != want:
            raise UserError(f"{path}: discriminator {key}={kw[key]!r} is not supported (only the official {want!r}).")
    group = kw.get("mbstd_group_size")
    return DiscriminatorConfig(
        c_dim=0, img_resolution=int(kw.get("resolution", 1024)), img_channels=img_channels,
        channel_base=int(kw.get("fmap_base", 16384)) * 2, channel_max=int(kw.get("fmap_max", 512)),
        resample_filter=tuple(int(t) for t in kw.get("resample_kernel", (1, 3, 3, 1))), architecture="resnet",
        mbstd_group_size=int(group) if group else int(mbstd_group_size),
        mbstd_num_channels=int(kw.get("mbstd_num_features", 1)))


def official_preset(Gs: NetworkRecord, D: NetworkRecord | None, path: str, preset: str = "paper256",
                    resolution: int | None = None, img_channels: int = 1) -> tuple[Preset, int]:
    """The tfstylegan Preset for an official pickle: network configs from the pickle, training from `preset`.

    Checks the pickle's mapping depth against the preset's and its resolution against
    `resolution` (default: the preset's). Returns (preset, channels of the official images).
    """
    base = get_preset(preset)
    gcfg, src_channels = _generator_config(Gs, path, img_channels)
    if img_channels not in (1, src_channels):
        raise UserError(f"--img_channels={img_channels} is not supported for a {src_channels}-channel pickle: use 1 "
                        f"(reduce RGB to gray) or {src_channels} (keep it).")
    if gcfg.mapping_layers != base.generator.mapping_layers:
        fits = [n for n in PRESET_NAMES if get_preset(n).generator.mapping_layers == gcfg.mapping_layers]
        raise UserError(f"{path}: the official generator has {gcfg.mapping_layers} mapping layers but preset "
                        f"{preset!r} uses {base.generator.mapping_layers}. Choose --preset "
                        f"{' or '.join(fits) if fits else '(none fits)'}.")
    want_res = int(resolution) if resolution else base.generator.img_resolution
    if gcfg.img_resolution != want_res:
        raise UserError(f"{path}: the official networks are {gcfg.img_resolution}x{gcfg.img_resolution} but "
                        f"{want_res}x{want_res} is expected (--resolution, or preset {preset!r}). Choose a pickle "
                        f"trained at {want_res}, or pass --resolution {gcfg.img_resolution} and train on data "
                        f"prepared at that resolution.")
    # The activation clamp changes the function: keep the pickle's (StyleGAN2-ADA stores it), else the preset's.
    g_clamp = Gs.static_kwargs.get("conv_clamp", base.generator.conv_clamp)
    gcfg = gcfg.replace(num_fp16_res=min(base.generator.num_fp16_res, gcfg.num_blocks), conv_clamp=g_clamp)
    if D is not None:
        dcfg = _discriminator_config(D, path, img_channels, base.discriminator.mbstd_group_size)
        if dcfg.img_resolution != gcfg.img_resolution:
            raise UserError(f"{path}: D is {dcfg.img_resolution}x{dcfg.img_resolution} but G is "
                            f"{gcfg.img_resolution}x{gcfg.img_resolution}.")
    else:
        dcfg = base.discriminator.replace(img_resolution=gcfg.img_resolution, img_channels=img_channels, c_dim=0)
    d_clamp = (D.static_kwargs if D is not None else {}).get("conv_clamp", base.discriminator.conv_clamp)
    dcfg = dcfg.replace(num_fp16_res=min(base.discriminator.num_fp16_res, len(dcfg.block_resolutions) + 1),
                        conv_clamp=d_clamp)
    return Preset(name=base.name, generator=gcfg, discriminator=dcfg, train=base.train), src_channels


# ----------------------------------------------------------------------------------------------
# Weight conversion.

class _Params:
    """Official variables by name; `take` marks each as used so leftovers can be reported."""

    def __init__(self, params: Mapping[str, np.ndarray], what: str, path: str):
        self.params = dict(params)
        self.used: set[str] = set()
        self.what, self.path = what, path

    def take(self, name: str) -> np.ndarray:
        if name not in self.params:
            raise UserError(f"{self.path}: {self.what} has no variable {name!r}; this pickle's architecture does "
                            f"not match the official StyleGAN2 config F (has e.g. {sorted(self.params)[:6]}).")
        self.used.add(name)
        value = np.asarray(self.params[name])
        if value.dtype == object or not np.issubdtype(value.dtype, np.number):
            raise UserError(f"{self.path}: {self.what} variable {name!r} is not numeric (dtype {value.dtype}).")
        return value.astype(np.float32)

    def check_all_used(self, ignore: str = r"$^") -> None:
        left = sorted(n for n in self.params if n not in self.used and not re.fullmatch(ignore, n))
        if left:
            raise UserError(f"{self.path}: {self.what} has variables this importer does not place: {left[:8]}"
                            f"{' ...' if len(left) > 8 else ''}. The architecture differs from official config F.")


def _assign(var, value: np.ndarray, name: str, path: str) -> None:
    if tuple(var.shape) != tuple(value.shape):
        raise UserError(f"{path}: variable {name!r} has shape {tuple(value.shape)} but the tfstylegan network expects "
                        f"{tuple(var.shape)} (fmap_base / fmap_max / dims differ from the derived config).")
    var.assign(value.astype(np.float32))


def _gray(weight_or_bias: np.ndarray, coefs, axis: int) -> np.ndarray:
    """Reduces a 3-channel axis with coefficients `coefs`, keeping it as size 1."""
    c = np.asarray(coefs, np.float32)
    shape = [1] * weight_or_bias.ndim
    shape[axis] = 3
    return np.sum(weight_or_bias * c.reshape(shape), axis=axis, keepdims=True)


def assign_generator(G, net: NetworkRecord, path: str, rgb_to_gray: str = "luminance") -> None:
    """Copies an official TF1 generator (G or Gs) into our `Generator` G (same config)."""
    p = _Params(net.params(), f"generator {net.name!r}", path)
    coefs = RGB_TO_GRAY[rgb_to_gray]
    reduce_rgb = G.img_channels == 1

    _assign(G.mapping.w_avg, p.take("dlatent_avg"), "dlatent_avg", path)
    for i, fc in enumerate(G.mapping.fcs):
        _assign(fc.weight, p.take(f"mapping/Dense{i}/weight"), f"mapping/Dense{i}/weight", path)
        _assign(fc.bias, p.take(f"mapping/Dense{i}/bias"), f"mapping/Dense{i}/bias", path)

    def layer(ours, scope: str, noise_index: int, flip: bool) -> None:
        w = p.take(f"{scope}/weight")
        if flip:  # TF1's upsample_conv_2d flips the kernel for its transposed conv
            w = w[::-1, ::-1]
        _assign(ours.weight, np.ascontiguousarray(w), f"{scope}/weight", path)
        _assign(ours.bias, p.take(f"{scope}/bias"), f"{scope}/bias", path)
        _assign(ours.affine.weight, p.take(f"{scope}/mod_weight"), f"{scope}/mod_weight", path)
        _assign(ours.affine.bias, p.take(f"{scope}/mod_bias") + 1.0, f"{scope}/mod_bias", path)
        _assign(ours.noise_strength, p.take(f"{scope}/noise_strength"), f"{scope}/noise_strength", path)
        _assign(ours.noise_const, p.take(f"synthesis/noise{noise_index}")[0, 0], f"synthesis/noise{noise_index}",
                path)

    for block in G.synthesis.blocks:
        r = block.resolution
        s = f"synthesis/{r}x{r}"
        k = int(math.log2(r))
        if block.const is not None:
            const = p.take(f"{s}/Const/const")  # [1, C, 4, 4] NCHW
            _assign(block.const, np.transpose(const[0], (1, 2, 0)), f"{s}/Const/const", path)
            layer(block.conv1, f"{s}/Conv", 0, flip=False)
        else:
            layer(block.conv0, f"{s}/Conv0_up", 2 * k - 5, flip=True)
            layer(block.conv1, f"{s}/Conv1", 2 * k - 4, flip=False)
        w, b = p.take(f"{s}/ToRGB/weight"), p.take(f"{s}/ToRGB/bias")  # [1, 1, C, 3], [3]
        if reduce_rgb and w.shape[-1] == 3:
            w, b = _gray(w, coefs, axis=3), _gray(b, coefs, axis=0)
        _assign(block.torgb.weight, w, f"{s}/ToRGB/weight", path)
        _assign(block.torgb.bias, b, f"{s}/ToRGB/bias", path)
        _assign(block.torgb.affine.weight, p.take(f"{s}/ToRGB/mod_weight"), f"{s}/ToRGB/mod_weight", path)
        _assign(block.torgb.affine.bias, p.take(f"{s}/ToRGB/mod_bias") + 1.0, f"{s}/ToRGB/mod_bias", path)
    p.check_all_used(ignore=r"lod|.*/lod")


def assign_discriminator(D, net: NetworkRecord, path: str) -> None:
    """Copies an official TF1 discriminator into our `Discriminator` D (same config)."""
    p = _Params(net.params(), f"discriminator {net.name!r}", path)
    for block in D.blocks:
        r = block.resolution
        s = f"{r}x{r}"
        if block.fromrgb is not None:
            w = p.take(f"{s}/FromRGB/weight")  # [1, 1, 3, C]
            if D.img_channels == 1 and w.shape[2] == 3:
                # D(g) == official D(g, g, g): sum over the inputs; the equalized-lr gain 1/sqrt(fan_in)
                # is applied at run time and fan_in drops from 3 to 1, so divide by sqrt(3).
                w = np.sum(w, axis=2, keepdims=True) / np.sqrt(3.0)
            _assign(block.fromrgb.weight, w, f"{s}/FromRGB/weight", path)
            _assign(block.fromrgb.bias, p.take(f"{s}/FromRGB/bias"), f"{s}/FromRGB/bias", path)
        _assign(block.conv0.weight, p.take(f"{s}/Conv0/weight"), f"{s}/Conv0/weight", path)
        _assign(block.conv0.bias, p.take(f"{s}/Conv0/bias"), f"{s}/Conv0/bias", path)
        _assign(block.conv1.weight, p.take(f"{s}/Conv1_down/weight"), f"{s}/Conv1_down/weight", path)
        _assign(block.conv1.bias, p.take(f"{s}/Conv1_down/bias"), f"{s}/Conv1_down/bias", path)
        _assign(block.skip.weight, p.take(f"{s}/Skip/weight"), f"{s}/Skip/weight", path)
    ep = D.b4
    _assign(ep.conv.weight, p.take("4x4/Conv/weight"), "4x4/Conv/weight", path)
    _assign(ep.conv.bias, p.take("4x4/Conv/bias"), "4x4/Conv/bias", path)
    w = p.take("4x4/Dense0/weight")  # [C*4*4, out], rows in NCHW flatten order (c, h, w)
    c = ep.in_channels
    if w.shape[0] == c * 16:
        w = w.reshape(c, 4, 4, -1).transpose(1, 2, 0, 3).reshape(c * 16, -1)  # rows in NHWC order (h, w, c)
    _assign(ep.fc.weight, w, "4x4/Dense0/weight", path)
    _assign(ep.fc.bias, p.take("4x4/Dense0/bias"), "4x4/Dense0/bias", path)
    _assign(ep.out.weight, p.take("Output/weight"), "Output/weight", path)
    _assign(ep.out.bias, p.take("Output/bias"), "Output/bias", path)
    p.check_all_used()


def convert_official_pickle(pkl, preset: str = "paper256", resolution: int | None = None, img_channels: int = 1,
                            rgb_to_gray: str = "luminance", seed: int = 0):
    """Official TF1 pickle -> (G, D, G_ema, preset, info) as tfstylegan networks. Executes nothing from the file.

    G, G_ema: `Generator`; D: `Discriminator` (freshly initialised with `seed` when the pickle
    holds only Gs; G is then a copy of Gs). `info` describes the source for run.json.
    """
    if rgb_to_gray not in RGB_TO_GRAY:
        raise UserError(f"--rgb_to_gray must be one of {sorted(RGB_TO_GRAY)}. Received: {rgb_to_gray!r}")
    if preset not in PRESET_NAMES:
        raise UserError(f"Unknown preset {preset!r}. Choose one of {', '.join(PRESET_NAMES)}.")
    path = str(pkl)
    tf_G, tf_D, tf_Gs = load_official_pickle(pkl)
    full_preset, src_channels = official_preset(tf_Gs, tf_D, path, preset=preset, resolution=resolution,
                                                img_channels=img_channels)
    keras.utils.set_random_seed(seed)
    G = Generator(full_preset.generator, name="G")
    G_ema = Generator(full_preset.generator, name="G_ema")
    D = Discriminator(full_preset.discriminator, name="D")
    assign_generator(G_ema, tf_Gs, path, rgb_to_gray)
    assign_generator(G, tf_G if tf_G is not None else tf_Gs, path, rgb_to_gray)
    if tf_D is not None:
        assign_discriminator(D, tf_D, path)
    info = {"source_pickle": str(Path(pkl).resolve()), "networks": [n.name for n in (tf_G, tf_D, tf_Gs) if n],
            "source_channels": src_channels, "rgb_to_gray": rgb_to_gray if src_channels != img_channels else None,
            "discriminator": "imported" if tf_D is not None else f"random init (seed {seed}); the pickle has only Gs"}
    return G, D, G_ema, full_preset, info


def import_official_pickle(pkl, out_dir, preset: str = "paper256", resolution: int | None = None,
                           img_channels: int = 1, rgb_to_gray: str = "luminance", class_name: str | None = None,
                           overwrite: bool = False) -> Path:
    """Converts an official TF1 pickle into a tfstylegan checkpoint folder (`save_networks` layout).

    The folder works as `--checkpoint` for generate / export and as `--resume` for training
    (fresh optimizers, kimg 0). `class_name` records which tumor class the model will be
    fine-tuned on (per-class runs); it can be left None. Returns `out_dir`.
    """
    G, D, G_ema, full_preset, info = convert_official_pickle(pkl, preset=preset, resolution=resolution,
                                                             img_channels=img_channels, rgb_to_gray=rgb_to_gray)
    info["sha256"] = sha256_file(pkl)
    run_info = {"preset": full_preset.to_dict(), "class_names": [class_name] if class_name else [],
                "class_name": class_name, "conditional": False, "with_mask": False, "data": None,
                "options": {"imported": info}}
    return save_networks(out_dir, run_info, G, D, G_ema, overwrite=overwrite)
