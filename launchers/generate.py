"""Generates images from a trained generator: PNGs per seed and the study's figures.

A seed means the same image everywhere (the official tools' z = RandomState(seed).randn(1, z_dim)
and 8-bit conversion). Images are written batch by batch, each PNG atomically, with progress:
any number of seeds runs in constant memory, and a stopped run keeps every file written so far.
An existing non-empty --out is refused unless --overwrite. Examples:

  python -m launchers.generate --checkpoint runs/00001-glioma --seeds 0-299 --out gen/glioma
  python -m launchers.generate --checkpoint runs/00003-cond --class_name pituitary --seeds 0,1,7 \
      --truncation_psi 0.7 --bit_depth 16 --out gen/pit
  python -m launchers.generate --checkpoint runs/00001-glioma --seeds 0-299 --figures \
      --data data/figshare256 --out figs/glioma     # Fig. 2, 3, 4, style mixing, interpolation
  python -m launchers.generate --checkpoint runs/00003-cond --class_name all --seeds 0-15 --figures \
      --data data/figshare256 --out figs            # figs/<class>/ for every class, one process
  python -m launchers.generate --checkpoint runs/00001-glioma --projected_w proj/slice/projected_w.npz \
      --out proj/render                             # proj00.png: the projection's image

The official tools' names work too: --network (a run folder or an official .pkl, converted on the
fly), --trunc, --outdir, --class (a name or an index); --batch_size is --batch:

  python -m launchers.generate --network stylegan2-ffhq-config-f.pkl --seeds 0-7 --trunc 0.7 --outdir out

Writes <out>/seed0000.png ... (and seed0000_mask.png for models trained with masks; RGB PNGs for
RGB networks). See `tfstylegan.apps.generation`.
"""

from absl import flags

from tfstylegan.apps.generation.seeds import check_truncation_psi, parse_seed_ranges, parse_seeds
from tfstylegan.utils.cli import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or checkpoint folder, or an official StyleGAN2 TF1 .pkl "
                                  "(converted on the fly; nothing in it is executed).", required=True)
_SEEDS = flags.DEFINE_string("seeds", "0-7", "Seeds: '0,1,7', '0-99' (inclusive) or mixtures; any count.")
_CLASS = flags.DEFINE_string("class_name", None, "Class to generate, by name or index (conditional models); 'all': "
                             "every class of a conditional model (or of --checkpoint cls=PATH,...) into "
                             "<out>/<class>/, the network loaded once.")
_PSI = flags.DEFINE_float("truncation_psi", 1.0, "Truncation psi (1 = none; finite).")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Generator noise.")
_BIT_DEPTH = flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "PNG bit depth of the images (16: grayscale only).")
_OUT = flags.DEFINE_string("out", None, "Output folder (each file written atomically).", required=True)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into an existing non-empty --out, replacing files of the "
                               "same names (other files are kept).")
_PROJECTED_W = flags.DEFINE_string("projected_w", None, "Render the ws of a projected_w.npz (launchers/project.py) "
                                   "as proj00.png, ... instead of seeds.")
_FIGURES = flags.DEFINE_bool("figures", False, "Also write the study's figures (Fig. 2 needs --data), style "
                             "mixing and interpolation.")
_DATA = flags.DEFINE_string("data", None, "Prepared dataset for Fig. 2 (nearest real training images).")
_STYLE_ROWS = flags.DEFINE_string("style_rows", "0-3", "Style mixing: row seeds (they give the fine styles).")
_STYLE_COLS = flags.DEFINE_string("style_cols", "4-7", "Style mixing: column seeds (they give --style_layers).")
_STYLE_LAYERS = flags.DEFINE_string("style_layers", None, "Style mixing: w indices taken from the column seeds "
                                    "(default: the coarse half).")
_INTERP_SEEDS = flags.DEFINE_string("interp_seeds", None, "Interpolation: seeds walked in order (default: the "
                                    "first 4 of --seeds).")
_INTERP_STEPS = flags.DEFINE_integer("interp_steps", 8, "Interpolation: images per walk (equal steps in W).")
_BATCH = flags.DEFINE_integer("batch", 16, "Images per generator call.")

# The official StyleGAN2 tools' names (and this launcher's earlier --batch_size).
flags.DEFINE_alias("network", "checkpoint")
flags.DEFINE_alias("trunc", "truncation_psi")
flags.DEFINE_alias("outdir", "out")
flags.DEFINE_alias("class", "class_name")
flags.DEFINE_alias("batch_size", "batch")


def main(argv):
    # here: TensorFlow loads after absl parsed the flags (--help stays fast; cli.run quiets its logging first)
    from tfstylegan.apps.generation.run import generate, generate_all_classes, render_projected_w

    if _PROJECTED_W.value:
        ignored = [f"--{n}" for n in ("seeds", "class_name", "truncation_psi", "figures") if flags.FLAGS[n].present]
        if ignored:
            print(f"note: {', '.join(ignored)} ignored with --projected_w (the class and psi are in w).", flush=True)
        summary = render_projected_w(_CHECKPOINT.value, _PROJECTED_W.value, _OUT.value, noise_mode=_NOISE.value,
                                     bit_depth=int(_BIT_DEPTH.value), overwrite=_OVERWRITE.value)
        print(f"wrote {summary['num_images']} projected image(s) to {summary['out']}")
        return
    check_truncation_psi(_PSI.value)
    kwargs = dict(truncation_psi=_PSI.value, noise_mode=_NOISE.value, bit_depth=int(_BIT_DEPTH.value),
                  figures=_FIGURES.value, data_dir=_DATA.value, style_rows=parse_seeds(_STYLE_ROWS.value),
                  style_cols=parse_seeds(_STYLE_COLS.value),
                  style_layers=parse_seeds(_STYLE_LAYERS.value) if _STYLE_LAYERS.value else None,
                  interp_seeds=parse_seeds(_INTERP_SEEDS.value) if _INTERP_SEEDS.value else None,
                  interp_steps=_INTERP_STEPS.value, batch_size=_BATCH.value, overwrite=_OVERWRITE.value)
    seeds = parse_seed_ranges(_SEEDS.value)
    if _CLASS.value == "all":
        summaries = generate_all_classes(_CHECKPOINT.value, seeds, _OUT.value, **kwargs)
    else:
        summaries = [generate(_CHECKPOINT.value, seeds, _OUT.value, class_name=_CLASS.value, **kwargs)]
    for summary in summaries:
        figures = f" and {len(summary['figures'])} figures" if summary["figures"] else ""
        print(f"wrote {summary['num_images']} images{figures} to {summary['out']}")


if __name__ == "__main__":
    run(main)
