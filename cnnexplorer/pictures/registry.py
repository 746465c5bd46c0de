"""Every picture recipe by its export name (the GUI view's ``view_name``)."""

from __future__ import annotations

from cnnexplorer.pictures import (activations, adversarial, atlas, confusion, curves, featurevis, filters, heatmap,
                                  input, neighbours, predictions, summary)
from cnnexplorer.pictures import map as feature_map
from cnnexplorer.pictures.base import Recipe

RECIPES: dict[str, Recipe] = {
    module.RECIPE.name: module.RECIPE
    for module in (input, summary, predictions, activations, filters, featurevis, heatmap, adversarial, curves, atlas,
                   neighbours, confusion, feature_map)
}
