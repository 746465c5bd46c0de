"""Capture, cache, statistics, sort orders and grid tiling of activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cnnexplorer.core.activations import (
    ActivationCache,
    activation_grid,
    capture,
    channel_stats,
    compare_grids,
    render_activation_picture,
)
from cnnexplorer.core.colormaps import NAN_COLOR, apply_colormap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.grids import LABEL_PAD, GridLayout, digit_glyphs, grid_picture, label_stack
from cnnexplorer.core.picture_style import MIN_CAP_HEIGHT
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing


def handle_for(module: nn.Module, size: int = 8) -> ModelHandle:
    return ModelHandle("test", module, torch.device("cpu"), Preprocessing(3, (size, size), (0.0,) * 3, (1.0,) * 3),
                       [], "none", False)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return handle_for(torchvision.models.resnet18(weights=None).eval(), 64)


def test_captured_layer_equals_a_direct_forward(resnet18):
    m = resnet18.module
    x = torch.rand(3, 64, 64)
    recorded = capture(resnet18, x, ["layer1", "fc"])
    with torch.no_grad():
        expected = m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x[None])))))
        logits = m(x[None])
    torch.testing.assert_close(recorded.output("layer1"), expected)
    torch.testing.assert_close(recorded.output("fc"), logits)
    assert recorded.layers() == ["layer1", "fc"]


def test_a_module_called_twice_records_each_call(resnet18):
    m = resnet18.module
    block = m.layer1[0]
    x = torch.rand(3, 64, 64)
    recorded = capture(resnet18, x, ["layer1.0.relu"])
    with torch.no_grad():
        stem = m.maxpool(m.relu(m.bn1(m.conv1(x[None]))))
        first = block.relu(block.bn1(block.conv1(stem)))
        second = block.relu(block.bn2(block.conv2(first)) + stem)
    assert recorded.calls("layer1.0.relu") == 2
    assert recorded.layers() == ["layer1.0.relu", "layer1.0.relu#1"]
    torch.testing.assert_close(recorded.output("layer1.0.relu"), first)
    torch.testing.assert_close(recorded.output("layer1.0.relu#0"), first)
    torch.testing.assert_close(recorded.output("layer1.0.relu#1"), second)
    with pytest.raises(UserError, match=r"ran 2 time\(s\).*layer1\.0\.relu#1"):
        recorded.output("layer1.0.relu#2")


def test_capture_restores_training_flags_and_running_stats():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net.train()
    net[2].eval()
    running = net[1].running_mean.clone()
    capture(handle_for(net), torch.rand(3, 8, 8))
    assert [m.training for m in net.modules()] == [True, True, True, False]
    torch.testing.assert_close(net[1].running_mean, running)


class Branchy(nn.Module):
    """A module with an unused branch and a module returning a tuple."""

    def __init__(self):
        super().__init__()
        self.used = nn.Conv2d(3, 2, 1)
        self.unused = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return torch.aminmax(self.used(x), dim=1)


def test_unused_branch_and_tuple_outputs():
    net = Branchy()
    x = torch.rand(3, 8, 8)
    recorded = capture(handle_for(net), x, ["used", "unused", ""])
    with pytest.raises(UserError, match="layer 'unused' produced no output for this input"):
        recorded.output("unused")
    with torch.no_grad():
        y = net.used(x[None])
    torch.testing.assert_close(recorded.output("", 0), y.min(dim=1).values)
    torch.testing.assert_close(recorded.output("", 1), y.max(dim=1).values)
    with pytest.raises(UserError, match="2 output tensor"):
        recorded.output("", 2)
    with pytest.raises(UserError, match="unknown layer 'usd'; did you mean used"):
        capture(handle_for(net), x, ["usd"])


def chain(channels: int = 4, depth: int = 4) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1) for i in range(depth)])


def test_cache_switching_layer_does_not_rerun_the_model():
    handle = handle_for(chain())
    cache = ActivationCache()
    x = torch.rand(3, 8, 8)
    first = cache.get_or_capture(handle, x, "0", image_key="img")
    for layer in ("1", "2", "3", "0"):
        out = cache.get_or_capture(handle, x, layer, image_key="img")
    assert cache.forward_passes == 1
    assert out is first
    torch.testing.assert_close(cache.get_or_capture(handle, x, "2", image_key="img"),
                               capture(handle, x, ["2"]).output("2"))
    cache.get_or_capture(handle, torch.rand(3, 8, 8), "1")
    assert cache.forward_passes == 2
    with torch.no_grad():
        handle.module[0].weight.mul_(2)
    cache.get_or_capture(handle, x, "1", image_key="img")
    assert cache.forward_passes == 3, "changed weights must not reuse old activations"


def test_cache_evicts_the_oldest_entries_beyond_its_budget():
    handle = handle_for(chain())
    one_layer = 4 * 8 * 8 * 4
    cache = ActivationCache(budget_bytes=int(2.5 * one_layer))
    x = torch.rand(3, 8, 8)
    cache.get_or_capture(handle, x, "1", image_key="img")
    assert cache.nbytes <= cache.budget_bytes and len(cache) == 2
    cache.get_or_capture(handle, x, "1", image_key="img")
    cache.get_or_capture(handle, x, "3", image_key="img")
    assert cache.forward_passes == 1, "the requested layer and the newest one stay"
    cache.get_or_capture(handle, x, "0", image_key="img")
    assert cache.forward_passes == 2, "the oldest layer was evicted"


def test_cache_remembers_unused_layers_without_rerunning():
    cache = ActivationCache()
    handle = handle_for(Branchy())
    x = torch.rand(3, 8, 8)
    for _ in range(2):
        with pytest.raises(UserError, match="'unused' produced no output"):
            cache.get_or_capture(handle, x, "unused", image_key="img")
    assert cache.forward_passes == 1


def per_channel_expected(maps: np.ndarray, clip_std: float = 3.0) -> np.ndarray:
    out = []
    for ch in maps:
        low = max(ch.min(), ch.mean() - clip_std * ch.std())
        high = min(ch.max(), ch.mean() + clip_std * ch.std())
        out.append(np.clip((ch - low) / (high - low), 0, 1))
    return np.array(out)


@pytest.mark.parametrize("sort,gap", [("index", 1), ("max", 2), ("mean", 0)])
def test_tiling_is_exact(sort, gap):
    torch.manual_seed(1)
    x = torch.randn(1, 7, 5, 6)
    grid = activation_grid(x, sort=sort, gap=gap)
    layout = grid.layout
    expected = per_channel_expected(x[0].numpy())
    assert grid.values.shape == layout.shape == (layout.rows * (5 + gap) - gap, layout.cols * (6 + gap) - gap)
    for slot, channel in enumerate(layout.order):
        row, col = divmod(slot, layout.cols)
        top, left = row * (5 + gap), col * (6 + gap)
        np.testing.assert_allclose(grid.values[top:top + 5, left:left + 6], expected[channel], atol=1e-5)
        assert layout.tile_index_at(left + 5, top + 4) == channel
        assert layout.tile_origin(channel) == (left, top)
        if gap:
            assert layout.tile_index_at(left + 6, top) is None
            assert np.isnan(grid.values[top:top + 5, left + 6:left + 6 + gap]).all()
    assert layout.tile_index_at(-1, 0) is None
    assert layout.tile_index_at(layout.shape[1] + 3, 0) is None


def test_sort_orders_and_hidden_dead_channels():
    x = torch.zeros(1, 4, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])   # mean 1, max 1
    x[0, 1] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])   # mean 1, max 4
    x[0, 3] = torch.tensor([[2.0, 2.0], [2.0, 0.0]])   # mean 1.5, max 2
    assert activation_grid(x, sort="index").layout.order.tolist() == [0, 1, 2, 3]
    assert activation_grid(x, sort="mean").layout.order.tolist() == [3, 0, 1, 2]
    assert activation_grid(x, sort="max").layout.order.tolist() == [1, 3, 0, 2]
    hidden = activation_grid(x, sort="max", hide_dead=True)
    assert hidden.layout.order.tolist() == [1, 3, 0]
    assert hidden.stats.dead.tolist() == [False, False, True, False]
    assert hidden.stats.dead_count == 1
    np.testing.assert_allclose(hidden.stats.zero_fraction, [0, 0.75, 1, 0.25])
    assert hidden.stats.layer_zero_fraction == pytest.approx(0.5)
    assert hidden.stats.channel(1) == {"index": 1, "min": 0.0, "max": 4.0, "mean": 1.0, "zero_fraction": 0.75}


def test_layer_and_fixed_normalisation_and_signed_default_colormap():
    x = torch.tensor([[[[-2.0, 1.0]], [[0.5, 4.0]]]])
    layer = activation_grid(x, norm="layer", gap=0)
    assert layer.signed and layer.cmap == "diverging"
    assert layer.value_range == (-4.0, 4.0)
    np.testing.assert_allclose(layer.values, [[0.25, 0.625], [0.5625, 1.0]])
    fixed = activation_grid(x, norm="fixed", value_range=(0.0, 2.0), gap=0, cmap="gray")
    np.testing.assert_allclose(fixed.values, [[0.0, 0.5], [0.25, 1.0]])
    assert activation_grid(x.relu()).cmap == "viridis"
    with pytest.raises(UserError, match="needs a range"):
        activation_grid(x, norm="fixed")
    with pytest.raises(UserError, match="unknown normalisation"):
        activation_grid(x, norm="global")


def test_vectors_become_a_strip_of_units():
    values = torch.arange(10.0)
    for shaped in (values[None], values.view(1, 10, 1, 1)):
        grid = activation_grid(shaped)
        assert grid.units and grid.shape == (10, 1, 1) and grid.norm == "layer"
        assert grid.layout.shape == (3, 4)
        np.testing.assert_allclose(grid.values.ravel()[:10], values.numpy() / 9)
        assert grid.layout.tile_index_at(1, 2) == 9


def test_huge_layers_render():
    grid = activation_grid(torch.rand(1, 4096))
    assert grid.layout.shape == (64, 64)
    assert render_activation_picture(grid).shape == (64 * 12, 64 * 12, 3)
    wide = activation_grid(torch.rand(1, 2048, 7, 7).relu())
    picture = render_activation_picture(wide)
    assert wide.layout.cols * wide.layout.rows >= 2048
    assert picture.shape[0] == wide.layout.shape[0] * 6, "7-pixel tiles grow to fit 4-digit channel numbers"


def test_nan_and_inf_are_rendered_with_a_warning():
    x = torch.rand(1, 2, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    x[0, 1, 0, 0] = float("inf")
    grid = activation_grid(x, gap=0)
    assert "1 NaN value(s)" in grid.warning and "1 infinite value(s)" in grid.warning
    assert np.isnan(grid.values[1, 1])
    assert grid.values[0, 4] == 1.0
    assert np.isfinite(grid.stats.mean).all()
    picture, layout = grid_picture(grid.values, grid.layout, "viridis", labels=False)
    scale = layout.tile_w // 4
    assert picture[scale + 1, scale + 1].tolist() == NAN_COLOR.tolist()


def test_picture_is_the_coloured_grid_enlarged_with_labels_in_the_corners():
    torch.manual_seed(2)
    grid = activation_grid(torch.rand(1, 12, 8, 8))
    plain, layout = grid_picture(grid.values, grid.layout, grid.cmap, labels=False)
    labelled = render_activation_picture(grid)
    factor = layout.tile_w // 8
    assert factor == 4
    coloured = apply_colormap(grid.values, "viridis").repeat(factor, 0).repeat(factor, 1)
    inside = ~np.isnan(grid.values).repeat(factor, 0).repeat(factor, 1)
    np.testing.assert_array_equal(plain[inside], coloured[inside])
    assert (plain[~inside] == [48, 48, 48]).all()
    changed = np.argwhere((plain != labelled).any(axis=2))
    pitch = layout.tile_w + layout.gap
    marks = label_stack(np.array([11]))[0]
    height, width = marks.shape
    assert (changed[:, 0] % pitch < height).all() and (changed[:, 1] % pitch < width).all(), "labels stay in the corner"
    assert 2 * height <= layout.tile_h, "a label takes at most half of its tile's height"
    x0, y0 = layout.tile_origin(11)
    white = (labelled[y0:y0 + height, x0:x0 + width] == 255).all(axis=2)
    assert white.tolist() == (marks == 2).tolist()


def test_label_stack_draws_digits():
    glyphs = digit_glyphs()
    _, glyph_h, glyph_w = glyphs.shape
    assert glyph_h >= MIN_CAP_HEIGHT and glyphs[:10].any(axis=(1, 2)).all() and not glyphs[10].any()
    seven = label_stack(np.array([7]))[0]
    assert seven.shape == (glyph_h + 2 * LABEL_PAD, glyph_w + 2 * LABEL_PAD)
    assert ((seven[LABEL_PAD:-LABEL_PAD, LABEL_PAD:-LABEL_PAD] == 2) == glyphs[7]).all()
    labels = label_stack(np.array([5, 120]))
    assert labels.shape == (2, glyph_h + 2 * LABEL_PAD, 3 * glyph_w + 2 * LABEL_PAD)
    assert (labels[0, :, glyph_w + 2 * LABEL_PAD:] == 0).all(), "a one-digit label's box ends after its digit"


def test_grid_layout_scaled_maps_picture_pixels_back():
    layout = GridLayout.near_square(np.array([2, 0, 1]), 3, 3, gap=1).scaled(4)
    assert layout.tile_index_at(0, 0) == 2 and layout.tile_index_at(16, 0) == 0
    assert layout.tile_index_at(12, 0) is None


def test_hiding_every_channel_says_so_and_still_renders():
    grid = activation_grid(torch.zeros(1, 3, 4, 4), hide_dead=True)
    assert "all 3 channels are dead" in grid.warning
    assert np.isnan(grid.values).all() and grid.layout.tile_index_at(0, 0) is None
    assert (render_activation_picture(grid) == [48, 48, 48]).all()


def test_cache_gets_many_layers_from_one_pass_even_beyond_its_budget():
    handle = handle_for(Branchy())
    cache = ActivationCache(budget_bytes=1)
    x = torch.rand(3, 8, 8)
    found = cache.get_many(handle, x, ["used", "unused", ""], image_key="img")
    assert cache.forward_passes == 1 and len(cache) <= 1
    assert found["unused"] is None
    torch.testing.assert_close(found["used"][0], capture(handle, x, ["used"]).output("used"))
    assert len(found[""]) == 2, "a module returning a tuple gives all its tensors"
    assert channel_stats(found["used"][0]).max.shape == (2,)


def test_a_second_image_keeps_the_first_ones_order_and_shared_range():
    a = torch.tensor([[[[1.0, 2.0]], [[5.0, 0.0]], [[0.0, 0.0]]]])
    b = torch.tensor([[[[4.0, 0.0]], [[1.0, 1.0]], [[8.0, 0.0]]]])
    assert activation_grid(b, sort="max").layout.order.tolist() == [2, 0, 1]
    first, second = compare_grids(a, b, sort="max", norm="layer")
    assert first.layout.order.tolist() == second.layout.order.tolist() == [1, 0, 2]
    assert first.value_range == second.value_range == (0.0, 8.0), "one range for both images"
    assert first.values[0, first.layout.tile_origin(1)[0]] == pytest.approx(5 / 8)
    assert activation_grid(b, order=np.array([1])).layout.order.tolist() == [1]


def test_difference_of_two_images_is_symmetric_around_the_middle():
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, 3.0]]]])
    b = torch.tensor([[[[2.0, 0.0]], [[3.0, 3.0]]]])
    (diff,) = compare_grids(a, b, difference=True)
    assert diff.cmap == "diverging" and diff.value_range == (-2.0, 2.0)
    assert diff.values[0, :2].tolist() == [0.25, 1.0] and diff.values[0, 3:5].tolist() == [0.5, 0.5]
    (same,) = compare_grids(a, a, difference=True)
    assert np.nanmax(np.abs(same.values - 0.5)) == 0
    with pytest.raises(UserError, match="different shapes"):
        compare_grids(a, torch.zeros(1, 2, 1, 3))
