"""Generators bound to a class: checkpoint specs, loading, official TF1 pickles converted in memory.

A `ClassGenerator` is one generator bound to one class (by name or index): a per-class checkpoint, or a
conditional checkpoint with the class's one-hot label. `load_class_generators` turns the launchers'
`--checkpoint` value (`PATH` or `cls=PATH,cls=PATH`) into them; a PATH may also be an official TF1 `.pkl`,
converted in memory (`load_network`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfstylegan.config import PRESET_NAMES, get_preset
from tfstylegan.export import legacy
from tfstylegan.training.checkpoint import load_generator
from tfstylegan.utils.errors import UserError


@dataclasses.dataclass
class ClassGenerator:
    """A generator producing one class.

    Attributes:
      G: the `tfstylegan.networks.Generator`.
      class_name: the class it produces (None: an unconditional model of unknown class).
      class_id: the label index fed to a conditional G (None for unconditional models).
      run_info: the checkpoint's run.json dict.
      checkpoint: the checkpoint path it came from.
    """

    G: object
    class_name: str | None
    class_id: int | None
    run_info: dict
    checkpoint: str

    @property
    def with_mask(self) -> bool:
        """True when the model outputs (image, mask) as 2 channels."""
        return int(self.G.img_channels) == 2

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def labels(self, n: int) -> np.ndarray | None:
        """One-hot c float32 [n, c_dim] for a conditional G, else None."""
        if self.class_id is None or int(self.G.c_dim) == 0:
            return None
        c = np.zeros([n, int(self.G.c_dim)], np.float32)
        c[:, self.class_id] = 1
        return c


def _official_pickle_generator(path: Path):
    """(G_ema, run_info) of an official NVlabs TF1 `.pkl`, converted in memory (nothing from the file is run).

    The network keeps its own resolution and channels (RGB stays RGB, as the official
    generate.py renders it); the preset only has to match its mapping depth. Use
    launchers/import_pretrained.py to keep the converted networks (and to fine-tune them).
    """
    _, _, Gs = legacy.load_official_pickle(path)
    kwargs = Gs.static_kwargs
    mapping = int(kwargs.get("mapping_layers", 8))
    presets = [n for n in ("paper256", "auto") + tuple(PRESET_NAMES)
               if get_preset(n).generator.mapping_layers == mapping]
    if not presets:
        raise UserError(f"{path}: no preset has the pickle's {mapping} mapping layers; it cannot be converted.")
    print(f"note: converting the official pickle {path} on the fly (nothing in it is executed); "
          "launchers/import_pretrained.py keeps the converted checkpoint.", flush=True)
    _, _, G_ema, preset, info = legacy.convert_official_pickle(
        path, preset=presets[0], resolution=int(kwargs.get("resolution", 1024)),
        img_channels=int(kwargs.get("num_channels", 3)))
    run_info = {"preset": preset.to_dict(), "class_names": [], "class_name": None, "conditional": False,
                "with_mask": False, "data": None, "options": {"imported": info}}
    return G_ema, run_info


def load_network(path: str | os.PathLike):
    """(G_ema, run_info) of a run folder, checkpoint folder, or an official `.pkl` (converted on the fly)."""
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        if not p.is_file():
            raise UserError(f"{p} does not exist. Pass an official StyleGAN2 / StyleGAN2-ADA TF1 pickle, or a run "
                            "folder.")
        return _official_pickle_generator(p)
    return load_generator(path)


def _load_generator(path: str):
    return load_network(path)


def parse_checkpoint_spec(spec: str) -> dict[str | None, str]:
    """'PATH' -> {None: PATH}; 'glioma=PATH,pituitary=PATH' -> {'glioma': PATH, 'pituitary': PATH}."""
    spec = (spec or "").strip()
    if not spec:
        raise UserError("--checkpoint is required: a run folder, its checkpoints/ folder, or per-class "
                        "checkpoints as --checkpoint=meningioma=PATH,glioma=PATH,pituitary=PATH.")
    if "=" not in spec:
        return {None: spec}
    out: dict[str | None, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UserError(f"Mixed --checkpoint entries: {part!r} has no class. Write every entry as "
                            f"class=PATH (e.g. glioma=runs/00001-glioma). Received: {spec!r}")
        name, path = (s.strip() for s in part.split("=", 1))
        if not name or not path:
            raise UserError(f"Bad --checkpoint entry {part!r}: write class=PATH.")
        if name in out:
            raise UserError(f"Class {name!r} appears twice in --checkpoint={spec!r}.")
        out[name] = path
    return out


def resolve_class_name(class_name: str | int | None, known: Sequence[str], checkpoint: str) -> str | None:
    """A class given by name or by its index among the run's classes (`--class 1`, as the official tools)."""
    if class_name is None:
        return None
    name = str(class_name).strip()
    if name in known or not re.fullmatch(r"\d+", name):
        return name
    index = int(name)
    if not known:
        raise UserError(f"{checkpoint} records no class names, so --class {index} means nothing. Pass no --class.")
    if index >= len(known):
        listing = ", ".join(f"{i}={c}" for i, c in enumerate(known))
        raise UserError(f"--class {index} is out of range: {checkpoint} knows the classes {listing}.")
    return known[index]


def bind_class(G, run_info: dict, checkpoint: str, class_name: str | int | None) -> ClassGenerator:
    """Binds a loaded generator to `class_name`, checking it against the run's classes.

    Conditional models need a class among `run_info['class_names']` (by name or index);
    per-class models accept their own class (or None, which means it).
    """
    known = [str(c) for c in run_info.get("class_names") or []]
    class_name = resolve_class_name(class_name, known, checkpoint)
    if int(G.c_dim) > 0:
        if class_name is None:
            raise UserError(f"{checkpoint} is a conditional model; choose the class with --class_name "
                            f"(one of {', '.join(known)}, or its index).")
        if class_name not in known:
            raise UserError(f"{checkpoint} knows the classes {', '.join(known)}; there is no class "
                            f"{class_name!r}. Pass --class_name with one of them.")
        return ClassGenerator(G, class_name, known.index(class_name), run_info, str(checkpoint))
    own = run_info.get("class_name")
    if class_name is not None and own is not None and class_name != own:
        raise UserError(f"{checkpoint} was trained on class {own!r}, not {class_name!r}. Pass its own "
                        f"class (or no --class_name), or the checkpoint of {class_name!r}.")
    return ClassGenerator(G, class_name or own, None, run_info, str(checkpoint))


def load_class_generator(checkpoint: str, class_name: str | int | None = None) -> ClassGenerator:
    """Loads one checkpoint (G_ema) or official `.pkl` and binds it to `class_name` (see `bind_class`)."""
    G, run_info = _load_generator(checkpoint)
    return bind_class(G, run_info, checkpoint, class_name)


def load_class_generators(spec: str) -> dict[str, ClassGenerator]:
    """`--checkpoint` value -> {class name: ClassGenerator}, in the order given (conditional: run order).

    - `PATH` of a conditional model: one entry per class it knows (one shared G).
    - `PATH` of a per-class model: its class.
    - `cls=PATH,...`: each class from its per-class checkpoint (or from a conditional one).
    """
    entries = parse_checkpoint_spec(spec)
    if None in entries:
        path = entries[None]
        G, run_info = _load_generator(path)
        if int(G.c_dim) > 0:
            return {c: bind_class(G, run_info, path, c) for c in run_info["class_names"]}
        own = run_info.get("class_name")
        if own is None:
            raise UserError(f"{path} is an unconditional model of all classes, so it cannot be evaluated per "
                            "class. Pass per-class checkpoints as --checkpoint=meningioma=PATH,glioma=PATH,"
                            "pituitary=PATH, or a conditional checkpoint.")
        return {own: bind_class(G, run_info, path, own)}
    loaded: dict[str, tuple] = {}
    out = {}
    for name, path in entries.items():
        if path not in loaded:
            loaded[path] = _load_generator(path)
        G, run_info = loaded[path]
        out[name] = bind_class(G, run_info, path, name)
    return out
