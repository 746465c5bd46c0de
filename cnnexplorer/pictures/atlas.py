"""The atlas of a layer's units over a dataset (Zeiler & Fergus's Figs 2 and 4; the course's Figs 12.29,
12.30): one row per channel with its feature visualisation (the Feature vis tab's, "quick" preset,
seeded), its top patches, their DeconvNet and guided-backprop reconstructions, the channel's top value
and its histogram over the set.

The options hold the data spec (and the set's fingerprint once made), so a sidecar makes the same
picture again; the index pass behind it is read from the cache when one was made before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.dataset.atlas import Atlases, FeatureVisImages, Patch, Reconstructions, UnitAtlas

DEFAULT_CHANNELS = 9
MAX_CHANNELS = 64
MAX_TOP_K = 64
GAP = 2
HIST_WIDTH, HIST_HEIGHT = 180, 90


@dataclass(frozen=True)
class AtlasOptions:
    """The probe set (a data spec), the channels (None: the first nine), how many top images per
    channel, the set's fingerprint when the picture was made (a changed set is refused), and the feature
    visualisations' seed (None: the inputs')."""

    data: str | None = None
    channels: tuple[int, ...] | None = None
    top_k: int = 9
    fingerprint: str | None = None
    seed: int | None = None

    def __post_init__(self):
        from cnnexplorer.core.checks import check_number

        check_number("the number of top images", self.top_k, 1, MAX_TOP_K, whole=True)
        if self.channels is not None:
            if not 1 <= len(self.channels) <= MAX_CHANNELS:
                from cnnexplorer.core.errors import UserError

                raise UserError(f"an atlas shows 1 to {MAX_CHANNELS} channels, not {len(self.channels)}; "
                                "pass fewer with --channels (0-8, say)")
            for channel in self.channels:
                check_number("a channel", channel, 0, whole=True)


@dataclass(frozen=True)
class Cell:
    """Where one patch or reconstruction lies in the picture (x0, y0, x1, y1), and whose it is."""

    box: tuple[int, int, int, int]
    row: int
    slot: int
    kind: str  # "patch", "deconvnet" or "guided"


@dataclass(frozen=True)
class AtlasPicture:
    """The made atlas: its picture, its units (one per row), their feature visualisations and where each
    patch cell lies, so a click on a cell finds its patch (and the patch its image)."""

    picture: Picture
    units: tuple[UnitAtlas, ...]
    cells: tuple[Cell, ...]
    featurevis: FeatureVisImages

    def hit(self, x: float, y: float) -> Patch | None:
        """The patch whose cell (the patch or one of its reconstructions) is under picture pixel ``(x, y)``."""
        return _patch_at(self.cells, self.units, x, y)


def _patch_at(cells: tuple[Cell, ...], units: tuple[UnitAtlas, ...], x: float, y: float) -> Patch | None:
    for cell in cells:
        x0, y0, x1, y1 = cell.box
        if x0 <= x < x1 and y0 <= y < y1:
            return units[cell.row].patches[cell.slot]
    return None


def run_atlas(inputs: Inputs, options: AtlasOptions, atlases: Atlases | None = None) -> Job[AtlasPicture]:
    """The atlas of ``options.channels`` of ``inputs.layer``. ``atlases`` (the GUI's, for an index it has
    open) saves opening the set and the index pass, and remembers what is made (its index's k counts,
    not ``options.top_k``); else the set is opened and indexed (or the index read from the cache). The
    feature visualisations use ``options.seed``, else ``inputs.seed``."""
    from cnnexplorer.core.dataset.atlas import layer_record
    from cnnexplorer.core.dataset.evaluate import image_reference
    from cnnexplorer.core.errors import UserError

    layer = inputs.need_layer("atlas")
    if atlases is None:
        if not options.data:
            raise UserError("export atlas needs a dataset: pass --data DATASPEC (a folder of images, "
                            "builtin:shapes …)")
        atlases = yield from _indexed(inputs, options)
    probe, index, k = atlases.probe, atlases.index, atlases.index.top_k
    data, fingerprint = probe.spec, probe.fingerprint()
    record = layer_record(index, layer, 0)
    channels = list(options.channels) if options.channels is not None else list(range(min(DEFAULT_CHANNELS,
                                                                                         record.channels)))
    for channel in channels:
        layer_record(index, layer, channel)
    seed = inputs.seed if options.seed is None else options.seed
    shown = min(k, index.count)  # a set smaller than k fills fewer columns
    title = f"{layer}: top {shown} of {len(probe):,} images of {data}"
    units = [atlases.unit(layer, channel) for channel in channels]  # the patches: milliseconds
    if not atlases.made(layer, channels, seed):
        yield _draft(units, shown, title)
    rows = []
    for step, (channel, unit) in enumerate(zip(channels, units)):
        yield Progress(step, len(channels), f"atlas of {layer} channel {channel}")
        rows.append((unit, (yield from atlases.reconstructions(layer, channel))))
    vis = yield from atlases.featurevis(layer, channels, seed)
    pixels, cells = render_atlas(rows, shown, title, vis.images)
    made = AtlasOptions(data, tuple(channels), k, fingerprint, seed)
    def top(patch) -> dict:
        return {"image": image_reference(probe.source(patch.image), probe.spec, patch.image), "value": patch.value,
                "box": list(patch.box)}

    units = [{"index": unit.channel, "featurevis_value": None if math.isnan(value) else float(value),
              "top": [top(p) for p in unit.patches]} for (unit, _), value in zip(rows, vis.values)]
    report = {"layer": layer, "data": data, "count": len(probe), "skipped": len(probe.skipped),
              "featurevis": {"objective": vis.kind, "preset": vis.preset, "size": vis.size, "seed": seed}, "units": units}
    picture = Picture(pixels, settings_of(made), report, layer=layer)
    return AtlasPicture(picture, tuple(unit for unit, _ in rows), tuple(cells), vis)


@dataclass(frozen=True)
class AtlasDraft:
    """The atlas's patches and histograms, drawn (as ``pixels``, with their ``cells``) while its reconstructions and
    feature visualisations are still being made, so a newly clicked unit shows at once."""

    pixels: np.ndarray
    cells: tuple[Cell, ...]
    units: tuple[UnitAtlas, ...]

    def hit(self, x: float, y: float) -> Patch | None:
        return _patch_at(self.cells, self.units, x, y)


def _draft(units: list[UnitAtlas], shown: int, title: str) -> AtlasDraft:
    """``units``' atlas with blank tiles where their reconstructions and feature visualisations will be."""
    import numpy as np

    from cnnexplorer.core.dataset.atlas import PATCH, Reconstructions

    def blank(unit: UnitAtlas) -> tuple[np.ndarray, ...]:
        return tuple(np.full_like(p.pixels, 235) for p in unit.patches)

    rows = [(unit, Reconstructions(blank(unit), blank(unit), np.zeros(0, np.float32))) for unit in units]
    pixels, cells = render_atlas(rows, shown, title, tuple(np.full((PATCH, PATCH, 3), 235, np.uint8) for _ in units))
    return AtlasDraft(pixels, tuple(cells), tuple(units))


def _indexed(inputs: Inputs, options: AtlasOptions) -> Job[Atlases]:
    """The atlases of ``options.data`` indexed at the layer, refusing a set changed since the sidecar."""
    from cnnexplorer.core.dataset.atlas import Atlases
    from cnnexplorer.pictures.confusion import index_for, open_data_job

    yield Progress(0, None, f"opening {options.data}")
    probe = yield from open_data_job("atlas", options.data, options.fingerprint)
    index = yield from index_for(inputs.handle, probe, inputs.layer, top_k=options.top_k)
    return Atlases(inputs.handle, probe, index)


def make_atlas(inputs: Inputs, options: AtlasOptions) -> Job[Picture]:
    return (yield from run_atlas(inputs, options)).picture


def render_atlas(rows: list[tuple[UnitAtlas, Reconstructions]], k: int, title: str,
                 featurevis: tuple[np.ndarray, ...]) -> tuple[np.ndarray, list[Cell]]:
    """One row per unit: its label, its feature visualisation (``featurevis[row]``; no column when empty),
    then three blocks of k cells (patches, DeconvNet, guided backprop), then its histogram; a title line
    and the columns' headings above. Returns the pixels and the patch cells."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, SMALL, TITLE, fit_text, pil_font

    cell = rows[0][0].patches[0].pixels.shape[0] + GAP if rows and rows[0][0].patches else 66
    columns = math.ceil(math.sqrt(k))
    block = columns * cell
    block_height = math.ceil(k / columns) * cell
    label = 110
    vis = max((image.shape[1] for image in featurevis), default=0)
    row_height = max(block_height, HIST_HEIGHT + 2 * SMALL, vis) + MARGIN
    left_vis = MARGIN + label
    left_blocks = left_vis + (vis + MARGIN if vis else 0)
    width = left_blocks + 3 * (block + MARGIN) + HIST_WIDTH + MARGIN
    top = MARGIN + TITLE + 8 + BODY + 6
    canvas = Image.new("RGB", (width, top + row_height * len(rows) + MARGIN), PAPER)
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), fit_text(title, pil_font(TITLE), width - 2 * MARGIN), fill=INK, font=pil_font(TITLE))
    if featurevis:
        draw.text((left_vis, MARGIN + TITLE + 8), fit_text("feature vis", pil_font(BODY), vis + MARGIN), fill=MUTED,
                  font=pil_font(BODY))
    headings = ("patches (receptive field)", "DeconvNet", "guided backprop", "histogram over the set")
    for i, heading in enumerate(headings):
        x = left_blocks + i * (block + MARGIN)
        room = HIST_WIDTH if i == 3 else block
        draw.text((x, MARGIN + TITLE + 8), fit_text(heading, pil_font(BODY), room), fill=MUTED, font=pil_font(BODY))
    cells: list[Cell] = []
    for r, (unit, made) in enumerate(rows):
        y = top + r * row_height
        draw.text((MARGIN, y), f"ch {unit.channel}", fill=INK, font=pil_font(BODY))
        best = f"top {unit.patches[0].value:.3g}" if unit.patches else "no images"
        draw.text((MARGIN, y + BODY + 4), best, fill=MUTED, font=pil_font(SMALL))
        if featurevis:
            canvas.paste(Image.fromarray(featurevis[r]), (left_vis, y))
        blocks = {"patch": [p.pixels for p in unit.patches], "deconvnet": made.deconvnet, "guided": made.guided}
        for b, (kind, images) in enumerate(blocks.items()):
            for i, pixels in enumerate(images):
                x, y0 = left_blocks + b * (block + MARGIN) + (i % columns) * cell, y + (i // columns) * cell
                canvas.paste(Image.fromarray(pixels), (x, y0))
                cells.append(Cell((x, y0, x + pixels.shape[1], y0 + pixels.shape[0]), r, i, kind))
        _histogram(draw, left_blocks + 3 * (block + MARGIN), y, unit)
    return np.asarray(canvas), cells


def _histogram(draw, left: int, top: int, unit: UnitAtlas) -> None:
    """The channel's histogram as bars (square-root heights, so rare values show), its range below."""
    from cnnexplorer.core.picture_style import INK, MUTED, RULE, SMALL, pil_font

    counts, edges = unit.hist_counts, unit.hist_edges
    bottom = top + HIST_HEIGHT
    draw.line((left, bottom, left + HIST_WIDTH, bottom), fill=RULE)
    peak = math.sqrt(max(int(counts.max()), 1)) if len(counts) else 1.0
    bar = HIST_WIDTH / max(len(counts), 1)
    for i, count in enumerate(counts):
        height = round((HIST_HEIGHT - 2) * math.sqrt(int(count)) / peak)
        if height:
            x0, x1 = left + round(i * bar), left + round((i + 1) * bar) - 1
            draw.rectangle((x0, bottom - height, x1, bottom), fill=MUTED)
    low, high = f"{edges[0]:.3g}", f"{edges[-1]:.3g}"
    font = pil_font(SMALL)
    draw.text((left, bottom + 2), low, fill=INK, font=font)
    draw.text((left + HIST_WIDTH - font.getlength(high), bottom + 2), high, fill=INK, font=font)


def _add_flags(parser) -> None:
    from cnnexplorer.pictures.flags import bounded_int

    parser.add_argument("--top-k", type=bounded_int(1, MAX_TOP_K), metavar="K",
                        help="atlas: top images per channel (default: 9); the channels come from --channels "
                             "(default: the first 9)")


def _from_flags(args) -> AtlasOptions:
    return AtlasOptions(data=args.data, channels=None if args.channels is None else tuple(args.channels),
                        top_k=args.top_k or 9)


RECIPE = Recipe("atlas", AtlasOptions, make_atlas, _add_flags, _from_flags)
