"""Activations of any layer: one-pass capture, a memory-bounded cache, statistics and grids.

``capture`` runs the model once and records every requested layer. ``ActivationCache`` keeps
those recordings so that switching layer for the same image does not run the model again.
``activation_grid`` turns one layer's output into a single float image of tiles (one per
channel, no Python loop per channel, laid out by ``core.grids``) plus the statistics the
views show on hover; ``render_activation_picture`` colours it and draws the channel numbers.

A module that runs several times in one forward pass (torchvision ResNet's shared ``relu``)
is recorded once per call: ``name`` (or ``name#0``) is the first call, ``name#1`` the second…
Outputs are kept as ``core.layouts`` reads them: a ViT's tokens and Swin's channels-last
outputs become ``[N,C,H,W]`` maps when captured.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from cnnexplorer.core.colormaps import colormap_table
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.grids import GridLayout, grid_picture
from cnnexplorer.core.hooks import find_layers, record_outputs
from cnnexplorer.core.layouts import layout_of, unknown_layout
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

CLIP_STD = 3.0
"""Per-channel normalisation maps mean ± CLIP_STD standard deviations to [0,1] (see ``channel_range``)."""
NORMS = ("channel", "layer", "fixed")
SORTS = ("index", "mean", "max")
DEFAULT_BUDGET = 512 * 2**20


def split_call(layer: str) -> tuple[str, int]:
    """``"layer1.0.relu#2"`` → ``("layer1.0.relu", 2)``; a plain name is call 0."""
    name, sep, call = layer.rpartition("#")
    if sep and call.isdigit():
        return name, int(call)
    return layer, 0


def _not_run(name: str) -> UserError:
    return UserError(
        f"layer '{name}' produced no output for this input: the forward pass did not use it "
        "(an unused branch?); pick another layer"
    )


@dataclass(frozen=True)
class Capture:
    """What one forward pass recorded: ``{module name: [tensors of call 0, call 1, …]}``."""

    records: dict[str, list[tuple[torch.Tensor, ...]]]

    def calls(self, name: str) -> int:
        return len(self.records.get(name, ()))

    def layers(self) -> list[str]:
        """Every recorded output as a layer string: ``name`` for the first call, ``name#k`` after."""
        return [name if k == 0 else f"{name}#{k}" for name, calls in self.records.items() for k in range(len(calls))]

    def outputs(self, layer: str) -> tuple[torch.Tensor, ...]:
        """All tensors of ``layer`` (``name`` or ``name#k``), for modules with several outputs."""
        name, call = split_call(layer)
        if name not in self.records:
            raise UserError(f"layer '{name}' was not captured; capture it first")
        calls = self.records[name]
        if not calls:
            raise _not_run(name)
        if call >= len(calls):
            raise UserError(f"layer '{name}' ran {len(calls)} time(s) in this forward pass; "
                            f"use {name} or {name}#1 … {name}#{len(calls) - 1}")
        return calls[call]

    def output(self, layer: str, output_index: int = 0) -> torch.Tensor:
        """Tensor ``output_index`` of ``layer`` (0 for modules returning one tensor)."""
        return pick_output(layer, self.outputs(layer), output_index)

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(tensors) for calls in self.records.values() for tensors in calls)


def pick_output(layer: str, tensors: tuple[torch.Tensor, ...], output_index: int) -> torch.Tensor:
    if not tensors:
        raise UserError(f"layer '{layer}' returns no tensor; pick another layer")
    if not 0 <= output_index < len(tensors):
        raise UserError(f"layer '{layer}' has {len(tensors)} output tensor(s); "
                        f"choose an output index from 0 to {len(tensors) - 1}")
    return tensors[output_index]


def _nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(t.element_size() * t.nelement() for t in tensors)


def capture(handle: ModelHandle, pixels: torch.Tensor, layers: list[str] | None = None) -> Capture:
    """Run one forward pass on ``pixels`` ([C,H,W] or [N,C,H,W] in [0,1]) and record ``layers``.

    ``layers`` are dotted names of ``handle.module`` (``name#k`` is accepted and records
    ``name``); None records every submodule. Runs under ``no_grad`` in eval mode, restoring
    the modules' train/eval flags and removing the hooks afterwards, also on error. Each
    output is kept as ``core.layouts`` reads it (``[N,C,H,W]`` for a map).
    """
    root = handle.module
    names = [n for n, _ in root.named_modules() if n] if layers is None else [split_call(l)[0] for l in layers]
    batch = pixels[None] if pixels.ndim == 3 else pixels
    with torch.no_grad(), eval_mode(root), record_outputs(root, names) as records:
        handle.pixel_model()(batch.to(handle.device))
    layouts = {name: layout_of(root, name) for name in records}
    return Capture({name: [tuple(layouts[name].maps(t) for t in tensors) for tensors in calls]
                    for name, calls in records.items()})


def model_key(handle: ModelHandle) -> tuple:
    """Identity of the model *and its current weights*: in-place weight updates (training,
    loading a state dict) bump the tensors' version counters, which invalidates cached results."""
    state = sum(t._version for t in handle.module.parameters()) + sum(t._version for t in handle.module.buffers())
    return (weakref.ref(handle.module), str(handle.device), handle.preprocessing, state)


def pixels_key(pixels: torch.Tensor) -> str:
    """SHA-256 of the pixel tensor, for images that have no file hash (edited or generated)."""
    data = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(str(data.shape).encode() + data.tobytes()).hexdigest()


class ActivationCache:
    """Recorded layer outputs keyed by (model and weights, image, layer call), within a byte budget.

    A miss runs one forward pass recording ``layers`` (default: every module) and keeps them
    all, so switching layer for the same image is a lookup. When the budget is exceeded the
    least recently used entries go first; ``forward_passes`` counts the model runs.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET, layers: list[str] | None = None):
        self.budget_bytes = budget_bytes
        self.layers = layers
        self.forward_passes = 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, ...] | None] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._capture_lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def get_or_capture(self, handle: ModelHandle, pixels: torch.Tensor, layer: str,
                       image_key: str | None = None, output_index: int = 0) -> torch.Tensor:
        """Tensor ``output_index`` of ``layer`` for this image, from the cache or one new pass.

        ``image_key`` identifies the pixels (the image file's SHA-256); None hashes the pixels.
        """
        return pick_output(layer, self.get_outputs(handle, pixels, layer, image_key), output_index)

    def get_outputs(self, handle: ModelHandle, pixels: torch.Tensor, layer: str,
                    image_key: str | None = None) -> tuple[torch.Tensor, ...]:
        """Every tensor ``layer`` returned for this image (see ``get_or_capture``)."""
        tensors = self.get_many(handle, pixels, [layer], image_key)[layer]
        if tensors is None:
            raise _not_run(split_call(layer)[0])
        return tensors

    def get_many(self, handle: ModelHandle, pixels: torch.Tensor, layers: list[str],
                 image_key: str | None = None) -> dict[str, tuple[torch.Tensor, ...] | None]:
        """The tensors of each of ``layers`` (None for a module the forward pass did not use):
        from the cache when all are there, else from ONE new pass, returned whole even when
        the budget cannot keep all of it (so a big model's statistics need one pass)."""
        calls = [split_call(layer) for layer in layers]
        find_layers(handle.module, [name for name, _ in calls])
        base = (model_key(handle), image_key or pixels_key(pixels))
        keys = [(*base, f"{name}#{call}") for name, call in calls]
        hit = self._lookup(keys)
        if hit is None:
            with self._capture_lock:  # a second caller waits for the same pass instead of repeating it
                hit = self._lookup(keys)
                if hit is None:
                    kept = self.layers if self.layers is not None else [n for n, _ in handle.module.named_modules() if n]
                    recorded = capture(handle, pixels, [*kept, *layers])
                    self.forward_passes += 1
                    self._store(base, recorded, keys[-1] if keys else None)
                    return {layer: recorded.outputs(layer) if recorded.calls(name) else None
                            for layer, (name, _) in zip(layers, calls)}
        return dict(zip(layers, hit))

    def _lookup(self, keys: list[tuple]) -> list[tuple[torch.Tensor, ...] | None] | None:
        """The entries of ``keys`` (marked most recently used), or None unless all are cached."""
        with self._lock:
            if not all(key in self._entries for key in keys):
                return None
            for key in keys:
                self._entries.move_to_end(key)
            return [self._entries[key] for key in keys]

    def _store(self, base: tuple, recorded: Capture, last: tuple | None) -> None:
        """Keep every recorded call (``None`` marks a module that did not run), ``last`` newest."""
        entries = {(*base, f"{n}#{k}"): t for n, calls in recorded.records.items() for k, t in enumerate(calls)}
        entries.update({(*base, f"{n}#0"): None for n, calls in recorded.records.items() if not calls})
        if last in entries:
            entries[last] = entries.pop(last)
        with self._lock:
            for key, tensors in entries.items():
                if key in self._entries:
                    self._nbytes -= _nbytes(self._entries.pop(key) or ())
                self._entries[key] = tensors
                self._nbytes += _nbytes(tensors or ())
            while self._nbytes > self.budget_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._nbytes -= _nbytes(dropped or ())


@dataclass(frozen=True)
class LayerStats:
    """Per-channel statistics over finite values (NaN for a channel without any)."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    zero_fraction: np.ndarray

    @property
    def dead(self) -> np.ndarray:
        """Channels that are all ≤ 0, i.e. all zero after a ReLU."""
        return self.max <= 0

    @property
    def dead_count(self) -> int:
        return int(self.dead.sum())

    @property
    def layer_zero_fraction(self) -> float:
        return float(self.zero_fraction.mean()) if self.zero_fraction.size else 0.0

    def channel(self, index: int) -> dict:
        """One channel's numbers, for hover text and JSON (NaN becomes None)."""
        values = {"index": int(index), "min": self.min[index], "max": self.max[index],
                  "mean": self.mean[index], "zero_fraction": self.zero_fraction[index]}
        return {k: (v if k == "index" else _json_float(v)) for k, v in values.items()}


def _json_float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def layer_stats(values: np.ndarray) -> LayerStats:
    """Statistics of a ``[C, M]`` float32 array, one row per channel."""
    zero_fraction = np.count_nonzero(values == 0, axis=1) / max(values.shape[1], 1)
    finite = np.isfinite(values)
    if finite.all():
        mean = values.mean(axis=1, dtype=np.float64)
        square = np.einsum("ij,ij->i", values, values, dtype=np.float64) / values.shape[1]
        return LayerStats(values.min(axis=1).astype(np.float64), values.max(axis=1).astype(np.float64),
                          mean, np.sqrt(np.maximum(square - mean**2, 0.0)), zero_fraction)
    masked = np.where(finite, values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return LayerStats(np.nanmin(masked, axis=1).astype(np.float64), np.nanmax(masked, axis=1).astype(np.float64),
                          np.nanmean(masked, axis=1, dtype=np.float64), np.nanstd(masked, axis=1, dtype=np.float64),
                          zero_fraction)


def sort_order(stats: LayerStats, sort: str = "index", hide_dead: bool = False) -> np.ndarray:
    """Channel indices in display order: by index, or by mean or max activation (descending,
    ties by index, NaN last); ``hide_dead`` leaves out channels that are all ≤ 0."""
    if sort not in SORTS:
        raise UserError(f"unknown sort order '{sort}'; choose one of {', '.join(SORTS)}")
    count = stats.max.size
    if sort == "index":
        order = np.arange(count)
    else:
        key = np.nan_to_num(stats.mean if sort == "mean" else stats.max, nan=-np.inf)
        order = np.argsort(-key, kind="stable")
    return order[~stats.dead[order]] if hide_dead else order


def channel_range(stats: LayerStats, clip_std: float = CLIP_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel window mapped to [0,1]: mean ± ``clip_std`` std, narrowed to the channel's
    own min and max, so a ReLU channel's zeros stay at the dark end of the map."""
    low = np.maximum(stats.min, stats.mean - clip_std * stats.std)
    high = np.minimum(stats.max, stats.mean + clip_std * stats.std)
    return low, high


def layer_range(stats: LayerStats, signed: bool) -> tuple[float, float]:
    """The finite min and max of the whole layer; symmetric around 0 when signed, so that zero
    sits at the centre of the diverging map."""
    finite_min, finite_max = stats.min[np.isfinite(stats.min)], stats.max[np.isfinite(stats.max)]
    low = float(finite_min.min()) if finite_min.size else 0.0
    high = float(finite_max.max()) if finite_max.size else 1.0
    if signed:
        high = max(abs(low), abs(high))
        low = -high
    return low, high


def _scale_rows(rows: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(rows - low) / (high - low)`` per row, clipped to [0,1], in place; a flat row → 0."""
    span = high - low
    scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0).astype(np.float32)
    rows -= low.astype(np.float32)[:, None]
    with np.errstate(invalid="ignore"):
        rows *= scale[:, None]
    return np.clip(rows, 0.0, 1.0, out=rows)


@dataclass(frozen=True)
class ActivationGrid:
    """One layer's output as a single float image, ready for a colour map.

    ``values`` is ``layout.shape`` float32 in [0,1], NaN in gaps, empty slots and at NaN
    activations (±inf are clipped to 0 and 1). ``value_range`` is the range mapped to [0,1]
    (for a colour bar); None with per-channel normalisation, where each tile has its own.
    ``units`` is True for outputs that are not feature maps, shown as one 1×1 tile per unit.
    """

    values: np.ndarray
    layout: GridLayout
    stats: LayerStats
    shape: tuple[int, int, int]
    units: bool
    norm: str
    value_range: tuple[float, float] | None
    cmap: str
    signed: bool
    warning: str = ""

    def channel_at(self, x: float, y: float) -> int | None:
        return self.layout.tile_index_at(x, y)


def _as_channels(output: torch.Tensor, strict: bool = True) -> tuple[np.ndarray, tuple[int, int, int], bool]:
    """First sample of ``output`` as ``[C, H·W]`` float32: ``[N,C,H,W]`` feature maps, or one
    value per unit for vectors (and ``[N,C,1,1]``). Other shapes have no known channel axis
    (``core.layouts`` reads the torchvision transformers'): ``strict`` refuses them, else
    they are flattened to units, which is enough for statistics."""
    if strict and output.ndim not in (1, 2, 4):
        raise unknown_layout(output)
    sample = output.detach()[0] if output.ndim >= 2 else output.detach().reshape(-1)
    values = sample.to("cpu", torch.float32).numpy()
    if values.ndim == 3 and values.shape[1:] != (1, 1):
        channels, height, width = values.shape
        return values.reshape(channels, height * width), (channels, height, width), False
    return values.reshape(-1, 1), (values.size, 1, 1), True


def channel_stats(output: torch.Tensor) -> LayerStats:
    """Per-channel statistics of a captured tensor (first sample), as ``activation_grid`` has them;
    an output without a known channel axis counts each value as a unit."""
    return layer_stats(_as_channels(output, strict=False)[0])


def _nonfinite_warning(values: np.ndarray) -> str:
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    parts = ([f"{nan} NaN value(s) shown in magenta"] if nan else []) + (
        [f"{inf} infinite value(s) clipped to the ends of the colour map"] if inf else [])
    return "this output has " + " and ".join(parts) if parts else ""


def activation_grid(output: torch.Tensor, *, norm: str = "channel", value_range: tuple[float, float] | None = None,
                    sort: str = "index", hide_dead: bool = False, cmap: str | None = None, gap: int = 1,
                    clip_std: float = CLIP_STD, order: np.ndarray | None = None) -> ActivationGrid:
    """Tile every channel of ``output`` (a captured tensor, first sample used) into one image.

    ``norm``: ``channel`` (default; each channel's mean ± ``clip_std`` std, see
    ``channel_range``; falls back to ``layer`` for units), ``layer`` (one range for the layer),
    or ``fixed`` (``value_range``). ``cmap`` None picks ``diverging`` for signed outputs
    (any value < 0) and ``viridis`` otherwise. Per channel, the diverging map's centre is the
    middle of each channel's window; ``layer`` (symmetric when signed) centres it on zero.
    ``order`` (channel indices) replaces ``sort`` and ``hide_dead``, so that a second image's
    grid can put each channel where the first one has it.
    """
    if norm not in NORMS:
        raise UserError(f"unknown normalisation '{norm}'; choose one of {', '.join(NORMS)}")
    if (norm == "fixed") != (value_range is not None):
        raise UserError("a fixed normalisation needs a range LO,HI, and a range needs the fixed normalisation")
    if value_range is not None and not value_range[0] < value_range[1]:
        raise UserError(f"the range {value_range[0]:g},{value_range[1]:g} is empty; give LO < HI")
    values, shape, units = _as_channels(output)
    finite = bool(np.isfinite(values).all())
    stats = layer_stats(values)
    signed = bool(np.nanmin(stats.min, initial=0.0) < 0) if stats.min.size else False
    cmap = cmap or ("diverging" if signed else "viridis")
    colormap_table(cmap)
    order = sort_order(stats, sort, hide_dead) if order is None else np.asarray(order, dtype=np.int64)
    if norm == "channel" and units:
        norm = "layer"
    if norm == "channel":
        low, high = (r[order] for r in channel_range(stats, clip_std))
        value_range = None
    else:
        value_range = value_range or layer_range(stats, signed)
        low, high = np.full(len(order), value_range[0]), np.full(len(order), value_range[1])
    shown = _scale_rows(values[order], low, high)
    _, height, width = shape
    layout = GridLayout.near_square(order, height, width, 0 if units else gap)
    grid = layout.tile(shown.reshape(len(order), height, width), np.nan)
    warning = "" if finite else _nonfinite_warning(values)
    if hide_dead and not len(order):
        warning = f"all {shape[0]} channels are dead (≤ 0); turn off hiding dead channels to see them"
    return ActivationGrid(grid, layout, stats, shape, units, norm, value_range, cmap, signed, warning)


def compare_grids(a: torch.Tensor, b: torch.Tensor, *, difference: bool = False, **kwargs) -> list[ActivationGrid]:
    """Grids of two images' outputs of one layer, each channel in the same place in both.

    ``kwargs`` (``activation_grid``'s) make the first grid; the second takes its order and colour
    map, and a layer-wide range becomes one range for both, so equal colours mean equal values.
    ``difference`` gives one grid of ``a − b`` on a symmetric range with the diverging map.
    """
    if a.shape != b.shape:
        raise UserError(f"the two images give outputs of different shapes ({tuple(a.shape)} and {tuple(b.shape)}); "
                        "compare images that the model sees at the same size")
    first = activation_grid(a, **kwargs)
    order = first.layout.order
    if difference:
        diff = a.float() - b.float()
        finite = diff[torch.isfinite(diff)]
        peak = (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0
        return [activation_grid(diff, norm="fixed", value_range=(-peak, peak), cmap="diverging", order=order)]
    kwargs = {**kwargs, "cmap": first.cmap, "order": order}
    if first.norm == "layer":
        other = layer_range(channel_stats(b), first.signed)
        low, high = min(first.value_range[0], other[0]), max(first.value_range[1], other[1])
        if low < 0:
            low, high = -max(-low, high), max(-low, high)
        kwargs.update(norm="fixed", value_range=(low, high))
        first = activation_grid(a, **kwargs)
    return [first, activation_grid(b, **kwargs)]


def render_activation_picture(grid: ActivationGrid, labels: bool = True) -> np.ndarray:
    """The exported picture of an ``ActivationGrid``: coloured, enlarged, channels numbered."""
    rgb, _ = grid_picture(grid.values, grid.layout, grid.cmap, min_tile=12 if grid.units else 32,
                          labels=labels and not grid.units)
    return rgb
