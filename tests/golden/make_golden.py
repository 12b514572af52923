"""Golden values from the reference implementation, NVlabs/stylegan2-ada-pytorch, for
tests/test_golden_reference.py.

NOT run by CI (it needs PyTorch and the reference's source, neither of which this project
depends on). The .npz/.json files it writes are committed; rerun it only to regenerate them.

How to run (CPU is enough; about a minute):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch numpy scipy pillow click requests tqdm psutil
    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada    # tested at d72cc7d
    /tmp/torchvenv/bin/python tests/golden/make_golden.py /tmp/sg2ada

(checked with torch 2.14.1 CPU, numpy 2.4.6, scipy 1.17.1). It writes, next to itself:

- `configs.json`: the reference's training settings (train.py `setup_training_loop_kwargs`)
  for every cfg ('auto', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar') at
  resolutions 32..1024 with 1 and 8 GPUs, computed by calling the reference's own code on a
  one-image dataset of each resolution.
- `augment.npz`: `training/augment.py` AugmentPipe on [4, C, 16, 16] images: each 'bgc'
  transform alone (p = 1), all of 'bgc' at once (p = 0.7, 1 and 3 channels), and a strong
  geometric case whose padding margin hits its clamp. Per case: input, output, the gradient of
  sum(output * upstream) w.r.t. the input, and every random draw the pipe made (by name).
- `phases.npz`: one step of each phase (Gmain, Greg, Dmain, Dreg) of `training/loss.py`
  StyleGAN2Loss on a tiny conditional G and D (16x16, 1 channel, batch 4), each phase from the
  same weights and state: losses, per-parameter gradients (after the reference's nan_to_num),
  the updated w_avg and pl_mean, and every random draw (style-mixing cutoff and gate, mixing z,
  per-layer synthesis noise, path-length noise, augmentation draws).
- `training.npz`: a few iterations of the reference's training loop (phases with lazy
  regularisation, Adam with the lazy lr/beta correction, nan_to_num, G_ema, the ADA heuristic)
  from the same weights: G_ema, G, D, ADA p, pl_mean and the draws of every iteration.

Random draws are recorded, not forced: torch.rand / randn / randn_like / Tensor.random_ are
wrapped while the reference runs, each call draws from the seeded torch generator as usual and
its value is stored with its call site (the synthesis layer that drew it, or the augmentation
parameter, in the reference's order). Weights are stored under their torch names in torch's
layouts; the tests map them onto tfstylegan's variables.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent
RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
GPU_COUNTS = (1, 8)
CFGS = ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar")

# The tiny networks of phases.npz / training.npz (tfstylegan preset 'tiny' with these values).
TINY = dict(z_dim=16, w_dim=16, c_dim=3, img_resolution=16, img_channels=1, mapping_layers=2,
            channel_base=128, channel_max=16, mbstd_group_size=2, d_mapping_layers=2)
BATCH = 4

# Augmentation parameter names in the order the reference draws them (augment.py forward()):
# (name, op multiplier that enables it, needs more than one channel).
AUG_DRAWS = [
    ("xflip", "xflip", False), ("xflip_gate", "xflip", False),
    ("rotate90", "rotate90", False), ("rotate90_gate", "rotate90", False),
    ("xint", "xint", False), ("xint_gate", "xint", False),
    ("scale", "scale", False), ("scale_gate", "scale", False),
    ("rotate_pre", "rotate", False), ("rotate_pre_gate", "rotate", False),
    ("aniso", "aniso", False), ("aniso_gate", "aniso", False),
    ("rotate_post", "rotate", False), ("rotate_post_gate", "rotate", False),
    ("xfrac", "xfrac", False), ("xfrac_gate", "xfrac", False),
    ("brightness", "brightness", False), ("brightness_gate", "brightness", False),
    ("contrast", "contrast", False), ("contrast_gate", "contrast", False),
    ("lumaflip", "lumaflip", False), ("lumaflip_gate", "lumaflip", False),
    ("hue", "hue", True), ("hue_gate", "hue", True),
    ("saturation", "saturation", True), ("saturation_gate", "saturation", True),
]
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
           lumaflip=1, hue=1, saturation=1)


# ---------------------------------------------------------------------------------------------
# Recording the reference's random draws.

class DrawRecorder:
    """While active, every torch.rand/randn/randn_like/Tensor.random_ call is recorded.

    Each record is (kind, caller function name, caller's `self` or None, value as numpy).
    """

    def __init__(self, torch):
        self.torch = torch
        self.records: list[tuple[str, str, object, np.ndarray]] = []

    def _wrap(self, kind, fn):
        recorder = self

        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            frame = sys._getframe(1)
            recorder.records.append((kind, frame.f_code.co_name, frame.f_locals.get("self"),
                                     out.detach().cpu().numpy().copy()))
            return out
        return wrapped

    @contextlib.contextmanager
    def active(self):
        torch = self.torch
        saved = (torch.rand, torch.randn, torch.randn_like, torch.Tensor.random_)
        torch.rand = self._wrap("rand", saved[0])
        torch.randn = self._wrap("randn", saved[1])
        torch.randn_like = self._wrap("randn_like", saved[2])
        torch.Tensor.random_ = self._wrap("random_", saved[3])
        try:
            yield self
        finally:
            torch.rand, torch.randn, torch.randn_like, torch.Tensor.random_ = saved

    def take(self) -> list:
        out, self.records = self.records, []
        return out


def aug_draw_names(pipe, num_channels: int) -> list[str]:
    return [name for name, op, color in AUG_DRAWS
            if getattr(pipe, op) > 0 and (num_channels > 1 or not color)]


def name_aug_draws(records: list, pipe, num_channels: int, batch: int) -> dict[str, np.ndarray]:
    """Names the AugmentPipe.forward draws: [N] (or [N, 2] for xint/xfrac) arrays."""
    names = aug_draw_names(pipe, num_channels)
    if len(records) != len(names) or any(r[1] != "forward" or r[2] is not pipe for r in records):
        raise RuntimeError(f"unexpected augmentation draws: {[(r[0], r[1]) for r in records]} vs {names}")
    out = {}
    for name, (_, _, _, value) in zip(names, records):
        value = value.reshape(batch, -1)
        out[name] = value[:, 0] if value.shape[1] == 1 else value
    return out


# ---------------------------------------------------------------------------------------------
# configs.json: the reference's settings per cfg, resolution and GPU count.

def make_configs(ref: Path) -> dict:
    import train as ref_train
    from PIL import Image

    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for res in RESOLUTIONS:
            folder = Path(tmp) / f"data{res}"
            folder.mkdir()
            Image.fromarray(np.zeros([res, res], np.uint8), "L").save(folder / "img0.png")
            for cfg in CFGS:
                for gpus in GPU_COUNTS:
                    _desc, args = ref_train.setup_training_loop_kwargs(gpus=gpus, data=str(folder), cfg=cfg, metrics=[])
                    g, d, loss = args.G_kwargs, args.D_kwargs, args.loss_kwargs
                    table[f"{cfg}/{res}/{gpus}"] = dict(
                        batch_size=args.batch_size, batch_gpu=args.batch_gpu,
                        mbstd_group_size=d.epilogue_kwargs.mbstd_group_size,
                        channel_base=g.synthesis_kwargs.channel_base, channel_max=g.synthesis_kwargs.channel_max,
                        d_channel_base=d.channel_base, mapping_layers=g.mapping_kwargs.num_layers,
                        num_fp16_res=g.synthesis_kwargs.num_fp16_res, conv_clamp=g.synthesis_kwargs.conv_clamp,
                        d_num_fp16_res=d.num_fp16_res, d_conv_clamp=d.conv_clamp,
                        g_lr=args.G_opt_kwargs.lr, d_lr=args.D_opt_kwargs.lr, betas=list(args.G_opt_kwargs.betas),
                        epsilon=args.G_opt_kwargs.eps, r1_gamma=loss.r1_gamma, ema_kimg=args.ema_kimg,
                        ema_rampup=args.ema_rampup, total_kimg=args.total_kimg,
                        pl_weight=loss.get("pl_weight", 2), style_mixing_prob=loss.get("style_mixing_prob", 0.9),
                        d_architecture=d.get("architecture", "resnet"), ada_target=args.ada_target,
                        augment_pipe=sorted(k for k, v in args.augment_kwargs.items() if k != "class_name" and v))
    return table


# ---------------------------------------------------------------------------------------------
# augment.npz

def make_augment(torch, augment) -> dict[str, np.ndarray]:
    cases = {f"{op}_alone": (dict({op: 1}), 1.0, 1) for op in
             ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip")}
    cases["bgc"] = (BGC, 0.7, 1)
    cases["bgc_rgb"] = (BGC, 0.7, 3)
    cases["geom_strong"] = (dict(xint=1, scale=1, rotate=1, aniso=1, xfrac=1, scale_std=1.0, aniso_std=1.0,
                                 xfrac_std=0.5), 1.0, 1)
    out = {}
    rec = DrawRecorder(torch)
    for k, (name, (kwargs, p, channels)) in enumerate(sorted(cases.items())):
        torch.manual_seed(1000 + k)
        pipe = augment.AugmentPipe(**kwargs)
        pipe.p.copy_(torch.tensor(p))
        x = (torch.randn([BATCH, channels, 16, 16]) * 0.5).requires_grad_(True)
        upstream = torch.randn([BATCH, channels, 16, 16])
        with rec.active():
            y = pipe(x)
        draws = name_aug_draws(rec.take(), pipe, channels, BATCH)
        (grad,) = torch.autograd.grad((y * upstream).sum(), [x])
        prefix = f"{name}/"
        out[prefix + "p"] = np.float32(p)
        out[prefix + "kwargs"] = np.array(json.dumps(kwargs))
        out[prefix + "images"] = x.detach().numpy()
        out[prefix + "upstream"] = upstream.numpy()
        out[prefix + "output"] = y.detach().numpy()
        out[prefix + "grad"] = grad.numpy()
        for key, value in draws.items():
            out[prefix + "draws/" + key] = value.astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Tiny networks and the phases.

def build_networks(torch, networks, seed: int):
    torch.manual_seed(seed)
    G = networks.Generator(z_dim=TINY["z_dim"], c_dim=TINY["c_dim"], w_dim=TINY["w_dim"],
                           img_resolution=TINY["img_resolution"], img_channels=TINY["img_channels"],
                           mapping_kwargs=dict(num_layers=TINY["mapping_layers"]),
                           synthesis_kwargs=dict(channel_base=TINY["channel_base"], channel_max=TINY["channel_max"],
                                                 num_fp16_res=0, conv_clamp=None))
    D = networks.Discriminator(c_dim=TINY["c_dim"], img_resolution=TINY["img_resolution"],
                               img_channels=TINY["img_channels"], channel_base=TINY["channel_base"],
                               channel_max=TINY["channel_max"], num_fp16_res=0, conv_clamp=None,
                               mapping_kwargs=dict(num_layers=TINY["d_mapping_layers"]),
                               epilogue_kwargs=dict(mbstd_group_size=TINY["mbstd_group_size"]))
    # Parameters initialised to constants (biases 0, noise strengths 0, affine biases 1) get
    # random offsets, and w_avg a random start, so that every gradient and update is exercised.
    with torch.no_grad():
        for name, param in list(G.named_parameters()) + list(D.named_parameters()):
            if name.endswith("noise_strength"):
                param.copy_(0.05 + 0.1 * torch.rand([]))
            elif name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
        G.mapping.w_avg.copy_(0.1 * torch.randn_like(G.mapping.w_avg))
    G.train().requires_grad_(False)
    D.train().requires_grad_(False)
    return G, D


def state_arrays(prefix: str, module) -> dict[str, np.ndarray]:
    out = {f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.named_parameters()}
    out.update({f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.named_buffers()
                if not k.endswith("resample_filter")})
    return out


def name_phase_draws(records: list, phase: str, G, pipe, batch: int, do_aug: bool) -> dict[str, np.ndarray]:
    """Names one phase's draws: cutoff, mix_gate, mix_z, noise/<layer>, pl_noise, aug_fake/*, aug_real/*."""
    layer_names = {id(m): n for n, m in G.synthesis.named_modules()}
    out = {}
    records = list(records)

    def run_g():
        (k1, f1, _, cutoff), (k2, f2, _, gate), (k3, f3, _, mix_z) = records[:3]
        if (k1, k2, k3) != ("random_", "rand", "randn_like") or {f1, f2, f3} != {"run_G"}:
            raise RuntimeError(f"unexpected style-mixing draws in {phase}: {(k1, f1), (k2, f2), (k3, f3)}")
        out["cutoff"] = np.int32(cutoff)
        out["mix_gate"] = np.float32(gate)
        out["mix_z"] = mix_z
        del records[:3]
        while records and records[0][1] == "forward" and id(records[0][2]) in layer_names:
            _, _, layer, value = records.pop(0)
            out[f"noise/{layer_names[id(layer)]}"] = value  # [N, 1, r, r]

    def aug(key):
        n = len(aug_draw_names(pipe, 1))
        out.update({f"{key}/{k}": v for k, v in name_aug_draws(records[:n], pipe, 1, batch).items()})
        del records[:n]

    if phase in ("Gmain", "Greg", "Dmain"):
        run_g()
    if phase == "Gmain" and do_aug:
        aug("aug_fake")
    if phase == "Greg":
        kind, fn, _, value = records.pop(0)
        if (kind, fn) != ("randn_like", "accumulate_gradients"):
            raise RuntimeError(f"expected the path-length noise, got {(kind, fn)}")
        out["pl_noise"] = value
    if phase == "Dmain" and do_aug:
        aug("aug_fake")
    if phase in ("Dmain", "Dreg") and do_aug:
        aug("aug_real")
    if records:
        raise RuntimeError(f"{phase}: {len(records)} draws left unnamed: {[(r[0], r[1]) for r in records]}")
    return out


@contextlib.contextmanager
def capture_reports():
    """Collects what the reference passes to training_stats.report (name -> list of flat arrays)."""
    stats_mod = sys.modules["torch_utils.training_stats"]
    original, captured = stats_mod.report, {}

    def report(name, value):
        if value is not None and hasattr(value, "detach"):
            captured.setdefault(name, []).append(value.detach().cpu().numpy().reshape(-1).copy())
        return original(name, value)
    stats_mod.report = report
    try:
        yield captured
    finally:
        stats_mod.report = original


def make_loss(torch, loss_mod, G, D, pipe, r1_gamma, pl_mean):
    loss = loss_mod.StyleGAN2Loss(device=torch.device("cpu"), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                  augment_pipe=pipe, style_mixing_prob=0.9, r1_gamma=r1_gamma, pl_batch_shrink=2,
                                  pl_decay=0.01, pl_weight=2)
    loss.pl_mean.copy_(torch.tensor(pl_mean))
    return loss


def tiny_inputs(rng: np.random.RandomState, n: int):
    z = rng.randn(n, TINY["z_dim"]).astype(np.float32)
    c = np.eye(TINY["c_dim"], dtype=np.float32)[rng.randint(TINY["c_dim"], size=n)]
    real = np.clip(rng.randn(n, 1, 16, 16) * 0.5, -1, 1).astype(np.float32)
    real_c = np.eye(TINY["c_dim"], dtype=np.float32)[rng.randint(TINY["c_dim"], size=n)]
    return z, c, real, real_c


def make_phases(torch, networks, augment, loss_mod, misc) -> dict[str, np.ndarray]:
    G0, D0 = build_networks(torch, networks, seed=7)
    pipe0 = augment.AugmentPipe(**BGC).train().requires_grad_(False)
    pipe0.p.copy_(torch.tensor(0.6))
    out = dict(state_arrays("G", G0), **state_arrays("D", D0))
    out["augment_p"] = np.float32(0.6)
    out["pl_mean_init"] = np.float32(0.3)
    out["r1_gamma"] = np.float32(0.5)
    intervals = {"Gmain": 1, "Greg": 4, "Dmain": 1, "Dreg": 16}
    rng = np.random.RandomState(123)
    z, c, real, real_c = tiny_inputs(rng, BATCH)
    out.update(z=z, c=c, real=real, real_c=real_c)
    rec = DrawRecorder(torch)
    for k, phase in enumerate(intervals):
        G, D, pipe = copy.deepcopy(G0), copy.deepcopy(D0), copy.deepcopy(pipe0)
        loss = make_loss(torch, loss_mod, G, D, pipe, r1_gamma=0.5, pl_mean=0.3)
        module = G if phase.startswith("G") else D
        torch.manual_seed(500 + k)
        module.requires_grad_(True)
        with rec.active(), capture_reports() as reports:
            loss.accumulate_gradients(phase=phase, real_img=torch.from_numpy(real), real_c=torch.from_numpy(real_c),
                                      gen_z=torch.from_numpy(z), gen_c=torch.from_numpy(c), sync=True,
                                      gain=intervals[phase])
        module.requires_grad_(False)
        for name, values in reports.items():  # per-sample values the reference reports (losses, scores, signs)
            out[f"{phase}/stats/{name.replace('Loss/', '').replace('/', '_')}"] = np.concatenate(values)
        draws = name_phase_draws(rec.take(), phase, G, pipe, BATCH if phase != "Greg" else BATCH // 2, True)
        for key, value in draws.items():
            out[f"{phase}/draws/{key}"] = value
        for name, param in module.named_parameters():
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            out[f"{phase}/grad/{'G' if module is G else 'D'}/{name}"] = misc.nan_to_num(
                grad, nan=0, posinf=1e5, neginf=-1e5).numpy().copy()
        out[f"{phase}/w_avg"] = G.mapping.w_avg.numpy().copy()
        out[f"{phase}/pl_mean"] = loss.pl_mean.numpy().copy()
        out[f"{phase}/gain"] = np.float32(intervals[phase])
    return out


# ---------------------------------------------------------------------------------------------
# training.npz: a few iterations of training_loop.py's inner loop.

def make_training(torch, networks, augment, loss_mod, misc) -> dict[str, np.ndarray]:
    """Mirrors training_loop.py lines 'Setup training phases' .. 'Execute ADA heuristic' for one GPU
    with batch_gpu = batch (no gradient accumulation), with the reference's own loss, networks,
    augmentation, optimizer (torch.optim.Adam) and nan_to_num."""
    steps, G_reg_interval, D_reg_interval = 4, 2, 2
    lr, betas, eps = 0.0025, (0.0, 0.99), 1e-8
    ema_kimg, ema_rampup = 0.01, None
    ada_target, ada_interval, ada_kimg, augment_p = 0.6, 2, 0.1, 0.2
    r1_gamma, pl_mean0 = 0.5, 0.0

    G, D = build_networks(torch, networks, seed=11)
    G_ema = copy.deepcopy(G).eval()
    out = dict(state_arrays("G", G), **state_arrays("D", D))
    pipe = augment.AugmentPipe(**BGC).train().requires_grad_(False)
    pipe.p.copy_(torch.as_tensor(augment_p))
    loss = make_loss(torch, loss_mod, G, D, pipe, r1_gamma=r1_gamma, pl_mean=pl_mean0)
    phases = []
    for name, module, reg_interval in [("G", G, G_reg_interval), ("D", D, D_reg_interval)]:
        mb_ratio = reg_interval / (reg_interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=lr * mb_ratio, betas=[b ** mb_ratio for b in betas], eps=eps)
        phases += [dict(name=name + "main", module=module, opt=opt, interval=1),
                   dict(name=name + "reg", module=module, opt=opt, interval=reg_interval)]
    out.update(steps=np.int32(steps), G_reg_interval=np.int32(G_reg_interval), D_reg_interval=np.int32(D_reg_interval),
               lr=np.float32(lr), ema_kimg=np.float32(ema_kimg), ada_target=np.float32(ada_target),
               ada_interval=np.int32(ada_interval), ada_kimg=np.float32(ada_kimg), augment_p=np.float32(augment_p),
               r1_gamma=np.float32(r1_gamma), batch=np.int32(BATCH))
    rng = np.random.RandomState(321)
    rec = DrawRecorder(torch)
    cur_nimg, batch_idx = 0, 0
    with capture_reports() as reports:
        for step in range(steps):
            torch.manual_seed(9000 + step)
            real = np.clip(rng.randn(BATCH, 1, 16, 16) * 0.5, -1, 1).astype(np.float32)
            real_c = np.eye(TINY["c_dim"], dtype=np.float32)[rng.randint(TINY["c_dim"], size=BATCH)]
            out[f"step{step}/real"], out[f"step{step}/real_c"] = real, real_c
            for phase in phases:
                gen_z = rng.randn(BATCH, TINY["z_dim"]).astype(np.float32)
                gen_c = np.eye(TINY["c_dim"], dtype=np.float32)[rng.randint(TINY["c_dim"], size=BATCH)]
                if batch_idx % phase["interval"] != 0:
                    continue
                key = f"step{step}/{phase['name']}"
                out[key + "/z"], out[key + "/c"] = gen_z, gen_c
                phase["opt"].zero_grad(set_to_none=True)
                phase["module"].requires_grad_(True)
                with rec.active():
                    loss.accumulate_gradients(phase=phase["name"], real_img=torch.from_numpy(real),
                                              real_c=torch.from_numpy(real_c), gen_z=torch.from_numpy(gen_z),
                                              gen_c=torch.from_numpy(gen_c), sync=True, gain=phase["interval"])
                phase["module"].requires_grad_(False)
                n = BATCH // 2 if phase["name"] == "Greg" else BATCH
                for k, v in name_phase_draws(rec.take(), phase["name"], G, pipe, n, True).items():
                    out[f"{key}/draws/{k}"] = v
                for param in phase["module"].parameters():
                    if param.grad is not None:
                        misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
                phase["opt"].step()
            ema_nimg = ema_kimg * 1000
            if ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
            ema_beta = 0.5 ** (BATCH / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, ema_beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
            cur_nimg += BATCH
            batch_idx += 1
            if batch_idx % ada_interval == 0:  # the ADA statistic: every 'Loss/signs/real' since the last adjustment
                rt = float(np.mean(np.concatenate(reports.pop("Loss/signs/real"))))
                adjust = np.sign(rt - ada_target) * (BATCH * ada_interval) / (ada_kimg * 1000)
                pipe.p.copy_((pipe.p + adjust).max(misc.constant(0, device=pipe.p.device)))
                out[f"step{step}/ada_rt"] = np.float32(rt)
            out[f"step{step}/augment_p"] = pipe.p.numpy().copy()
            out[f"step{step}/pl_mean"] = loss.pl_mean.numpy().copy()
            out[f"step{step}/w_avg"] = G.mapping.w_avg.numpy().copy()
    out.update({"final/" + k: v for k, v in state_arrays("G_ema", G_ema).items()})
    out.update({"final/" + k: v for k, v in state_arrays("G", G).items()})
    out.update({"final/" + k: v for k, v in state_arrays("D", D).items()})
    return out


def main(argv):
    if len(argv) != 2 or not (Path(argv[1]) / "training" / "augment.py").is_file():
        sys.exit(f"usage: {argv[0]} <path to a stylegan2-ada-pytorch checkout>")
    ref = Path(argv[1]).resolve()
    sys.path.insert(0, str(ref))
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from torch_utils import misc
    from training import augment, loss as loss_mod, networks

    configs = make_configs(ref)
    (OUT_DIR / "configs.json").write_text(json.dumps(configs, indent=1, sort_keys=True) + "\n")
    np.savez_compressed(OUT_DIR / "augment.npz", **make_augment(torch, augment))
    np.savez_compressed(OUT_DIR / "phases.npz", **make_phases(torch, networks, augment, loss_mod, misc))
    np.savez_compressed(OUT_DIR / "training.npz", **make_training(torch, networks, augment, loss_mod, misc))
    for name in ("configs.json", "augment.npz", "phases.npz", "training.npz"):
        print(f"{OUT_DIR / name}: {(OUT_DIR / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv)
