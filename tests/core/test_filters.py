"""Filter pictures: hand-set kernels render as themselves; matrices, histograms, bad layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnexplorer.core.colormaps import apply_colormap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.filters import block_mean, filter_view, render_filter_picture, weight_histogram


def first_layer_net() -> nn.Sequential:
    """Kernel 0: pure red; kernel 1: a vertical edge (+1 left column, −1 right column)."""
    conv = nn.Conv2d(3, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 0.3
        conv.weight[1, :, :, 0] = 1.0
        conv.weight[1, :, :, 2] = -1.0
    return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 5))


def test_first_layer_kernels_render_as_rgb_images():
    view = filter_view(first_layer_net(), "0")
    assert view.mode == "rgb" and view.weight_shape == (2, 3, 3, 3)
    picture = render_filter_picture(view, labels=False)
    factor = 11  # 3×3 kernels enlarged to at least 32 pixels
    assert picture.shape == (3 * factor, (3 + 3 + 1) * factor, 3)
    red = picture[:3 * factor, :3 * factor].reshape(-1, 3)
    assert (red == [255, 128, 128]).all()
    edge = picture[:3 * factor, 4 * factor:]
    assert (edge[:, :factor] == 255).all()
    assert (edge[:, factor:2 * factor] == 128).all()
    assert (edge[:, 2 * factor:] == 0).all()
    assert (picture[:, 3 * factor:4 * factor] == [48, 48, 48]).all(), "gap between the kernels"


def test_deeper_kernels_mean_over_inputs_or_one_input():
    net = first_layer_net()
    with torch.no_grad():
        net[2].weight.copy_(torch.randn(3, 2, 3, 3))
    view = filter_view(net, "2")
    assert view.mode == "kernels" and view.cmap == "diverging"
    mean = net[2].weight.detach().mean(1).numpy()
    expected = 0.5 + mean / (2 * np.abs(mean).reshape(3, -1).max(1)[:, None, None])
    layout = view.layout
    for slot, channel in enumerate(layout.order):
        x, y = layout.tile_origin(channel)
        np.testing.assert_allclose(view.values[y:y + 3, x:x + 3], expected[channel], atol=1e-6)
    one = filter_view(net, "2", input_channel=1)
    kernel = net[2].weight.detach()[0, 1].numpy()
    np.testing.assert_allclose(one.values[:3, :3], 0.5 + kernel / (2 * np.abs(kernel).max()), atol=1e-6)
    picture = render_filter_picture(one, labels=False)
    np.testing.assert_array_equal(picture[0, 0], apply_colormap(one.values[0, 0], "diverging"))
    with pytest.raises(UserError, match="2 input channels per kernel; choose an input channel from 0 to 1"):
        filter_view(net, "2", input_channel=2)


def test_linear_weights_as_a_matrix_with_a_symmetric_range():
    net = first_layer_net()
    view = filter_view(net, "4")
    weight = net[4].weight.detach().numpy()
    peak = np.abs(weight).max()
    assert view.mode == "matrix" and view.value_range == pytest.approx((-peak, peak))
    np.testing.assert_allclose(view.values, 0.5 + weight / (2 * peak), atol=1e-6)
    assert render_filter_picture(view).shape == (5 * 22, 12 * 22, 3)


def test_huge_matrices_are_block_averaged():
    matrix = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    small, block = block_mean(matrix, max_side=3)
    assert block == (2, 3)
    np.testing.assert_allclose(small, [[4.5, 7.5, 9.5], [18.5, 21.5, 23.5], [29, 32, 34]])
    view = filter_view(nn.Sequential(nn.Linear(5000, 3)), "0")
    assert view.block == (1, 3) and view.values.shape == (3, 1667)


def test_histogram_counts_every_weight():
    weight = torch.tensor([0.0, 0.0, 1.0, 2.0, float("nan")])
    hist = weight_histogram(weight, bins=4)
    assert hist.counts.tolist() == [2, 0, 1, 1]
    np.testing.assert_allclose(hist.edges, [0, 0.5, 1, 1.5, 2])
    assert filter_view(first_layer_net(), "2").histogram.counts.sum() == 3 * 2 * 3 * 3


def test_a_block_shows_its_first_convolution_and_a_layer_without_weights_is_a_user_error():
    net = nn.Sequential(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), first_layer_net()), nn.ReLU())
    view = filter_view(net, "0")  # the BatchNorm's 1-D weight is passed over for the convolution
    assert view.layer == "0.2.0" and view.module_type == "Conv2d" and view.mode == "rgb"
    assert filter_view(net, "").layer == "0.2.0"
    with pytest.raises(UserError, match=r"layer 1 \(ReLU\) has no weights; pick a Conv2d or Linear layer"):
        filter_view(net, "1")
    with pytest.raises(UserError, match=r"layer 1 \(ReLU\) has no weights; pick a Conv2d or Linear layer"):
        filter_view(first_layer_net(), "1")
    with pytest.raises(UserError, match="no input channels"):
        filter_view(first_layer_net(), "4", input_channel=0)
