"""The exported picture of a feature visualisation: the optimised images tiled in a labelled grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from cnnexplorer.core.grids import GridLayout, grid_picture


def render_featurevis_picture(images: torch.Tensor, units: list[int | None]) -> np.ndarray:
    """The exported grid (see ``featurevis_grid``)."""
    return featurevis_grid(images, units)[0]


def featurevis_grid(images: torch.Tensor, units: list[int | None]) -> tuple[np.ndarray, GridLayout]:
    """``[N,C,H,W]`` images in [0,1] → one RGB uint8 grid, tile ``i`` numbered ``units[i]``
    (no numbers when a unit is None: an image-based objective, or when units repeat), and its
    layout in the picture with ``order`` the image indices (for finding the tile clicked)."""
    stack = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    if stack.shape[3] == 1:
        stack = np.repeat(stack, 3, axis=3)
    labels = None not in units and len(set(units)) == len(units)
    order = np.asarray(units if labels else range(len(units)))
    layout = GridLayout.near_square(order, stack.shape[1], stack.shape[2])
    rgb, shown = grid_picture(layout.tile(stack, np.nan), layout, None, labels=labels)
    return rgb, replace(shown, order=np.arange(len(units)))
