"""Unit atlas: receptive-field boxes checked against autograd, patches and single-activation
reconstructions checked against a brute-force index of a few images."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cnnexplorer.core.architecture import summarize
from cnnexplorer.core.dataset.atlas import (Atlases, featurevis_kind, reconstructions_job,
                                            single_activation_gradients, unit_atlas)
from cnnexplorer.core.dataset.index_types import DatasetIndex, LayerIndex
from cnnexplorer.core.dataset.receptive import image_box, layer_field, receptive_fields
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis.optimize import run_to
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import Preprocessing, eval_mode
from cnnexplorer.core.models import open_model

TOL = 1e-4  # activations recomputed in another batch: float32 rounding only


@pytest.fixture(scope="module")
def shapes():
    return drive(open_model("builtin:shapes", "cpu"))


@pytest.fixture(scope="module")
def resnet():
    """torchvision's ResNet-18 with random weights (seeded: the units a test reconstructs must be live), run at
    64×64 so that residual blocks keep interior units."""
    torch.manual_seed(0)
    handle = drive(open_model("torchvision:resnet18:none", "cpu"))
    return replace(handle, preprocessing=replace(handle.preprocessing, size=(64, 64), resize=None))


def gradient_support(handle, layer: str, y: int, x: int) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1, ends excluded) of the input pixels with a non-zero gradient to every
    channel of ``layer`` at ``(y, x)`` together, for a random input."""
    torch.manual_seed(0)
    pixels = torch.rand(1, *handle.input_size, requires_grad=True)
    with eval_mode(handle.module), torch.enable_grad():
        output = run_to(handle.pixel_model(), handle.module, [layer], pixels)[layer]
        (grad,) = torch.autograd.grad(output[0, :, y, x].sum(), pixels)
    rows, cols = (grad.abs().sum(dim=(0, 1)) > 0).nonzero(as_tuple=True)
    if rows.numel() == 0:
        return None
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def inside(inner, outer) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@pytest.mark.parametrize("model, layers", [
    ("shapes", ["features.0.0", "features.1", "features.2.2", "features.4", "features.5.0", "features.7.conv1"]),
    ("resnet", ["conv1", "maxpool", "layer1.0", "layer1.1.conv2", "layer2.0.downsample.0", "layer2.0"]),
])
def test_box_holds_every_pixel_with_a_gradient(model, layers, request):
    handle = request.getfixturevalue(model)
    rf_sizes = {row.name: row.rf_size for row in summarize(handle.module, handle.input_size).layers}
    extent = handle.preprocessing.size
    for layer in layers:
        field = layer_field(handle, layer)
        with torch.no_grad(), eval_mode(handle.module):
            probe_input = torch.zeros(1, *handle.input_size)
            rows, cols = run_to(handle.pixel_model(), handle.module, [layer], probe_input)[layer].shape[2:]
        for y, x in ((0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows // 2, cols // 2)):
            support = gradient_support(handle, layer, y, x)
            box = field.input_box(y, x, extent)
            assert support is not None and inside(support, box), (layer, y, x, support, box)
        # an interior unit's box is exactly as wide as the architecture's receptive field, and no wider than
        # the gradient reaches: the bound is tight, not the whole image
        y, x = rows // 2, cols // 2
        x0, y0, x1, y1 = field.input_box(y, x, extent, clip=False)
        assert x1 - x0 == y1 - y0 == rf_sizes[layer], layer
        if x0 >= 0 and y0 >= 0 and x1 <= extent[1] and y1 <= extent[0]:
            assert gradient_support(handle, layer, y, x) == (x0, y0, x1, y1), layer


def test_vector_layers_see_the_whole_input(shapes):
    fields = receptive_fields(shapes)
    assert fields["classifier"].input_box(0, 0, (64, 64)) == (0, 0, 64, 64)
    assert fields["pool"].rows is None
    assert receptive_fields(shapes) is fields  # one probe per model and input size


def test_image_box_maps_through_resize_and_centre_crop():
    plain = Preprocessing(3, (64, 64), (0.5,) * 3, (0.25,) * 3)
    assert image_box((0, 0, 64, 64), plain, (128, 96)) == (0, 0, 128, 96)
    assert image_box((16, 8, 32, 24), plain, (128, 96)) == (32, 12, 64, 36)
    cropped = Preprocessing(3, (224, 224), (0.5,) * 3, (0.25,) * 3, resize=256)
    left, top, right, bottom = cropped.crop_box((512, 384))  # scaled 341×256, crop 224 from (58.5→59, 16)
    assert image_box((0, 0, 224, 224), cropped, (512, 384)) == (int(left), int(top), int(np.ceil(right)),
                                                                int(np.ceil(bottom)))
    x0, y0, x1, y1 = image_box((10, 20, 11, 21), cropped, (512, 384))
    scale = 384 / 256
    assert x0 <= left + 10 * scale < left + 11 * scale <= x1 and y0 <= top + 20 * scale < top + 21 * scale <= y1
    assert image_box((-100, -100, 400, 400), cropped, (512, 384)) == (0, 0, 512, 384)


class Probe:
    """A probe set of a few images in memory, in the probe sets' interface."""

    spec = "test:shapes"

    def __init__(self, images: list[Image.Image]):
        self.images = images
        self.reads = 0

    def __len__(self) -> int:
        return len(self.images)

    def source(self, i: int) -> str:
        return f"{self.spec}#{i}"

    def image(self, i: int) -> Image.Image:
        self.reads += 1
        return self.images[i]


def brute_force_index(handle, probe: Probe, layers: list[str], k: int = 4, bins: int = 8) -> DatasetIndex:
    """Every image's per-channel spatial maximum (first peak in row order), sorted: what an index pass keeps."""
    pixels = torch.stack([handle.preprocessing.to_tensor(probe.image(i)) for i in range(len(probe))])
    with torch.no_grad(), eval_mode(handle.module):
        outputs = run_to(handle.pixel_model(), handle.module, layers, pixels)
    records = {}
    for name in layers:
        out = outputs[name].numpy()
        maps = out if out.ndim == 4 else out[:, :, None, None]
        n, c, h, w = maps.shape
        flat = maps.reshape(n, c, h * w)
        peaks, where = flat.max(axis=2), flat.argmax(axis=2)
        order = np.argsort(-peaks, axis=0, kind="stable")[:k].T  # [C, k]
        top_values = np.take_along_axis(peaks.T, order, axis=1).astype(np.float32)
        spots = np.take_along_axis(where.T, order, axis=1)
        edges = np.linspace(maps.min(), maps.max(), bins + 1)
        counts = np.stack([np.histogram(maps[:, ch].ravel(), edges)[0] for ch in range(c)])
        records[name] = LayerIndex(name, (h, w) if out.ndim == 4 else None, top_values, order.astype(np.int64),
                                   (spots // w).astype(np.int32), (spots % w).astype(np.int32),
                                   maps.mean(axis=(0, 2, 3)), maps.max(axis=(0, 2, 3)),
                                   (maps == 0).mean(axis=(0, 2, 3)), edges, counts.astype(np.int64))
    return DatasetIndex("test", handle.spec, probe.spec, len(probe), k, records, {}, np.full(len(probe), -1),
                        np.zeros((len(probe), 0), np.int64), np.zeros((len(probe), 0), np.float32),
                        np.zeros((len(probe), 32, 32, 3), np.uint8))


@pytest.fixture(scope="module")
def probe():
    """Eight shapes scenes saved as 96×80 pictures (not the model's 64×64: boxes are mapped back)."""
    from cnnexplorer.core.builtin.shapes_data import validation_set

    scenes = (validation_set(8).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return Probe([Image.fromarray(scene).resize((96, 80), Image.BILINEAR) for scene in scenes])


LAYERS = ["features.2.2", "features.7", "classifier"]


@pytest.fixture(scope="module")
def index(shapes, probe):
    return brute_force_index(shapes, probe, LAYERS)


def test_atlas_patches_follow_the_index(shapes, probe, index):
    field = layer_field(shapes, "features.2.2")
    atlas = unit_atlas(shapes, probe, index, "features.2.2", 5, size=48)
    record = index.layers["features.2.2"]
    assert [p.image for p in atlas.patches] == list(record.top_images[5])
    assert [p.value for p in atlas.patches] == sorted((p.value for p in atlas.patches), reverse=True)
    for patch in atlas.patches:
        assert patch.input_box == field.input_box(patch.y, patch.x, (64, 64))
        assert patch.box == image_box(patch.input_box, shapes.preprocessing, (96, 80))
        assert patch.pixels.shape == (48, 48, 3) and patch.pixels.dtype == np.uint8
        assert patch.source == f"test:shapes#{patch.image}"
    crop = np.asarray(probe.images[atlas.patches[0].image].crop(atlas.patches[0].box))
    assert atlas.patches[0].pixels.std() > 0 and crop.shape[:2] == (atlas.patches[0].box[3] - atlas.patches[0].box[1],
                                                                   atlas.patches[0].box[2] - atlas.patches[0].box[0])
    assert np.array_equal(atlas.hist_counts, record.hist_counts[5]) and atlas.hist_edges is record.hist_edges
    assert atlas.maximum == pytest.approx(float(record.maximum[5]))


def test_reconstructions_are_single_activations(shapes, probe, index):
    atlas = unit_atlas(shapes, probe, index, "features.7", 3)
    flags = [(m, m.training) for m in shapes.module.modules()]
    shapes.module.train()
    try:
        made = drive(reconstructions_job(shapes, probe, atlas))
        assert shapes.module.training and all(m.training for m in shapes.module.modules())
    finally:
        for module, training in flags:
            module.training = training
    assert not any(m._forward_hooks for m in shapes.module.modules())
    assert all(p.grad is None and p.requires_grad for p in shapes.module.parameters())
    np.testing.assert_allclose(made.values, [p.value for p in atlas.patches], rtol=TOL, atol=TOL)
    assert len(made.deconvnet) == len(made.guided) == len(atlas.patches)
    pixels = torch.stack([shapes.preprocessing.to_tensor(probe.image(p.image)) for p in atlas.patches])
    positions = [(p.y, p.x) for p in atlas.patches]
    for method in ("deconvnet", "guided"):
        batched, _ = single_activation_gradients(shapes, pixels, "features.7", 3, positions, method)
        for i, patch in enumerate(atlas.patches):
            alone, _ = single_activation_gradients(shapes, pixels[i:i + 1], "features.7", 3, positions[i:i + 1], method)
            torch.testing.assert_close(batched[i:i + 1], alone, rtol=TOL, atol=1e-6)  # images do not mix
            support = (batched[i].abs().sum(0) > 0).nonzero()
            assert support.numel() > 0
            x0, y0, x1, y1 = patch.input_box
            assert support[:, 0].min() >= y0 and support[:, 0].max() < y1
            assert support[:, 1].min() >= x0 and support[:, 1].max() < x1
    deconv, _ = single_activation_gradients(shapes, pixels, "features.7", 3, positions, "deconvnet")
    assert not torch.allclose(deconv, batched)  # the two rules differ
    assert all(r.shape == atlas.patches[0].pixels.shape for r in made.guided)


@pytest.mark.parametrize("layer, channel", [("layer1.0", 7), ("fc", 3)])
def test_residual_blocks_and_logits_reconstruct_inside_their_boxes(resnet, layer, channel):
    """torchvision's BasicBlock reuses one in-place ReLU module; the single activation's gradient stays in
    the unit's box, images do not mix, and the model keeps no hook and no gradient."""
    torch.manual_seed(1)
    pixels = torch.rand(3, *resnet.input_size)
    positions = [(0, 0), (15, 15), (7, 9)] if layer != "fc" else [(0, 0)] * 3
    field = layer_field(resnet, layer) if layer != "fc" else receptive_fields(resnet)["fc"]
    for method in ("deconvnet", "guided"):
        batched, values = single_activation_gradients(resnet, pixels, layer, channel, positions, method)
        alone, value = single_activation_gradients(resnet, pixels[2:], layer, channel, positions[2:], method)
        torch.testing.assert_close(batched[2:], alone, rtol=TOL, atol=1e-6)
        torch.testing.assert_close(values[2:], value, rtol=TOL, atol=TOL)
        for grad, (y, x) in zip(batched, positions):
            x0, y0, x1, y1 = field.input_box(y, x, (64, 64))
            outside = grad.abs().sum(0)
            outside[y0:y1, x0:x1] = 0
            assert grad.abs().sum() > 0 and outside.sum() == 0, (method, y, x)
    assert not any(m._forward_hooks for m in resnet.module.modules())
    assert all(p.grad is None for p in resnet.module.parameters())


def test_class_logits_show_whole_images(shapes, probe, index):
    atlas = unit_atlas(shapes, probe, index, "classifier", 2)
    assert all(p.box == (0, 0, 96, 80) and p.input_box == (0, 0, 64, 64) for p in atlas.patches)
    made = drive(reconstructions_job(shapes, probe, atlas))
    np.testing.assert_allclose(made.values, [p.value for p in atlas.patches], rtol=TOL, atol=TOL)
    assert all(r.std() > 0 for r in made.guided)


def test_unknown_layer_or_channel_is_refused(shapes, probe, index):
    with pytest.raises(UserError, match="no layer 'features.3'.*cnnexplorer index --layers features.3"):
        unit_atlas(shapes, probe, index, "features.3", 0)
    with pytest.raises(UserError, match="has 6 channels; pick a channel from 0 to 5"):
        unit_atlas(shapes, probe, index, "classifier", 6)


def test_a_clicked_unit_is_fast_and_remembered(shapes, probe, index):
    atlases = Atlases(shapes, probe, index)  # traces the receptive fields
    started = time.perf_counter()
    atlas = atlases.unit("features.2.2", 7)
    first = time.perf_counter() - started
    reads = probe.reads
    assert atlases.unit("features.2.2", 7) is atlas and probe.reads == reads
    made = drive(atlases.reconstructions("features.2.2", 7))
    assert drive(atlases.reconstructions("features.2.2", 7)) is made
    assert first < 0.1, f"a clicked unit's atlas took {first * 1000:.0f} ms"


@pytest.mark.parametrize("pad", [torch.nn.ReflectionPad2d((2, 1, 1, 2)), torch.nn.ReplicationPad2d((1, 2, 2, 1)),
                                 torch.nn.ZeroPad2d((2, 0, 1, 1))])
def test_padded_borders_stay_in_their_boxes(shapes, pad):
    """Reflected and replicated borders repeat pixels from inside the image: the boxes still hold them."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(pad, torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), pad,
                              torch.nn.Conv2d(4, 4, 3)).eval()
    handle = replace(shapes, spec="test:padded", module=net, preprocessing=replace(shapes.preprocessing, size=(15, 17)))
    field = layer_field(handle, "4")
    with torch.no_grad():
        rows, cols = run_to(handle.pixel_model(), net, ["4"], torch.zeros(1, *handle.input_size))["4"].shape[2:]
    for y in range(rows):
        for x in range(cols):
            support = gradient_support(handle, "4", y, x)
            assert support is not None and inside(support, field.input_box(y, x, (15, 17))), (y, x)


@pytest.mark.parametrize("layer, map_size, kind", [("features.2.0", (32, 32), "channel"), ("flatten", None, "neuron"),
                                                   ("classifier", None, "logit")])
def test_featurevis_objective_follows_the_layer(shapes, layer, map_size, kind):
    """A map's unit is visualised by its channel, a hidden vector's by the unit itself, the model's output by
    the class logit (as the Feature vis tab's Class logit objective)."""
    empty = np.zeros((1, 1))
    record = LayerIndex(layer, map_size, empty, empty, empty, empty, np.zeros(1), np.zeros(1), np.zeros(1),
                        np.zeros(2), empty)
    assert featurevis_kind(shapes, record) == kind


def test_featurevis_runs_at_a_size_the_layer_takes(shapes):
    """A unit is visualised at the patch's size, or at the model's own input size when a Flatten into a Linear
    takes no other, and not at all when that size is not square (the atlas then has no feature-vis column)."""
    from cnnexplorer.core.dataset.atlas import PATCH, featurevis_job
    from cnnexplorer.core.featurevis.units import workable_size

    assert workable_size(shapes, "features.2.0", PATCH) == PATCH and workable_size(shapes, "classifier", PATCH) == PATCH
    flat = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(2 * 24 * 24, 3))
    square = replace(shapes, module=flat.eval(), preprocessing=replace(shapes.preprocessing, size=(24, 24), resize=None))
    assert workable_size(square, "0", PATCH) == PATCH and workable_size(square, "2", PATCH) == 24
    empty = np.zeros((3, 1))
    record = LayerIndex("2", None, empty, empty, empty, empty, np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(2), empty)
    made = drive(featurevis_job(square, record, [0, 2], seed=1))
    assert made.size == 24 and [image.shape for image in made.images] == [(PATCH, PATCH, 3)] * 2
    wide = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(2 * 24 * 30, 3))
    oblong = replace(shapes, module=wide.eval(), preprocessing=replace(shapes.preprocessing, size=(24, 30), resize=None))
    assert workable_size(oblong, "2", PATCH) is None
    made = drive(featurevis_job(oblong, record, [0, 2]))
    assert made.images == () and made.size is None and np.isnan(made.values).all()
