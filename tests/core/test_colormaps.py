"""Colour maps: published endpoints, shapes, NaN flag colour and unknown names."""

from __future__ import annotations

import numpy as np
import pytest

from cnnexplorer.core.colormaps import COLORMAPS, NAN_COLOR, apply_colormap, colormap_table
from cnnexplorer.core.errors import UserError


def hex_rgb(text: str) -> list[int]:
    return [int(text[i:i + 2], 16) for i in (1, 3, 5)]


def test_viridis_and_magma_endpoints_match_the_published_tables():
    viridis, magma = colormap_table("viridis"), colormap_table("magma")
    assert viridis[0].tolist() == hex_rgb("#440154")
    assert viridis[255].tolist() == hex_rgb("#fde725")
    assert viridis[128].tolist() == pytest.approx(hex_rgb("#21918c"), abs=2)  # matplotlib viridis(0.5)
    assert magma[0].tolist() == hex_rgb("#000004")
    assert magma[255].tolist() == hex_rgb("#fcfdbf")


def test_tables_are_256_by_3_and_read_only():
    for name in COLORMAPS:
        table = colormap_table(name)
        assert table.shape == (256, 3) and table.dtype == np.uint8
        assert not table.flags.writeable


def test_gray_is_linear_and_viridis_brightens_monotonically():
    assert colormap_table("gray")[:, 0].tolist() == list(range(256))
    luminance = colormap_table("viridis").astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(luminance) > -1.0)


def test_diverging_is_blue_white_red():
    rgb = apply_colormap(np.array([0.0, 0.5, 1.0]), "diverging")
    low, mid, high = rgb.astype(int)
    assert low[2] > low[0] and high[0] > high[2]
    assert mid.min() > 240


def test_apply_colormap_clips_and_flags_nan():
    values = np.array([[-1.0, 0.0, 1.0], [2.0, np.inf, np.nan]])
    rgb = apply_colormap(values, "viridis")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    table = colormap_table("viridis")
    assert rgb[0, 0].tolist() == table[0].tolist() == rgb[0, 1].tolist()
    assert rgb[0, 2].tolist() == table[255].tolist() == rgb[1, 0].tolist() == rgb[1, 1].tolist()
    assert rgb[1, 2].tolist() == NAN_COLOR.tolist()


def test_unknown_colormap_is_a_user_error():
    with pytest.raises(UserError, match="unknown colour map 'rainbow'.*viridis"):
        apply_colormap(np.zeros(3), "rainbow")


def test_jet_runs_from_dark_blue_through_cyan_and_yellow_to_dark_red():
    rgb = apply_colormap(np.array([0.0, 0.375, 0.625, 1.0]), "jet").astype(int)
    np.testing.assert_allclose(rgb, [[0, 0, 128], [0, 255, 255], [255, 255, 0], [128, 0, 0]], atol=3)
    assert "jet" in COLORMAPS
