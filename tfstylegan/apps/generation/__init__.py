"""Generating images from trained generators: seeds, the seed -> image convention, PNGs.

A seed means the same image everywhere: z = `np.random.RandomState(seed).randn(1, z_dim)`
(`seed_to_z`, the official tools' convention), noise 'const' by default, and the 8-bit
conversion `clip(img * 127.5 + 128, 0, 255)` (`tfstylegan.utils.images.to_uint8`).

One module per reason to change, bottom to top:

- `seeds`: `Seeds`, `parse_seed_ranges` / `parse_seeds` / `parse_indices`, `check_truncation_psi`, `MAX_SEED`
  (no TensorFlow);
- `loading`: `ClassGenerator` (one generator bound to one class), `--checkpoint` specs (`PATH` or
  `cls=PATH,cls=PATH`), `load_network` (run / checkpoint folders and official TF1 `.pkl`, converted in memory);
- `images`: seeds -> ws -> images (`iter_images` streams batches: any number of seeds in one batch's memory);
- `output`: PNGs per seed, each written atomically before the next batch (`write_images`), and the `--out` checks;
- `run`: the launcher's work, `generate` (with the study's figures, `tfstylegan.apps.figures`),
  `generate_all_classes` (every class, the network loaded once) and `render_projected_w`
  (`tfstylegan.apps.projection`'s ws).

Channels: 1 (gray), 2 (image + tumor mask, trained with masks), 3 (RGB, e.g. an imported official network).
Every name stays importable from this package (`from tfstylegan.apps.generation import generate_images`);
each submodule is imported on first use (`tfstylegan.utils.lazy`).
"""

from tfstylegan.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "seeds": ("MAX_SEED", "Seeds", "parse_seed_ranges", "parse_seeds", "parse_indices", "check_truncation_psi"),
    "loading": ("ClassGenerator", "load_network", "parse_checkpoint_spec", "resolve_class_name", "bind_class",
                "load_class_generator", "load_class_generators"),
    "images": ("z_to_ws", "seeds_to_ws", "synthesize", "iter_images", "generate_images", "image_channel",
               "to_pixels", "check_bit_depth"),
    "output": ("save_images", "write_images", "check_output_folder", "prepare_output_folder"),
    "run": ("FIGURE_MAX_IMAGES", "generate", "generate_all_classes", "render_projected_w"),
})
