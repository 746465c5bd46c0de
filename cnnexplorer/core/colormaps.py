"""Colour maps as 256×3 uint8 lookup tables, and values in [0,1] → RGB pixels.

matplotlib is not a dependency, so viridis and magma (van der Walt & Smith, CC0) are rebuilt
from 33 evenly spaced control points of the published 256-entry tables by linear
interpolation (within 2 levels of the originals, exact at both ends). ``diverging`` is
ColorBrewer's RdBu reversed: blue for negative, white at the centre, red for positive, the
usual choice for signed values (pre-ReLU convolutions, batch norm, weights). ``jet`` is the
rainbow map of the classic Grad-CAM recipe (OpenCV's ``COLORMAP_JET``), offered for pictures
that must look like the papers' and the course's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cnnexplorer.core.errors import UserError

_CONTROL_POINTS = {
    "viridis": (
        "440154 470d60 48186a 482374 472d7b 453681 424086 3f4989 3b528b 375a8d 33638d 2f6a8e "
        "2c728e 297a8e 26818e 23898e 21908c 1f988b 1f9f88 21a685 28ae80 31b57b 3ebc74 4cc26c "
        "5dc963 6ece58 82d34c 96d83f abdc32 c0df24 d5e21a eae51a fde725"
    ),
    "magma": (
        "000004 030311 0a0822 130d33 1d1146 28115a 36106a 430f76 50127c 5d177f 691c81 762181 "
        "822681 8f2a81 9c2e7f a9327d b63779 c33b75 cf4170 db486a e65163 ee5c5e f5695c f9785d "
        "fb8761 fd9668 fea571 feb47b fec387 fed194 fde0a2 fceeb0 fcfdbf"
    ),
    "gray": "000000 ffffff",
    "diverging": "053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f",
    "jet": "000080 0000ff 0080ff 00ffff 80ff80 ffff00 ff8000 ff0000 800000",
}
COLORMAPS = tuple(_CONTROL_POINTS)
NAN_COLOR = np.array([255, 0, 255], dtype=np.uint8)
"""Magenta: marks NaN values, which no colour map uses."""


@lru_cache(maxsize=None)
def colormap_table(name: str) -> np.ndarray:
    """The ``256×3`` uint8 lookup table of colour map ``name`` (read-only)."""
    if name not in _CONTROL_POINTS:
        raise UserError(f"unknown colour map '{name}'; choose one of {', '.join(COLORMAPS)}")
    points = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in _CONTROL_POINTS[name].split()], float)
    where = np.linspace(0.0, 255.0, len(points))
    table = np.stack([np.interp(np.arange(256), where, points[:, c]) for c in range(3)], axis=1)
    table = np.round(table).astype(np.uint8)
    table.flags.writeable = False
    return table


def apply_colormap(values: np.ndarray, name: str = "viridis") -> np.ndarray:
    """``values`` in [0,1] (any shape) → uint8 RGB of shape ``values.shape + (3,)``.

    Values outside [0,1] are clipped, ±inf to the ends of the map; NaN becomes ``NAN_COLOR``.
    """
    values = np.asarray(values, dtype=np.float32)
    nan = np.isnan(values)
    index = np.clip(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = colormap_table(name)[index]
    if nan.any():
        rgb[nan] = NAN_COLOR
    return rgb
