"""The feature-space map of a probe set: each image a point at its first two principal components of a
layer's pooled outputs (``core/dataset/projection.py``), or where t-SNE puts it (``core/dataset/tsne.py``),
coloured by its label, the model's prediction or whether that prediction is right, with a legend, the
axes (a principal component's share of the variance) and a title.

The options hold the data spec and the set's fingerprint, so ``export --from-sidecar`` maps the same data
again (the index pass behind it is read from the cache when one was made before), or refuses data that
have changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.dataset.index_types import DatasetIndex
    from cnnexplorer.core.dataset.probe import ProbeSet

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
"""Group ``g``'s colour is ``PALETTE[g % 10]``, as on the Dataset tab's map."""
PLOT_WIDTH, PLOT_HEIGHT = 560, 420
LEGEND_WIDTH = 220
MAX_LEGEND = 20  # groups named in the legend; the rest are counted in one line
MAX_LISTED = 2000  # the --json report lists every point's coordinates up to this many images
RADIUS = 3
COLOURING = {"label": "the image's label", "prediction": "the model's top-1 prediction",
             "correct": "whether that prediction is right"}


@dataclass(frozen=True)
class MapOptions:
    """``data``: the probe set (a data spec); ``colour_by``: label, prediction or correct; ``fingerprint``:
    the set's when the picture was made (a changed set is refused); ``projection``: pca or tsne."""

    data: str | None = None
    colour_by: str = "label"
    fingerprint: str | None = None
    projection: str = "pca"

    def __post_init__(self):
        from cnnexplorer.core.checks import check_choice
        from cnnexplorer.core.dataset.projection import COLOUR_BY, PROJECTIONS

        check_choice("the map's colouring (--colour-by)", self.colour_by, COLOUR_BY)
        check_choice("the map's projection (--projection)", self.projection, PROJECTIONS)


def make_map(inputs: Inputs, options: MapOptions) -> Job[Picture]:
    from cnnexplorer.core.dataset.projection import project_job
    from cnnexplorer.pictures.confusion import index_for, open_data_job

    layer, handle = inputs.need_layer("map"), inputs.handle
    probe = yield from open_data_job("map", options.data, options.fingerprint)
    if options.colour_by == "correct":
        _need_labels(probe.label_names, probe.spec)
    index = yield from index_for(handle, probe, layer, features=True)
    projection = yield from project_job(_features(index, layer), options.projection)
    yield Progress(1, 1, "drawing the map")
    return map_picture(handle, probe, index, layer, options.colour_by, projection)


def map_picture(handle, probe: ProbeSet, index: DatasetIndex, layer: str, colour_by: str,
                projection=None) -> Picture:
    """The map of ``index``'s pooled features of ``layer`` (``index`` of ``handle`` on ``probe``), its points
    coloured by ``colour_by`` (label, prediction or correct): the CLI's picture, and the GUI's on an index it
    has open. ``projection``: the layer's (``project_job``) when the caller has it already (the GUI's plot, a
    t-SNE), else its PCA, so a large set's projection runs once."""
    import numpy as np

    from cnnexplorer.core.dataset.evaluate import evaluate_index, image_reference
    from cnnexplorer.core.dataset.projection import pca_2d, point_groups

    features = _features(index, layer)
    if colour_by == "correct":
        _need_labels(index.label_names, probe.spec)
    projection = pca_2d(features) if projection is None else projection
    options = MapOptions(probe.spec, colour_by, probe.fingerprint(), projection.method)
    truth = evaluate_index(index).labels if colour_by == "correct" else None
    group, names = point_groups(colour_by, index.labels, index.label_names, index.top5[:, 0],
                                index.class_names or handle.class_names, truth)
    counts = np.bincount(group, minlength=len(names))
    groups = [(g, names[g], int(counts[g])) for g in range(len(names)) if counts[g]]
    title = f"{layer}: {index.count:,} images of {probe.spec}"
    how = (f"first two principal components of its {features.shape[1]:,} pooled features" if projection.method == "pca"
           else f"t-SNE of its {features.shape[1]:,} pooled features (perplexity {projection.perplexity:.3g})")
    subtitle = f"{how}; colour: {COLOURING[colour_by]}"
    pixels = render_map(projection.points, group, groups, _axes(projection), title, subtitle)
    report = {"layer": layer, "data": probe.spec, "count": index.count, "skipped": len(probe.skipped),
              "colour_by": colour_by, "features": int(features.shape[1]), "projection": projection.method,
              "variance": list(projection.variance) if projection.variance is not None else None,
              "groups": [{"name": name, "count": count} for _, name, count in groups]}
    if index.count <= MAX_LISTED:
        report["points"] = projection.points.astype(float).round(6).tolist()
        report["point_groups"] = [names[g] for g in group]
        report["point_images"] = [image_reference(probe.source(i), probe.spec, i) for i in range(index.count)]
    return Picture(pixels, settings_of(options), report, layer=layer)


def _features(index: DatasetIndex, layer: str) -> np.ndarray:
    from cnnexplorer.core.errors import UserError

    if layer not in index.features:
        known = ", ".join(index.features) or "none"
        raise UserError(f"the dataset index has no pooled features of '{layer}' (it has {known}); pick one of those, "
                        f"or index again with {layer} as the last of --layers")
    return index.features[layer]


def _axes(projection) -> tuple[str, str]:
    """The axes' names: a principal component with its share of the variance, or t-SNE's two coordinates."""
    if projection.method == "pca":
        return tuple(f"principal component {k + 1}: {share * 100:.1f} % of the variance"
                     for k, share in enumerate(projection.variance))
    return "t-SNE 1", "t-SNE 2"


def _need_labels(label_names: list[str] | None, spec: str) -> None:
    from cnnexplorer.core.errors import UserError

    if label_names is None:
        raise UserError(f"colouring the map by correctness needs labels, and {spec} has none; colour it by "
                        "prediction (--colour-by prediction), or use a folder with one sub-folder of images per class")


def render_map(points: np.ndarray, group: np.ndarray, groups: list[tuple[int, str, int]],
               axes: tuple[str, str], title: str, subtitle: str) -> np.ndarray:
    """``points`` [N,2] as dots in a framed plot (the first coordinate across, the second up, named by ``axes``),
    each the colour of its ``group`` [N]; ``groups`` (number, name, count) in the legend beside it; ``H×W×3``
    uint8."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, RULE, SMALL, TITLE, fit_text, pil_font

    small, body, big = pil_font(SMALL), pil_font(BODY), pil_font(TITLE)
    left = MARGIN + SMALL + 8 + int(small.getlength("-0.000e+00")) + 6
    top = MARGIN + TITLE + 8 + BODY + 12
    width = left + PLOT_WIDTH + 2 * MARGIN + LEGEND_WIDTH
    height = top + PLOT_HEIGHT + 2 * (SMALL + 6) + MARGIN
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), fit_text(title, big, width - 2 * MARGIN), font=big, fill=INK)
    draw.text((MARGIN, MARGIN + TITLE + 8), fit_text(subtitle, body, width - 2 * MARGIN), font=body, fill=MUTED)
    frame = (left, top, left + PLOT_WIDTH, top + PLOT_HEIGHT)
    draw.rectangle(frame, outline=RULE)
    (x_low, y_low), (x_high, y_high) = _limits(points)
    inner = 2 * RADIUS + 2

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + inner + (x - x_low) / (x_high - x_low) * (PLOT_WIDTH - 2 * inner),
                top + PLOT_HEIGHT - inner - (y - y_low) / (y_high - y_low) * (PLOT_HEIGHT - 2 * inner))

    by_size = sorted(groups, key=lambda entry: -entry[2])  # the larger groups first, so small ones stay visible
    for number, _, _ in by_size:
        colour = PALETTE[number % len(PALETTE)]
        for x, y in points[group == number]:
            cx, cy = at(float(x), float(y))
            draw.ellipse((cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS), fill=colour)
    below = top + PLOT_HEIGHT + 4
    draw.text((left, below), f"{x_low:.3g}", font=small, fill=MUTED)
    draw.text((left + PLOT_WIDTH - small.getlength(f"{x_high:.3g}"), below), f"{x_high:.3g}", font=small, fill=MUTED)
    across = axes[0]
    draw.text((left + (PLOT_WIDTH - body.getlength(across)) / 2, below + SMALL + 4), across, font=body, fill=INK)
    for value, y in ((y_high, top), (y_low, top + PLOT_HEIGHT - SMALL)):
        text = f"{value:.3g}"
        draw.text((left - 4 - small.getlength(text), y), text, font=small, fill=MUTED)
    up = axes[1]
    label = Image.new("RGB", (int(body.getlength(up)) + 2, BODY + 4), PAPER)
    ImageDraw.Draw(label).text((0, 0), up, font=body, fill=INK)
    label = label.rotate(90, expand=True)
    image.paste(label, (MARGIN, top + max(0, (PLOT_HEIGHT - label.height) // 2)))
    _legend(draw, left + PLOT_WIDTH + 2 * MARGIN, top, groups)
    return np.asarray(image, dtype=np.uint8).copy()


def _limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The plot's lower and upper corner: the points' range, widened where it is empty or a single value."""
    import numpy as np

    if not len(points):
        return (-1.0, -1.0), (1.0, 1.0)
    low, high = points.min(axis=0).astype(float), points.max(axis=0).astype(float)
    pad = np.where(high - low > 0, 0.0, np.maximum(np.abs(low), 1.0) * 0.5)
    return tuple(low - pad), tuple(high + pad)


def _legend(draw, left: int, top: int, groups: list[tuple[int, str, int]]) -> None:
    """A swatch, the name and the count of each group (``legend_groups``), the rest counted."""
    from cnnexplorer.core.picture_style import INK, MUTED, SMALL, fit_text, pil_font

    small = pil_font(SMALL)
    shown = legend_groups(groups)
    line = SMALL + 6
    for row, (number, name, count) in enumerate(shown):
        y = top + row * line
        draw.rectangle((left, y + 2, left + SMALL - 4, y + SMALL - 2), fill=PALETTE[number % len(PALETTE)])
        draw.text((left + SMALL + 2, y), fit_text(f"{name} ({count:,})", small, LEGEND_WIDTH - SMALL - 2),
                  font=small, fill=INK)
    if len(groups) > len(shown):
        rest = sum(count for _, _, count in groups) - sum(count for _, _, count in shown)
        draw.text((left, top + len(shown) * line), f"{len(groups) - len(shown)} more groups ({rest:,} images)",
                  font=small, fill=MUTED)


def legend_groups(groups: list[tuple[int, str, int]], limit: int = MAX_LEGEND) -> list[tuple[int, str, int]]:
    """The groups a legend names, of ``groups`` (number, name, count): the ``limit`` largest (all when fewer),
    in their own order (a label's or class's number), which is easier to scan than by size."""
    largest = sorted(groups, key=lambda entry: -entry[2])[:limit]
    return sorted(largest, key=lambda entry: entry[0])


def _add_flags(parser) -> None:
    from cnnexplorer.core.dataset.projection import COLOUR_BY, PROJECTIONS

    parser.add_argument("--colour-by", choices=COLOUR_BY, default="label",
                        help="map: colour the points by the image's label, the model's top-1 prediction, or whether "
                             "that prediction is correct (default: label)")
    parser.add_argument("--projection", choices=PROJECTIONS, default="pca",
                        help="map: place the points by their first two principal components, or by t-SNE (needs "
                             "openTSNE: pip install 'cnnexplorer[tsne]') (default: pca)")


RECIPE = Recipe("map", MapOptions, make_map, _add_flags,
                from_flags=lambda args: MapOptions(data=args.data, colour_by=args.colour_by,
                                                    projection=args.projection))
