"""Comparing two renderings of one picture made by separate runs of an iterative optimisation."""

from __future__ import annotations

import numpy as np


def assert_same_picture(made, again, levels: int = 1, share: float = 0.01) -> None:
    """``again`` is ``made`` up to float rounding: the same size, every pixel within ``levels`` grey levels, and at
    most ``share`` of them different at all.

    Two runs of many gradient steps can differ in the last bits of a float (the order in which BLAS and
    OpenMP reductions add up), which may move a pixel across a rounding boundary of the PNG; a picture
    made with another seed or other settings differs in most of its pixels.
    """
    first, second = np.asarray(made, np.int16), np.asarray(again, np.int16)
    assert first.shape == second.shape, f"sizes differ: {first.shape} and {second.shape}"
    difference = np.abs(first - second)
    assert difference.max() <= levels, f"pixels differ by up to {difference.max()} levels"
    assert (difference > 0).mean() <= share, f"{(difference > 0).mean():.2%} of the pixels differ"
