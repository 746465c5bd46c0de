"""Feature visualisation finds what it should on the trained builtin:shapes model (64 px).

Layer ``features.2`` is the second conv block's output (conv → BN → ReLU, 48 channels, 32×32).
Figures measured when the tests were written are stated beside each threshold.
"""

from __future__ import annotations

import pytest
import torch

from cnnexplorer.core.builtin.shapes_data import generate_shapes
from cnnexplorer.core.featurevis import Settings, invert, psnr, render_units, run_to
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model

LAYER = "features.2"
# Channels 4 and 7 stay at exactly 0 from a grey start: their ReLU is off everywhere, so no
# gradient reaches the image (the same happens in Lucent). The others are tested.
CHANNELS = [0, 1, 2, 3, 5, 6]


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", "cpu")


@pytest.fixture(scope="module")
def channel_run(shapes):
    return drive(render_units(shapes, LAYER, CHANNELS, settings=Settings(size=64, steps=48), seed=0))


@pytest.fixture(scope="module")
def noise_baseline(shapes):
    """Mean activation of every channel of LAYER over 32 uniform-noise images."""
    noise = torch.rand(32, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return run_to(shapes.pixel_model(), shapes.module, [LAYER], noise)[LAYER].mean((0, 2, 3))


def test_each_image_activates_its_channel_ten_times_more_than_noise(channel_run, noise_baseline):
    # measured: 11.2× to 58× (channel 1 lowest; channel 5 is ~0 on noise: 2e5×)
    ratios = torch.from_numpy(channel_run.values) / noise_baseline[CHANNELS]
    assert (ratios >= 10).all(), ratios


def test_each_image_prefers_its_channel_over_most_others(shapes, channel_run, noise_baseline):
    with torch.no_grad():
        acts = run_to(shapes.pixel_model(), shapes.module, [LAYER], channel_run.images)[LAYER].mean((2, 3))
    relative = acts / noise_baseline.clamp_min(1e-6)
    own = relative[torch.arange(len(CHANNELS)), CHANNELS]
    beaten = (own[:, None] > relative).float().sum(1) / (relative.shape[1] - 1)
    # measured: every image beats 62 % or more of the other 47 channels (62–96 %, mean 74 %)
    assert (beaten > 0.5).all(), beaten


def test_class_logit_images_are_classified_as_their_class(shapes):
    result = drive(render_units(shapes, "", list(range(6)), kind="logit", settings=Settings(size=64, steps=32)))
    with torch.no_grad():
        probs = torch.softmax(shapes.pixel_model()(result.images), 1)
    # measured: p ≥ 0.9999 for all six classes
    assert (probs.argmax(1) == torch.arange(6)).all()
    assert (probs.diagonal() > 0.9).all(), probs.diagonal()


def test_inversion_from_an_early_layer_reconstructs_the_image(shapes):
    image = generate_shapes(1, seed=3).images[0]
    result = drive(invert(shapes, image, "features.0", Settings(size=64, steps=80, param="pixel", transforms=False)))
    quality = psnr(result.images[0], image)
    # measured: 30.2 dB (the same in 160 steps: 35.9 dB; FFT parameterisation, 80 steps: 14.4 dB)
    assert quality > 28.0, quality
