"""Every layer at once: one tall picture with each layer's channels for the current image, 16 per
row, in the order the layers run, so the growth of abstraction and sparsity with depth shows in
one look (the course's Keras recipe, Chollet, Deep Learning with Python §5.4.1).

``scale`` ``sigma2`` is that recipe: each channel's mean ± 2 standard deviations mapped to the
colour map's ends, clipped (a flat channel, such as a dead ReLU map, is drawn at the low end);
``channel`` and ``layer`` are the Activations tab's normalisations. Which layers: the outputs of
activation functions and pooling (``activations``, the default: what Keras' Conv2D with ReLU
shows), of convolutions and pooling (``conv``), or of every leaf module with feature maps
(``all``). The picture stays bounded for big models: every tile has the same size and each
layer shows at most ``max_channels`` channels, with a note saying how many it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np
    import torch

SCALES = ("sigma2", "channel", "layer")
KINDS = ("activations", "conv", "all")
GAP = 2
HEADER = 22
MARGIN = 8


@dataclass(frozen=True)
class LayersOptions:
    """``per_row`` tiles per row of ``tile`` pixels, ``scale`` (one of ``SCALES``), which layers
    (``kinds``, one of ``KINDS``), at most ``max_channels`` per layer, the colour map."""

    per_row: int = 16
    scale: str = "sigma2"
    kinds: str = "activations"
    max_channels: int = 32
    tile: int = 48
    cmap: str = "viridis"

    def __post_init__(self):
        from cnnexplorer.core.checks import check_choice, check_number
        from cnnexplorer.core.colormaps import COLORMAPS

        check_number("per-row", self.per_row, 1, 64, whole=True)
        check_number("max-channels", self.max_channels, 1, 4096, whole=True)
        check_number("tile", self.tile, 8, 256, whole=True)
        check_choice("scale", self.scale, SCALES)
        check_choice("layers", self.kinds, KINDS)
        check_choice("colour map", self.cmap, tuple(COLORMAPS))


@dataclass(frozen=True)
class LayerRow:
    """One layer of the picture: its name (``name#k`` for a later call), its output shape
    (C, H, W), how many channels are shown, and where its tiles start (``top`` pixel)."""

    layer: str
    type: str
    shape: tuple[int, int, int]
    shown: int
    top: int
    zero_fraction: float


def _chosen(module, kinds: str) -> list[str]:
    """Leaf modules of the kinds asked for, by name."""
    from torch import nn

    activations = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.Tanh,
                   nn.Sigmoid, nn.PReLU, nn.Hardtanh, nn.Softplus)
    pools = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d)
    wanted = {"activations": activations + pools, "conv": (nn.Conv2d, *pools), "all": (nn.Module,)}[kinds]
    return [name for name, m in module.named_modules() if name and not any(m.children()) and isinstance(m, wanted)]


def record_layers(handle, pixels: torch.Tensor, kinds: str) -> list[tuple[str, str, torch.Tensor]]:
    """(layer, type, output [1, C, H, W]) of every chosen layer call with feature maps, in the order
    they ran; ``activations`` falls back to convolutions for a model whose activations are functions."""
    import torch

    from cnnexplorer.core.hooks import forward_hooks, record_outputs
    from cnnexplorer.core.model_handle import eval_mode

    root = handle.module
    names = _chosen(root, kinds) or (_chosen(root, "conv") if kinds == "activations" else [])
    modules = dict(root.named_modules())
    order: list[str] = []
    batch = pixels[None] if pixels.ndim == 3 else pixels
    with torch.no_grad(), eval_mode(root), record_outputs(root, names) as records, \
            forward_hooks([(modules[n], lambda m, a, o, n=n: order.append(n)) for n in names]):
        handle.pixel_model()(batch.to(handle.device))
    rows, calls = [], dict.fromkeys(names, 0)
    for name in order:
        k = calls[name]
        calls[name] += 1
        tensors = records[name][k] if k < len(records[name]) else ()
        if tensors and tensors[0].ndim == 4 and tensors[0].shape[-1] * tensors[0].shape[-2] > 1:
            rows.append((name if k == 0 else f"{name}#{k}", type(modules[name]).__name__, tensors[0][:1]))
    return rows


def scaled_channels(output: torch.Tensor, scale: str, count: int) -> np.ndarray:
    """The first ``count`` channels of ``output`` as ``[n, H, W]`` values in [0, 1] (NaN where not finite)."""
    import numpy as np

    from cnnexplorer.core.activations.stats import as_channels, channel_range, layer_range, layer_stats

    values, (_, height, width), _ = as_channels(output)
    stats = layer_stats(values)
    values = values[:count].astype(np.float64)
    if scale == "sigma2":  # the Keras recipe: (x − mean)/std·64 + 128, clipped to 0..255
        mean, std = stats.mean[:count, None], stats.std[:count, None]
        scaled = np.divide((values - mean) * 64 + 128 * std, 255 * std, out=np.zeros_like(values), where=std > 0)
    else:
        if scale == "channel":
            low, high = (r[:count, None] for r in channel_range(stats))
        else:
            low, high = layer_range(stats, bool(np.nanmin(stats.min, initial=0.0) < 0))
        span = high - low
        scaled = np.divide(values - low, span, out=np.zeros_like(values), where=np.asarray(span > 0))
    with np.errstate(invalid="ignore"):
        return np.clip(scaled, 0, 1).reshape(-1, height, width).astype(np.float32)


def _tiles(maps: np.ndarray, tile: int) -> np.ndarray:
    """Every map resized to ``tile × tile`` (nearest when enlarging, area when shrinking)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(maps)[:, None]
    mode = "nearest" if tile >= max(maps.shape[1:]) else "area"
    return F.interpolate(torch.nan_to_num(x, nan=0.0), size=(tile, tile), mode=mode)[:, 0].numpy()


def _header(text: str, width: int) -> np.ndarray:
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import fit_text, pil_font

    strip = Image.new("RGB", (width, HEADER), "white")
    font = pil_font(13)
    ImageDraw.Draw(strip).text((MARGIN, 4), fit_text(text, font, width - 2 * MARGIN), fill="black", font=font)
    return np.asarray(strip)


def layers_picture(inputs: Inputs, options: LayersOptions) -> Job[tuple[np.ndarray, list[LayerRow]]]:
    """The tall picture (H×W×3 uint8) and its rows, for the GUI's page and the export."""
    import numpy as np

    from cnnexplorer.core.colormaps import apply_colormap
    from cnnexplorer.core.errors import UserError

    image, handle = inputs.need_image("layers"), inputs.handle
    yield Progress(0, None, "every layer's activations")
    recorded = record_layers(handle, handle.pixels(image), options.kinds)
    if not recorded:
        raise UserError(f"{handle.spec} has no layer with feature maps of the kind '{options.kinds}'; "
                        "try --layers all")
    width = 2 * MARGIN + options.per_row * (options.tile + GAP) - GAP
    how = {"sigma2": "each channel's mean -/+ 2 sd (the course's Keras recipe)", "channel": "each channel on its own",
           "layer": "one range per layer"}[options.scale]
    parts, rows, top = [_header(f"{handle.spec}: every layer for {image.name}; {how}", width)], [], HEADER
    for i, (layer, kind, output) in enumerate(recorded):
        yield Progress(i, len(recorded), layer)
        channels = output.shape[1]
        shown = min(channels, options.max_channels)
        maps = _tiles(scaled_channels(output, options.scale, shown), options.tile)
        zeros = float((output == 0).float().mean())
        note = f" (first {shown} of {channels} channels)" if shown < channels else ""
        shape = tuple(int(s) for s in output.shape[1:])
        parts.append(_header(f"{layer} ({kind}) {'x'.join(map(str, shape))}{note}, {zeros:.0%} zeros", width))
        top += HEADER
        n_rows = -(-shown // options.per_row)
        block = np.full((n_rows * (options.tile + GAP), width, 3), 255, np.uint8)
        coloured = apply_colormap(maps, options.cmap)
        for c in range(shown):
            r, col = divmod(c, options.per_row)
            y, x = r * (options.tile + GAP), MARGIN + col * (options.tile + GAP)
            block[y:y + options.tile, x:x + options.tile] = coloured[c]
        rows.append(LayerRow(layer, kind, shape, shown, top, zeros))
        parts.append(block)
        top += block.shape[0]
    return np.ascontiguousarray(np.concatenate(parts)), rows


def make_layers(inputs: Inputs, options: LayersOptions) -> Job[Picture]:
    pixels, rows = yield from layers_picture(inputs, options)
    report = {"layers": [{"layer": r.layer, "type": r.type, "shape": list(r.shape), "shown": r.shown,
                          "zero_fraction": r.zero_fraction} for r in rows],
              "scale": options.scale, "per_row": options.per_row}
    return Picture(pixels, settings=settings_of(options), report=report)


def _add_flags(parser) -> None:
    from cnnexplorer.pictures.flags import bounded_int

    parser.add_argument("--per-row", type=bounded_int(1, 64), metavar="N", help="layers: tiles per row (default: 16)")
    parser.add_argument("--scale", choices=SCALES,
                        help="layers: sigma2 (each channel's mean ± 2 sd, the course's Keras recipe; default), "
                             "channel or layer")
    parser.add_argument("--layers", dest="kinds", choices=KINDS,
                        help="layers: activation and pooling outputs (default), conv and pooling, or all")
    parser.add_argument("--max-channels", type=bounded_int(1, 4096), metavar="N",
                        help="layers: channels shown per layer at most (default: 32)")
    parser.add_argument("--tile", type=bounded_int(8, 256), metavar="PX", help="layers: tile size (default: 48)")


def _from_flags(args) -> LayersOptions:
    given = {k: getattr(args, k, None) for k in ("per_row", "scale", "kinds", "max_channels", "tile", "cmap")}
    return LayersOptions(**{k: v for k, v in given.items() if v is not None})


RECIPE = Recipe("layers", LayersOptions, make_layers, _add_flags, _from_flags)
