"""Generates images from a trained generator: PNGs per seed and the study's figures.

A seed means the same image everywhere (the official tools' z = RandomState(seed).randn(1, z_dim)
and 8-bit conversion). Examples:

  python -m launchers.generate --checkpoint runs/00001-glioma --seeds 0-299 --out gen/glioma
  python -m launchers.generate --checkpoint runs/00003-cond --class_name pituitary --seeds 0,1,7 \
      --truncation_psi 0.7 --bit_depth 16 --out gen/pit
  python -m launchers.generate --checkpoint runs/00001-glioma --seeds 0-299 --figures \
      --data data/figshare256 --out figs/glioma     # Fig. 2, 3, 4, style mixing, interpolation

Writes <out>/seed0000.png ... (and seed0000_mask.png for models trained with masks).
See tfstylegan.apps.generation`.
"""

from absl import flags

from tfstylegan.utils.cli import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or checkpoint folder.", required=True)
_SEEDS = flags.DEFINE_string("seeds", "0-7", "Seeds: '0,1,7', '0-99' (inclusive) or mixtures.")
_CLASS = flags.DEFINE_string("class_name", None, "Class to generate (required for conditional models).")
_PSI = flags.DEFINE_float("truncation_psi", 1.0, "Truncation psi (1 = none).")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Generator noise.")
_BIT_DEPTH = flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "PNG bit depth of the images.")
_OUT = flags.DEFINE_string("out", None, "Output folder (each file written atomically).", required=True)
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
_BATCH = flags.DEFINE_integer("batch_size", 16, "Images per generator call.")


def main(argv):
    from tfstylegan.apps.generation import generate, load_class_generator, parse_indices, parse_seeds

    seeds = parse_seeds(_SEEDS.value)
    style_layers = None
    if _STYLE_LAYERS.value:
        num_ws = int(load_class_generator(_CHECKPOINT.value, _CLASS.value).G.num_ws)
        style_layers = parse_indices(_STYLE_LAYERS.value, num_ws, "--style_layers")
    summary = generate(_CHECKPOINT.value, seeds, _OUT.value, class_name=_CLASS.value,
                       truncation_psi=_PSI.value, noise_mode=_NOISE.value, bit_depth=int(_BIT_DEPTH.value),
                       figures=_FIGURES.value, data_dir=_DATA.value, style_rows=parse_seeds(_STYLE_ROWS.value),
                       style_cols=parse_seeds(_STYLE_COLS.value), style_layers=style_layers,
                       interp_seeds=parse_seeds(_INTERP_SEEDS.value) if _INTERP_SEEDS.value else None,
                       interp_steps=_INTERP_STEPS.value, batch_size=_BATCH.value)
    print(f"wrote {len(summary['files'])} files to {_OUT.value}")


if __name__ == "__main__":
    run(main)
