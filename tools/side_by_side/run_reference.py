r"""Side-by-side step 2 (torch venv): train NVlabs/stylegan2-ada-pytorch from a local checkout with the spec
written by make_reference_data.py (our 'demo' preset and the demo's flags), on CPU if there is no GPU.

    /work/scratch/torchvenv/bin/python tools/side_by_side/run_reference.py \
        --reference /work/scratch/sg2ada-side --input /work/scratch/sbs/reference_input \
        --outdir /work/scratch/sbs/reference_runs

Nothing of the reference is copied or edited: this script imports the checkout's `train.py`, builds the
training options exactly as its command line would (`setup_training_loop_kwargs` with the spec's `cli`
values: cfg auto, cond, mirror, gamma, kimg, batch, ADA target, bgc, fp32, metrics none, seed), then sets
the values its command line has no flag for (spec `overrides`) on the options it returned:

  G z_dim, w_dim, mapping layers/lr multiplier/w_avg_beta, channel base/max (G and D), D label-mapping
  layers, minibatch-stddev group/channels, G and D learning rates, EMA half-life and ramp-up, ADA speed
  (ada_kimg) and interval, initial p, lazy-regularisation intervals, path-length weight/shrink/decay,
  style-mixing probability, kimg per tick.

It then runs the checkout's own `subprocess_fn` -> `training_loop.training_loop`. The reference's loop is
written for CUDA only; without a GPU, process-local shims make it run on the CPU without changing what it
computes: its module-level `torch` is wrapped so `torch.device('cuda', rank)` is the CPU device and the
`torch.cuda` timing/memory calls (Event, current_stream, max_memory_allocated, reset_peak_memory_stats) are
inert; `Tensor.pin_memory` returns the tensor (pinning needs a driver); the DataLoader runs in-process
(`--workers 0`, no pin_memory). One shim is for current torch, CPU or GPU: `Sampler.__init__` accepts the
`data_source` argument torch 2.2 dropped (unused there, passed by the reference's InfiniteSampler).
Its custom CUDA ops fall back to their reference implementations on CPU tensors by themselves, and
its `grid_sample_gradfix` falls back to `torch.nn.functional.grid_sample` on torch >= 1.10 (whose double
backward, needed by R1 through the augmentation, torch now provides).

`--threads 1` matters on a shared CPU: with torch's default of one OpenMP thread per core, every op waits at
a barrier for a descheduled partner thread; measured on the 2-core machine under a load of ~13, one training
step took 27-42 s per phase with 2 threads and 1.6-4.9 s with 1 thread.

The run goes to `<outdir>/<NNNNN>-<desc>/` as with the reference's train.py (log.txt, stats.jsonl,
network-snapshot-*.pkl, fakes*.png), plus `side_by_side_spec.json` (the spec used) and
`side_by_side_timing.json` (wall-clock seconds and seconds per kimg of the training loop).
Nothing is fetched from the network: no resume, no metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def _set(args, key: str, value) -> None:
    """Applies one spec override (`G.z_dim`, `D.mapping.num_layers`, `ema_kimg`, ...) to the options."""
    g, d = args.G_kwargs, args.D_kwargs
    table = {
        "G.z_dim": lambda v: g.__setitem__("z_dim", int(v)),
        "G.w_dim": lambda v: g.__setitem__("w_dim", int(v)),
        "G.mapping.num_layers": lambda v: g.mapping_kwargs.__setitem__("num_layers", int(v)),
        "G.mapping.lr_multiplier": lambda v: g.mapping_kwargs.__setitem__("lr_multiplier", float(v)),
        "G.mapping.w_avg_beta": lambda v: g.mapping_kwargs.__setitem__("w_avg_beta", float(v)),
        "G.channel_base": lambda v: g.synthesis_kwargs.__setitem__("channel_base", int(v)),
        "G.channel_max": lambda v: g.synthesis_kwargs.__setitem__("channel_max", int(v)),
        "D.channel_base": lambda v: d.__setitem__("channel_base", int(v)),
        "D.channel_max": lambda v: d.__setitem__("channel_max", int(v)),
        "D.mapping.num_layers": lambda v: d.mapping_kwargs.__setitem__("num_layers", int(v)),
        "D.mbstd_group_size": lambda v: d.epilogue_kwargs.__setitem__("mbstd_group_size", int(v)),
        "D.mbstd_num_channels": lambda v: d.epilogue_kwargs.__setitem__("mbstd_num_channels", int(v)),
        "G_lr": lambda v: args.G_opt_kwargs.__setitem__("lr", float(v)),
        "D_lr": lambda v: args.D_opt_kwargs.__setitem__("lr", float(v)),
        "ema_kimg": lambda v: args.__setitem__("ema_kimg", float(v)),
        "ema_rampup": lambda v: args.__setitem__("ema_rampup", None if v is None else float(v)),
        "ada_kimg": lambda v: args.__setitem__("ada_kimg", float(v)),
        "ada_interval": lambda v: args.__setitem__("ada_interval", int(v)),
        "augment_p": lambda v: args.__setitem__("augment_p", float(v)),
        "G_reg_interval": lambda v: args.__setitem__("G_reg_interval", int(v)),
        "D_reg_interval": lambda v: args.__setitem__("D_reg_interval", int(v)),
        "pl_weight": lambda v: args.loss_kwargs.__setitem__("pl_weight", float(v)),
        "pl_batch_shrink": lambda v: args.loss_kwargs.__setitem__("pl_batch_shrink", int(v)),
        "pl_decay": lambda v: args.loss_kwargs.__setitem__("pl_decay", float(v)),
        "style_mixing_prob": lambda v: args.loss_kwargs.__setitem__("style_mixing_prob", float(v)),
        "kimg_per_tick": lambda v: args.__setitem__("kimg_per_tick", float(v)),
    }
    if key not in table:
        _fail(f"reference_spec.json has an override {key!r} this script does not know how to apply; "
              f"known: {', '.join(sorted(table))}. Regenerate the spec with make_reference_data.py.")
    table[key](value)


def _install_torch_compat_shims() -> None:
    """The reference (2021) on a current torch: `torch.utils.data.Sampler.__init__` no longer takes the
    `data_source` argument its InfiniteSampler passes (torch >= 2.2 dropped it; it was never used)."""
    import torch.utils.data

    sampler = torch.utils.data.Sampler
    if "__init__" not in vars(sampler):  # object.__init__: takes no arguments
        sampler.__init__ = lambda self, data_source=None: None


def _install_cpu_shims(training_loop_module) -> None:
    """Makes the CUDA-only reference loop run on the CPU (see the module docstring)."""
    import torch

    class _Event:
        def __init__(self, enable_timing: bool = False):
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

        def elapsed_time(self, end) -> float:
            return (end.t - self.t) * 1000.0

    fake_cuda = types.SimpleNamespace(
        Event=_Event, current_stream=lambda device=None: None, max_memory_allocated=lambda device=None: 0,
        reset_peak_memory_stats=lambda device=None: None, is_available=lambda: False)

    class _CpuTorch(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch, name)

    proxy = _CpuTorch("torch")
    proxy.device = lambda *a, **k: torch.device("cpu")
    proxy.cuda = fake_cuda
    training_loop_module.torch = proxy
    torch.Tensor.pin_memory = lambda self, *a, **k: self


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--input", required=True, help="folder written by make_reference_data.py")
    ap.add_argument("--outdir", required=True, help="parent folder of the numbered run folder")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0 = in-process)")
    ap.add_argument("--snap", type=int, default=1000, help="snapshot every N ticks (the end is always saved)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, one "
                    "per core); on a shared, oversubscribed CPU use 1 (see docs/SIDE_BY_SIDE.md)")
    ap.add_argument("--dry_run", action="store_true", help="print the options and exit")
    args_ns = ap.parse_args(argv)

    ref = Path(args_ns.reference).resolve()
    for f in ("train.py", "training/training_loop.py", "training/loss.py", "dnnlib/__init__.py"):
        if not (ref / f).is_file():
            _fail(f"{ref} is not a stylegan2-ada-pytorch checkout (no {f}). Pass --reference <checkout>.")
    inp = Path(args_ns.input)
    spec_path, data_zip = inp / "reference_spec.json", inp / "train.zip"
    for f in (spec_path, data_zip):
        if not f.is_file():
            _fail(f"{f} does not exist; run tools/side_by_side/make_reference_data.py --out {inp} first.")
    spec = json.loads(spec_path.read_text())

    sys.path.insert(0, str(ref))
    import torch  # noqa: F401  (the reference's dependency)

    import train as ref_train  # the checkout's train.py
    from training import training_loop as ref_loop

    cli = dict(spec["cli"])
    try:
        desc, args = ref_train.setup_training_loop_kwargs(
            gpus=1, snap=int(args_ns.snap), metrics=list(cli["metrics"]), seed=int(cli["seed"]),
            data=str(data_zip), cond=bool(cli["cond"]), mirror=bool(cli["mirror"]), cfg=cli["cfg"],
            gamma=float(cli["gamma"]), kimg=int(cli["kimg"]), batch=int(cli["batch"]), aug=cli["aug"],
            target=float(cli["target"]), augpipe=cli["augpipe"], fp32=bool(cli["fp32"]),
            workers=max(1, args_ns.workers))
    except ref_train.UserError as e:
        _fail(f"the reference refused the options: {e}")
    for key, value in spec["overrides"].items():
        _set(args, key, value)
    args.data_loader_kwargs = dict(pin_memory=False, num_workers=int(args_ns.workers))
    if args_ns.workers > 0:
        args.data_loader_kwargs["prefetch_factor"] = 2
    desc += f"-side-by-side-{spec['preset']}"

    outdir = Path(args_ns.outdir)
    ids = [int(m.group()) for m in (re.match(r"^\d+", p.name) for p in outdir.iterdir() if p.is_dir())
           if m] if outdir.is_dir() else []
    args.run_dir = str(outdir / f"{max(ids, default=-1) + 1:05d}-{desc}")
    print("Training options:\n" + json.dumps(args, indent=2), flush=True)
    if args_ns.dry_run:
        return 0

    if args_ns.threads is not None:
        if args_ns.threads < 1:
            _fail(f"--threads must be >= 1. Received: {args_ns.threads}")
        torch.set_num_threads(args_ns.threads)
    _install_torch_compat_shims()
    # the reference warns at every augmentation call that grid_sample_gradfix falls back; say it once here
    warnings.filterwarnings("ignore", message="grid_sample_gradfix not supported")
    print(f"note: on torch {torch.__version__} the reference's grid_sample_gradfix falls back to "
          "torch.nn.functional.grid_sample (its warning is silenced)", flush=True)
    cpu = not torch.cuda.is_available()
    if cpu:
        _install_cpu_shims(ref_loop)
    os.makedirs(args.run_dir)
    (Path(args.run_dir) / "training_options.json").write_text(json.dumps(args, indent=2))
    (Path(args.run_dir) / "side_by_side_spec.json").write_text(json.dumps(spec, indent=2))
    print(f"run folder: {args.run_dir} ({'CPU, ' + str(torch.get_num_threads()) + ' threads' if cpu else 'GPU'})",
          flush=True)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ref_train.subprocess_fn(rank=0, args=args, temp_dir=tmp)
    wall = time.time() - start

    stats = [json.loads(line) for line in (Path(args.run_dir) / "stats.jsonl").read_text().splitlines() if line]
    last = stats[-1]
    kimg = float(last["Progress/kimg"]["mean"])
    train_sec = float(last["Timing/total_sec"]["mean"])
    timing = {"wall_seconds": round(wall, 1), "training_loop_seconds": round(train_sec, 1), "kimg": kimg,
              "seconds_per_kimg": round(train_sec / kimg, 2) if kimg else None,
              "device": "cpu" if cpu else "cuda", "torch": torch.__version__, "threads": torch.get_num_threads()}
    (Path(args.run_dir) / "side_by_side_timing.json").write_text(json.dumps(timing, indent=2))
    print(f"done: {args.run_dir}: {kimg:g} kimg in {train_sec:.0f} s ({timing['seconds_per_kimg']} s/kimg)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
