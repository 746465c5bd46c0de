"""Every picture recipe by its export name (the GUI view's ``view_name``).

A recipe is any module of this package that defines ``RECIPE``; adding a picture is adding its module.
"""

from __future__ import annotations

import importlib
import pkgutil

import cnnexplorer.pictures as _package
from cnnexplorer.pictures.base import Recipe


def _recipes() -> dict[str, Recipe]:
    found: dict[str, Recipe] = {}
    for info in sorted(pkgutil.iter_modules(_package.__path__), key=lambda info: info.name):
        if info.name == "registry":
            continue
        recipe = getattr(importlib.import_module(f"{_package.__name__}.{info.name}"), "RECIPE", None)
        if isinstance(recipe, Recipe):
            if recipe.name in found:
                raise RuntimeError(f"two picture modules define the recipe {recipe.name!r}")
            found[recipe.name] = recipe
    return found


RECIPES: dict[str, Recipe] = _recipes()
