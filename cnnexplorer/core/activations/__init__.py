"""Activations of any layer: one-pass capture, a memory-bounded cache, statistics and grids.

``capture`` (``recording``) runs the model once and records every requested layer, each call
of a module that runs several times (``name#k``). ``ActivationCache`` (``cache``) keeps those
recordings so that switching layer for the same image does not run the model again. ``stats``
holds the per-channel numbers the views show on hover and the grid's order and windows;
``activation_grid`` (``grid``) turns one layer's output into a single float image of tiles and
``render_activation_picture`` colours it and draws the channel numbers.
"""

from cnnexplorer.core.activations.cache import ActivationCache
from cnnexplorer.core.activations.grid import (NORMS, ActivationGrid, activation_grid, compare_grids,
                                               render_activation_picture)
from cnnexplorer.core.activations.recording import Capture, capture, pick_output
from cnnexplorer.core.activations.stats import SORTS, LayerStats, channel_stats, layer_range

__all__ = ["NORMS", "SORTS", "ActivationCache", "ActivationGrid", "Capture", "LayerStats", "activation_grid",
           "capture", "channel_stats", "compare_grids", "layer_range", "pick_output", "render_activation_picture"]
