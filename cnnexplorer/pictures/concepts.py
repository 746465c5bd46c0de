"""Which concepts (channels of a layer) a prediction rests on: concept relevance propagation.

Tiles of the image with each concept's conditional heatmap (its LRP relevance, every other
channel of the layer masked), most relevant first, labelled with the channel and its share of
the layer's relevance, with a title (the layer, the class, the relevance at the layer and at the
input beside the logit) and colour bar below; ``export concepts`` reports the ranking as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    from cnnexplorer.core.attribution.concepts import Concepts
    from cnnexplorer.pictures.heatmap_panels import Panels

DEFAULT_TOP = 8


@dataclass(frozen=True)
class ConceptOptions:
    """The target class (None: the top class), how many concepts, the LRP composite, "why not",
    and the tiles' overlay opacity, clipping and colour map (None: the signed default)."""

    target: int | str | None = None
    top: int = DEFAULT_TOP
    composite: str = "epsilon-plus-flat"
    why_not: bool = False
    alpha: float = 0.7
    clip: float = 1.0
    cmap: str | None = None
    overlay: bool = True


def concepts_panels(inputs: Inputs, options: ConceptOptions) -> Job[tuple[Concepts, Panels]]:
    """The concepts of the image at ``inputs.layer`` and their tiles' maps and labels."""
    import numpy as np

    from cnnexplorer.core.attribution.concepts import concepts_job
    from cnnexplorer.pictures.heatmap import HeatmapOptions, model_box, target_class
    from cnnexplorer.pictures.heatmap_panels import Panels

    handle, layer = inputs.handle, inputs.need_layer("concepts")
    image = inputs.need_image("concepts")
    pixels = handle.pixels(image)
    target = target_class(handle, HeatmapOptions(target=options.target))
    found = yield from concepts_job(handle, pixels, layer, target, options.top, options.composite, options.why_not)
    labels = tuple(f"channel {c.channel}: {100 * c.share:.1f} % ({c.relevance:.3g})" for c in found.concepts)
    label = handle.label(found.heatmap.target) if found.heatmap.target is not None else "custom score"
    caption = (f"concepts at {layer} for '{label}': relevance {found.total:.3g} at the layer, "
               f"{found.heatmap.info['relevance_sum']:.3g} at the input, logit {found.heatmap.info['logit']:.3g}")
    panels = Panels(pixels, tuple((str(c.channel), c.heatmap) for c in found.concepts), labels, caption,
                    np.asarray(image.image.convert("RGB")), model_box(handle.preprocessing, image.image.size))
    return found, panels


def make_concepts(inputs: Inputs, options: ConceptOptions) -> Job[Picture]:
    from cnnexplorer.core.attribution import default_cmap
    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.colour_bar import Scale, with_colour_bar
    from cnnexplorer.pictures.heatmap import HeatmapOptions
    from cnnexplorer.pictures.heatmap_panels import draw_panels

    check_number("--alpha", options.alpha, 0, 1, why="the overlay's opacity goes from 0, the image only, to 1, the map only")
    check_number("--clip", options.clip, 0, 100, open_high=True,
                 why="the percentage of the largest values that saturate the colours (1 or 2 is usual)")
    found, panels = yield from concepts_panels(inputs, options)
    drawn = draw_panels(panels, HeatmapOptions(alpha=options.alpha, cmap=options.cmap, clip=options.clip,
                                               overlay=options.overlay))
    cmap = options.cmap or default_cmap(found.heatmap)
    scale = Scale(cmap, None, None, f"relevance, each concept scaled on its own (top {options.clip:g} % saturate)",
                  ("against", "for"))
    target = found.heatmap.target
    return Picture(with_colour_bar(drawn.pixels, panels.caption.replace("×", "x"), scale), settings=settings_of(options),
                   layer=found.layer,
                   report={"layer": found.layer, "composite": found.composite,
                           "target": {"index": target, "label": None if target is None else inputs.handle.label(target)},
                           "relevance_at_layer": found.total, "relevance_sum": found.heatmap.info["relevance_sum"],
                           "logit": found.heatmap.info["logit"], "concepts": found.to_json()})


def _from_flags(args) -> ConceptOptions:
    return ConceptOptions(args.target, DEFAULT_TOP if args.top is None else args.top, args.composite, args.why_not,
                          args.alpha, args.clip, args.cmap, not args.map_only)


RECIPE = Recipe("concepts", ConceptOptions, make_concepts, from_flags=_from_flags)
"""Its flags are shared with the other pictures: ``--top`` (predictions), ``--composite``, ``--why-not``,
``--alpha``, ``--clip`` and ``--map-only`` (heatmap)."""
