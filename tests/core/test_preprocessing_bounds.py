"""Resize-then-crop is torchvision's to the bit on photos, and an extreme aspect ratio costs no memory."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from cnnexplorer.core import model_handle
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import Preprocessing

IMAGENET = Preprocessing(3, (224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), resize=256)


def reference(pre: Preprocessing, image: Image.Image) -> np.ndarray:
    """torchvision's evaluation transform (resize the shorter side, centre crop) on the PIL image."""
    transform = transforms.Compose([
        transforms.Resize(pre.resize, interpolation=InterpolationMode(pre.interpolation)),
        transforms.CenterCrop(pre.size),
        transforms.PILToTensor(),
    ])
    return transform(image).numpy().transpose(1, 2, 0).astype(np.float32) / 255


def random_image(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(sum(size))
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(640, 480), (480, 640), (257, 256), (1000, 37), (31, 77), (224, 224), (343, 256)])
def test_photos_are_resized_and_cropped_exactly_as_torchvision_does(size, interpolation):
    pre = replace(IMAGENET, interpolation=interpolation)
    ours = pre.to_tensor(random_image(size)).numpy().transpose(1, 2, 0)
    assert np.array_equal(ours, reference(pre, random_image(size)))


@pytest.mark.parametrize("size", [(640, 480), (1000, 37), (31, 77)])
def test_resampling_only_the_kept_part_stays_within_a_grey_level(size, monkeypatch):
    """The path extreme aspect ratios take, forced here on small images so the whole-image result exists."""
    monkeypatch.setattr(model_handle, "MAX_SCALED_PIXELS", 0)
    ours = IMAGENET.to_tensor(random_image(size)).numpy().transpose(1, 2, 0)
    # the same filter over the same source pixels; the box's float rounding moves a value by one grey level at most
    assert np.abs(ours - reference(IMAGENET, random_image(size))).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000), (2000, 1)])
def test_extreme_aspect_ratios_use_little_memory(size):
    """Scaling 20000×1 to a 256 px short side would be a 5,120,000×256 image (3.9 GB)."""
    script = (
        "import resource, numpy as np\n"
        "from PIL import Image\n"
        "from cnnexplorer.core.model_handle import Preprocessing\n"
        "pre = Preprocessing(3, (224, 224), (0.5,) * 3, (0.25,) * 3, resize=256)\n"
        f"image = Image.fromarray(np.linspace(0, 255, {size[0] * size[1]}).astype(np.uint8)"
        f".reshape({size[1]}, {size[0]})).convert('RGB')\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "tensor = pre.to_tensor(image)\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(tuple(tensor.shape), grown, float(tensor.min()), float(tensor.max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shape, grown_kb, low, high = _parse(done.stdout)
    assert shape == (3, 224, 224)
    assert grown_kb < 50_000, f"peak memory grew by {grown_kb / 1000:.0f} MB"
    # the crop keeps under one source pixel of the long side, the middle of a 0→255 ramp
    assert abs(low - 0.5) < 0.01 and abs(high - 0.5) < 0.01


def _parse(text: str):
    shape_text, rest = text.strip().split(")", 1)
    shape = tuple(int(v) for v in shape_text.strip("(").split(","))
    grown, low, high = rest.split()
    return shape, int(grown), float(low), float(high)


@pytest.mark.parametrize("fields, words", [
    (dict(channels=7), "7 channels"),
    (dict(channels=0), "0 channels"),
    (dict(size=(0, 0)), "0×0"),
    (dict(size=(64, 100_000)), "64×100000"),
    (dict(resize=0), "resize"),
    (dict(std=(0.0, 0.0, 0.0)), "above 0"),
    (dict(std=(0.2, -1.0, 0.2)), "above 0"),
    (dict(mean=(float("nan"), 0.0, 0.0)), "finite"),
    (dict(mean=(0.5,)), "3 values"),
    (dict(interpolation="lanczos"), "interpolation"),
])
def test_preprocessing_no_image_can_be_made_for_is_refused(fields, words):
    values = dict(channels=3, size=(64, 64), mean=(0.5,) * 3, std=(0.25,) * 3, resize=None) | fields
    with pytest.raises(UserError, match=words):
        Preprocessing(**values)
