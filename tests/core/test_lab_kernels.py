"""The kernel playground: the course's worked examples, typed kernels, images and a real layer's unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.lab.kernels import (CURVE_PATCH, NAMED_KERNELS, SHARPEN_PATCH, WORKED_EXAMPLES, apply_to_image,
                                          correlate, explain, kernel_named, parse_matrix, top_input_channels,
                                          unit_input_box)


def test_sharpen_on_the_zero_padded_patch_gives_320_at_the_top_left():
    response = correlate(SHARPEN_PATCH, kernel_named("sharpen"), padding=1)
    assert response.shape == (5, 5) and response[0, 0] == 320
    why = explain(SHARPEN_PATCH, kernel_named("sharpen"), 0, 0, padding=1)
    assert why.total == 320 and why.patch[0].tolist() == [0, 0, 0] and why.patch[1, 1] == 105
    assert why.text() == "105×5 + 102×-1 + 103×-1 = 320"


def test_curve_detector_gives_6600_on_its_patch():
    assert correlate(CURVE_PATCH, kernel_named("curve"))[0, 0] == 6600
    why = explain(CURVE_PATCH, kernel_named("curve"), 0, 0)
    assert why.text() == "50×30 + 20×30 + 50×30 + 50×30 + 50×30 = 6600"
    for name, (matrix, padding, (row, col), value) in WORKED_EXAMPLES.items():
        assert correlate(matrix, NAMED_KERNELS[name], padding)[row, col] == value


def test_typed_kernels_parse_or_say_what_is_wrong():
    np.testing.assert_array_equal(parse_matrix("0 -1 0; -1 5 -1; 0 -1 0"), NAMED_KERNELS["sharpen"])
    np.testing.assert_array_equal(parse_matrix("[[1, 2], [3, 4]]"), [[1, 2], [3, 4]])
    np.testing.assert_allclose(parse_matrix("1/9 1/9\n1/9 1/9"), np.full((2, 2), 1 / 9), rtol=1e-15)
    for text, message in (("1 2; 3", "different lengths"), ("1 x", "not a number"), ("", "empty"),
                          ("1/0", "divides by zero")):
        with pytest.raises(UserError, match=message):
            parse_matrix(text)
    with pytest.raises(UserError, match="unknown kernel"):
        kernel_named("nope")


def test_image_responses_grey_and_per_channel():
    image = np.zeros((16, 20, 3), dtype=np.float32)
    image[:, 10:] = 1.0  # a vertical edge
    grey = apply_to_image(image, NAMED_KERNELS["sobel_x"])
    assert grey.shape == (1, 16, 20)
    assert grey[0, 8, 9:11].min() == 4 and np.abs(grey[0, 8, 2:8]).max() == 0
    assert np.abs(apply_to_image(image, NAMED_KERNELS["sobel_y"])[0, 2:14, 2:18]).max() == 0
    per = apply_to_image(image * np.array([1, 0, 0.5], dtype=np.float32), NAMED_KERNELS["sobel_x"], per_channel=True)
    assert per.shape == (3, 16, 20) and per[1].max() == 0 and per[2, 8, 9] == pytest.approx(0.5 * per[0, 8, 9])
    assert apply_to_image(image, NAMED_KERNELS["curve"]).shape == (1, 16, 20)


def test_top_input_channels_sum_to_the_unit_value():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, padding=1)
    x = torch.randn(1, 4, 6, 6)
    top = top_input_channels(conv, x, channel=2, row=0, col=5, count=4)
    value = conv(x)[0, 2, 0, 5].item()
    assert sorted(c for c, _ in top) == [0, 1, 2, 3]
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert sum(s for _, s in top) + conv.bias[2].item() == pytest.approx(value, abs=1e-5)


def test_receptive_box_of_a_real_unit():
    from cnnexplorer.core.models import load_model

    handle = load_model("builtin:tinyvgg", "cpu")
    assert unit_input_box(handle, "features.0", 0, 0) == (0, 0, 3, 3)
    assert unit_input_box(handle, "features.4", 1, 2) == (4, 2, 10, 8)


def test_top_channels_of_a_loaded_models_unit_from_one_recorded_pass(tmp_path):
    """conv_recording_job records the model's pixels and the layer's input and output in one pass; the top
    channels' sums and the bias rebuild the unit's value."""
    from PIL import Image

    from cnnexplorer.core.images import load_image
    from cnnexplorer.core.jobs import drive
    from cnnexplorer.core.lab.kernels import conv_recording_job
    from cnnexplorer.core.models import load_model

    torch.manual_seed(0)
    handle = load_model("builtin:tinyvgg", "cpu")
    Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy()).save(tmp_path / "x.png")
    pixels, layer_input, output = drive(conv_recording_job(handle, load_image(tmp_path / "x.png"), "features.2"))
    conv = handle.module.features[2]
    top = top_input_channels(conv, layer_input, channel=3, row=5, col=7, count=10)
    mean = torch.tensor(handle.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(handle.preprocessing.std).view(3, 1, 1)
    with torch.no_grad():
        value = handle.module.features[:3](((pixels - mean) / std)[None])[0, 3, 5, 7].item()
    assert output[0, 3, 5, 7].item() == pytest.approx(value, abs=1e-5)
    assert sum(s for _, s in top) + conv.bias[3].item() == pytest.approx(value, abs=1e-4)
    assert len(top) == 10 and sorted(c for c, _ in top) == list(range(10))
