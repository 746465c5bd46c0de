"""Feature visualisation by gradient ascent (Olah et al. 2017, Lucid/Lucent style): objectives,
parameterisations and transforms as small composable pieces, one batched early-exit loop."""

from cnnexplorer.core.featurevis.image_objectives import deepdream, invert, inversion_objective, psnr
from cnnexplorer.core.featurevis.optimize import (PRESETS, Result, Settings, Step, evaluate, optimize, preset,
                                                  regularised, run_to)
from cnnexplorer.core.featurevis.param import PARAMETERISATIONS
from cnnexplorer.core.featurevis.picture import featurevis_grid, render_featurevis_picture
from cnnexplorer.core.featurevis.units import KINDS, layer_units, noise_values, render_units, unit_objective
from cnnexplorer.core.featurevis.visualise import (DIVERSITY_IMAGES, IMAGE_KINDS, OBJECTIVES, Visualisation,
                                                   default_units, shown_units, visualise)

__all__ = ["DIVERSITY_IMAGES", "IMAGE_KINDS", "KINDS", "OBJECTIVES", "PARAMETERISATIONS", "PRESETS", "Result",
           "Settings", "Step", "Visualisation", "deepdream", "default_units", "evaluate", "featurevis_grid", "invert",
           "inversion_objective", "layer_units", "noise_values", "optimize", "preset", "psnr", "regularised",
           "render_featurevis_picture", "render_units", "run_to", "shown_units", "unit_objective", "visualise"]
