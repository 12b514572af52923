"""Re-exports of a split package, each submodule imported on the first use of one of its names.

A module that grew into a package (`tfstylegan.apps.generation`, `tfstylegan.apps.synthetic_dataset`) keeps
its old names importable from the package (`from tfstylegan.apps.generation import generate_images`). Loading
them lazily keeps each submodule's own imports: importing a light one (`generation.seeds`,
`synthetic_dataset.settings`) does not start TensorFlow, and the package's top submodule (its `run`, which
uses modules that import the package's lower submodules) is no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[Callable, Callable, list[str]]:
    """`(__getattr__, __dir__, __all__)` for `package`, given {submodule: the names it exports}."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(set(where) | set(exports))

    return __getattr__, __dir__, sorted(where)
