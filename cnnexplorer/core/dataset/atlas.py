"""The atlas of one unit (Zeiler & Fergus 2014; the course's §12.9.3): the dataset patches that make it
fire hardest, and what in each patch it responds to.

For a channel of a layer, an index pass (``core/dataset/index.py``) has kept the top-k images and
the position of each one's peak. The atlas crops each image to the receptive-field box of the unit
at that peak (``receptive.py``; a linear unit, a class logit included, sees the whole image) and
pairs it with the DeconvNet and guided-backprop reconstructions of that single activation: every
other activation of the layer's output set to zero (the gradient of that one value) and propagated
back to the pixels under the ReLU rule of each method (``core/attribution/relu_rules.py``).

Each row also shows the channel's feature visualisation, made as the Feature vis tab makes it
(``core/featurevis``, the "quick" preset at the patch's size, seeded): the channel objective for a
map, the unit itself for a vector, the class logit (with its L2 term) for the model's output.

Patches need only the index and the images, so a clicked unit shows at once; the reconstructions
run the model (one batched forward to the layer and one backward per method) and the feature
visualisations optimise one batch of images for all the atlas's channels; both are made on demand.
``Atlases`` remembers all three for the units of one index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.attribution.passes import explaining
from cnnexplorer.core.attribution.relu_rules import DeconvReLU, GuidedReLU, relu_rule
from cnnexplorer.core.dataset.receptive import WHOLE, Box, Field, image_box, layer_field, receptive_fields
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis.optimize import Step, as_uint8, preset, run_to
from cnnexplorer.core.featurevis.units import render_units, workable_size
from cnnexplorer.core.hooks import find_layers, forward_hooks, output_tensors
from cnnexplorer.core.jobs import Job, Progress, map_items
from cnnexplorer.core.layouts import unknown_layout
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.picture_style import PAPER

if TYPE_CHECKING:
    from cnnexplorer.core.dataset.index_types import DatasetIndex, LayerIndex
    from cnnexplorer.core.dataset.probe import ProbeSet
    from cnnexplorer.core.model_handle import ModelHandle

PATCH = 64
"""Side in pixels of every patch and reconstruction of an atlas."""
RULES = {"deconvnet": DeconvReLU, "guided": GuidedReLU}
CONTRAST = 0.99
"""Quantile of a reconstruction's non-zero magnitudes shown at full brightness."""
FEATUREVIS_PRESET = "quick"
"""The feature-visualisation preset of an atlas (64 steps): a row's image costs little next to the index."""


@dataclass(frozen=True)
class Patch:
    """One of a unit's top images: its place in the probe set and its source (a file path, or
    ``SPEC#i``), the unit's value and peak ``(y, x)`` in the layer's map, the receptive-field box in
    the original image's pixels and in the model input's pixels (x0, y0, x1, y1; ends excluded), and
    the box's pixels, fitted into a ``PATCH``-pixel square."""

    image: int
    source: str
    value: float
    y: int
    x: int
    box: Box
    input_box: Box
    pixels: np.ndarray


@dataclass(frozen=True)
class UnitAtlas:
    """A unit's top patches, strongest first, and its distribution over the probe set."""

    layer: str
    channel: int
    patches: tuple[Patch, ...]
    hist_edges: np.ndarray  # [bins + 1]
    hist_counts: np.ndarray  # [bins]
    mean: float
    maximum: float
    zeros: float


@dataclass(frozen=True)
class Reconstructions:
    """Per patch, in the atlas's order: the DeconvNet and guided-backprop reconstructions of the
    unit's single activation, cropped to the patch's input box and fitted as the patch, and the
    activation's value in the pass that made them (equal to the index's)."""

    deconvnet: tuple[np.ndarray, ...]
    guided: tuple[np.ndarray, ...]
    values: np.ndarray


def layer_record(index: DatasetIndex, layer: str, channel: int) -> LayerIndex:
    """``index``'s record of ``layer``, refusing a layer it has not indexed or a channel it lacks."""
    record = index.layers.get(layer)
    if record is None:
        known = ", ".join(index.layers) or "none"
        raise UserError(f"the dataset index has no layer '{layer}' (it has {known}); index that layer "
                        f"(cnnexplorer index --layers {layer or 'all'})")
    if not 0 <= channel < record.channels:
        raise UserError(f"{layer} has {record.channels} channels; pick a channel from 0 to {record.channels - 1}")
    return record


def unit_field(handle: ModelHandle, record: LayerIndex) -> Field:
    """The field of the layer's units; a vector's units see the whole input."""
    return WHOLE if record.map_size is None else layer_field(handle, record.name)


def unit_atlas(handle: ModelHandle, probe: ProbeSet, index: DatasetIndex, layer: str, channel: int,
               k: int | None = None, size: int = PATCH, read=None) -> UnitAtlas:
    """The atlas of ``channel`` of ``layer`` from the index: its top ``k`` (default: all the index
    kept) patches and histogram. ``read(i)`` gives image ``i`` (default ``probe.image``)."""
    record = layer_record(index, layer, channel)
    field = unit_field(handle, record)
    read = read or probe.image
    extent = handle.preprocessing.size
    patches = []
    for slot in range(record.top_values.shape[1] if k is None else min(k, record.top_values.shape[1])):
        image = int(record.top_images[channel, slot])
        if image < 0:
            break
        y, x = int(record.top_y[channel, slot]), int(record.top_x[channel, slot])
        picture = read(image)
        input_box = field.input_box(y, x, extent)
        box = image_box(input_box, handle.preprocessing, picture.size)
        patches.append(Patch(image, probe.source(image), float(record.top_values[channel, slot]), y, x, box,
                             input_box, fit_patch(picture.convert("RGB").crop(box), size)))
    return UnitAtlas(layer, channel, tuple(patches), record.hist_edges, record.hist_counts[channel],
                     float(record.mean[channel]), float(record.maximum[channel]), float(record.zeros[channel]))


def fit_patch(picture: Image.Image, size: int = PATCH) -> np.ndarray:
    """``picture`` scaled to fit a ``size`` square (aspect kept), centred on paper, as ``size×size×3`` uint8."""
    width, height = picture.size
    scale = size / max(width, height, 1)
    fitted = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
    square = Image.new("RGB", (size, size), PAPER)
    square.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return np.asarray(square)


def single_activation_gradients(handle: ModelHandle, pixels: torch.Tensor, layer: str, channel: int,
                                positions: list[tuple[int, int]], method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image ``i`` of ``pixels`` [N,C,H,W]: the gradient w.r.t. the pixels of the single activation
    ``(channel, *positions[i])`` of ``layer`` (``(0, 0)`` for a vector) under ``method``'s ReLU rule
    (``deconvnet`` or ``guided``), and the activations' values.

    Images do not mix in an eval-mode forward, so one backward of their sum gives every image's own
    gradient. The forward stops at the layer; the model's flags and parameters are left as they were.
    """
    rows = torch.arange(pixels.shape[0], device=handle.device)
    with explaining(handle) as model, relu_rule(RULES[method]):
        x = pixels.to(handle.device).detach().requires_grad_(True)
        output = run_to(model, handle.module, [layer], x)[layer]
        if output.dim() == 4:
            ys = torch.tensor([p[0] for p in positions], device=handle.device)
            xs = torch.tensor([p[1] for p in positions], device=handle.device)
            chosen = output[rows, channel, ys, xs]
        elif output.dim() == 2:
            chosen = output[rows, channel]
        else:
            raise unknown_layout(output)
        (grad,) = torch.autograd.grad(chosen.sum(), x)
    return grad.detach().cpu(), chosen.detach().float().cpu()


def reconstruction_patch(grad: torch.Tensor, input_box: Box, size: int = PATCH) -> np.ndarray:
    """A gradient [C,H,W] as a picture of its box: grey at zero, brighter or darker with its sign
    (Zeiler & Fergus's display), scaled so the strongest ``1 − CONTRAST`` of its non-zero values
    saturate (the largest few alone would leave the rest a flat grey), fitted as the patches."""
    x0, y0, x1, y1 = input_box
    crop = grad[:, y0:y1, x0:x1].float()
    magnitudes = crop.abs()[crop != 0]
    scale = float(torch.quantile(magnitudes, CONTRAST)) if magnitudes.numel() else 0.0
    shown = 0.5 + 0.5 * crop / scale if scale > 0 else torch.full_like(crop, 0.5)
    shown = shown.expand(3, -1, -1) if shown.shape[0] == 1 else shown
    array = (shown.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return fit_patch(Image.fromarray(np.ascontiguousarray(array)), size)


def reconstructions_job(handle: ModelHandle, probe: ProbeSet, atlas: UnitAtlas, read=None) -> Job[Reconstructions]:
    """The DeconvNet and guided-backprop reconstructions of each of ``atlas``'s patches, batched."""
    read = read or probe.image
    made: dict[str, tuple[np.ndarray, ...]] = {}
    values = np.zeros(0, np.float32)
    if atlas.patches:
        pixels = torch.stack([handle.preprocessing.to_tensor(read(p.image)) for p in atlas.patches])
        positions = [(p.y, p.x) for p in atlas.patches]
        size = atlas.patches[0].pixels.shape[0]
        for step, method in enumerate(RULES):
            yield Progress(step, len(RULES), f"{method} reconstructions of {atlas.layer} channel {atlas.channel}")
            grad, chosen = single_activation_gradients(handle, pixels, atlas.layer, atlas.channel, positions, method)
            made[method] = tuple(reconstruction_patch(g, p.input_box, size) for g, p in zip(grad, atlas.patches))
            values = chosen.numpy()
    return Reconstructions(made.get("deconvnet", ()), made.get("guided", ()), values)


@dataclass(frozen=True)
class FeatureVisImages:
    """Per channel, in the order asked: its feature visualisation (fitted to a ``PATCH`` square, ``×3``
    uint8) and the objective's value on it; how it was made (``kind``: channel, neuron or logit; the
    preset, the size it was optimised at and the seed). No images and a None ``size`` when the model
    runs to the layer at no square size."""

    layer: str
    channels: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    values: np.ndarray
    kind: str
    preset: str
    size: int | None
    seed: int


def is_model_output(handle: ModelHandle, layer: str) -> bool:
    """Whether ``layer``'s output is the model's output (its class logits), from one forward of a grey image."""
    (module,) = find_layers(handle.module, [layer])
    seen: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(module, args, output):
        if not seen and threading.get_ident() == owner:
            seen.append(output_tensors(output)[0])

    grey = torch.full((1, *handle.input_size), 0.5, device=handle.device)
    with torch.no_grad(), eval_mode(handle.module), forward_hooks([(module, hook)]):
        output = handle.pixel_model()(grey)
    output = output_tensors(output)[0]
    return bool(seen) and seen[0].shape == output.shape and torch.equal(seen[0], output)


def featurevis_kind(handle: ModelHandle, record: LayerIndex) -> str:
    """The objective that visualises a unit of ``record``'s layer: ``channel`` for a map, ``logit`` for
    the model's output, ``neuron`` (the unit itself) for another vector."""
    if record.map_size is not None:
        return "channel"
    return "logit" if is_model_output(handle, record.name) else "neuron"


def featurevis_job(handle: ModelHandle, record: LayerIndex, channels: list[int], seed: int = 0,
                   size: int = PATCH) -> Job[FeatureVisImages]:
    """The feature visualisations of ``channels`` of ``record``'s layer, optimised in one batch (so the
    same channels and seed give the same pixels) with the ``FEATUREVIS_PRESET`` preset at ``size`` pixels,
    or at the model's input size without the random transforms (which change the size) when the layer
    runs at that size only (see ``units.workable_size``), fitted to ``size``. The optimiser's ``Step``s are
    passed on as ``Progress``."""
    kind = featurevis_kind(handle, record)
    side = workable_size(handle, record.name, size)
    if side is None:
        return FeatureVisImages(record.name, tuple(channels), (), np.full(len(channels), np.nan), kind,
                                FEATUREVIS_PRESET, None, seed)
    settings = preset(FEATUREVIS_PRESET, size=side, transforms=None if side == size else False)
    message = f"feature visualisation of {record.name}"
    result = yield from map_items(render_units(handle, record.name, list(channels), kind, settings, seed,
                                               batch_size=len(channels)),
                                  lambda item: Progress(item.step, item.total, f"{message}: step {item.step} of {item.total}")
                                  if isinstance(item, Step) else item)
    images = as_uint8(result.images)
    images = np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images
    if side != size:
        images = np.stack([fit_patch(Image.fromarray(image), size) for image in images])
    return FeatureVisImages(record.name, tuple(channels), tuple(images), result.values, kind, FEATUREVIS_PRESET,
                            side, seed)


class Atlases:
    """The atlases of one index's units, made when first asked for and remembered (the last
    ``capacity`` units, and the images they read), so a unit clicked again costs nothing.

    Making one traces the model's receptive fields (one probe forward, a few hundred milliseconds
    on a CPU; make it in a worker), so that the first click is as fast as the others.
    """

    def __init__(self, handle: ModelHandle, probe: ProbeSet, index: DatasetIndex, size: int = PATCH,
                 capacity: int = 64):
        self.handle, self.probe, self.index, self.size, self.capacity = handle, probe, index, size, capacity
        self._units: OrderedDict[tuple[str, int], UnitAtlas] = OrderedDict()
        self._reconstructions: OrderedDict[tuple[str, int], Reconstructions] = OrderedDict()
        self._featurevis: OrderedDict[tuple, FeatureVisImages] = OrderedDict()
        self._images: OrderedDict[int, Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        receptive_fields(handle)

    def unit(self, layer: str, channel: int) -> UnitAtlas:
        key = (layer, channel)
        with self._lock:
            if key in self._units:
                self._units.move_to_end(key)
                return self._units[key]
        atlas = unit_atlas(self.handle, self.probe, self.index, layer, channel, size=self.size, read=self.image)
        with self._lock:
            _remember(self._units, key, atlas, self.capacity)
        return atlas

    def reconstructions(self, layer: str, channel: int) -> Job[Reconstructions]:
        key = (layer, channel)
        with self._lock:
            known = self._reconstructions.get(key)
        if known is not None:
            return known
        made = yield from reconstructions_job(self.handle, self.probe, self.unit(layer, channel), read=self.image)
        with self._lock:
            _remember(self._reconstructions, key, made, self.capacity)
        return made

    def featurevis(self, layer: str, channels: list[int], seed: int = 0) -> Job[FeatureVisImages]:
        """The feature visualisations of ``channels`` of ``layer``, made in one batch the first time these
        channels are asked for together with this seed, then remembered."""
        key = (layer, tuple(channels), seed)
        with self._lock:
            known = self._featurevis.get(key)
        if known is not None:
            return known
        record = layer_record(self.index, layer, channels[0] if channels else 0)
        made = yield from featurevis_job(self.handle, record, list(channels), seed, self.size)
        with self._lock:
            _remember(self._featurevis, key, made, self.capacity)
        return made

    def made(self, layer: str, channels: list[int], seed: int = 0) -> bool:
        """Whether the reconstructions of ``channels`` and their feature visualisations (with ``seed``) are
        remembered, so their atlas costs nothing."""
        with self._lock:
            return ((layer, tuple(channels), seed) in self._featurevis
                    and all((layer, channel) in self._reconstructions for channel in channels))

    def image(self, i: int) -> Image.Image:
        """Image ``i`` of the probe set, decoded once while it is among the last few used."""
        with self._lock:
            if i in self._images:
                self._images.move_to_end(i)
                return self._images[i]
        picture = self.probe.image(i)
        picture.load()
        with self._lock:
            _remember(self._images, i, picture, 4 * self.capacity)
        return picture


def _remember(cache: OrderedDict, key, value, capacity: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > capacity:
        cache.popitem(last=False)
