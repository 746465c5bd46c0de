"""An image's nearest neighbours in a dataset (the course's Fig 12.26): the query, then a row of the k
nearest images by L2 distance in a layer's feature space and a row of the k nearest in pixel space,
each with its distance and label, and the leave-one-out k-NN accuracy of both spaces in the caption.
The made picture (``NeighboursPicture``) knows where each neighbour's tile lies, so a click on one in
the app opens that image.

The options hold the data spec (and the set's fingerprint once made), so a sidecar makes the same
picture again; the index pass behind it (with the layer among its feature layers) is read from the
cache when one was made before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    import numpy as np

    from cnnexplorer.core.dataset.neighbours import Neighbour, Neighbours
    from cnnexplorer.core.dataset.probe import ProbeSet

TILE = 96
GAP = 8
DEFAULT_K = 8


@dataclass(frozen=True)
class NeighboursOptions:
    """The probe set (a data spec), how many neighbours per row, and the set's fingerprint when the picture
    was made (a changed set is refused)."""

    data: str | None = None
    k: int = DEFAULT_K
    fingerprint: str | None = None


@dataclass(frozen=True)
class NeighboursPicture:
    """The made picture and where each neighbour's tile lies in it: ``(x0, y0, x1, y1)`` and its image number."""

    picture: Picture
    tiles: tuple[tuple[tuple[int, int, int, int], int], ...]

    def hit(self, x: float, y: float) -> int | None:
        """The image number of the neighbour whose tile is under picture pixel ``(x, y)``."""
        for (x0, y0, x1, y1), image in self.tiles:
            if x0 <= x < x1 and y0 <= y < y1:
                return image
        return None


def make_neighbours(inputs: Inputs, options: NeighboursOptions) -> Job[Picture]:
    from cnnexplorer.core.dataset.neighbours import check_k
    from cnnexplorer.pictures.confusion import index_for, open_data_job

    image, layer, handle = inputs.need_image("neighbours"), inputs.need_layer("neighbours"), inputs.handle
    check_k(options.k)
    probe = yield from open_data_job("neighbours", options.data, options.fingerprint)
    index = yield from index_for(handle, probe, layer, features=True)
    return (yield from neighbours_picture(handle, probe, index, image, layer, options.k)).picture


def neighbours_picture(handle, probe: ProbeSet, index, image, layer: str, k: int) -> Job[NeighboursPicture]:
    """The neighbours of ``image`` (a ``LoadedImage``) among ``probe``'s images, from its ``index`` (which holds
    ``layer``'s features): the CLI's picture, and the GUI's on an index it has open."""
    from cnnexplorer.core.dataset.members import number_in
    from cnnexplorer.core.dataset.neighbours import neighbours_job

    found = yield from neighbours_job(handle, index, handle.pixels(image), layer, k, number_in(probe, image))
    yield Progress(1, 1, "drawing the neighbours")
    among = f"the other {len(probe) - 1:,}" if found.query is not None else f"{len(probe):,}"
    title = f"Nearest neighbours of {image.name} among {among} images of {probe.spec}"
    pixels, tiles = render_neighbours(found, model_tile(handle, image.image),
                                      lambda i: model_tile(handle, probe.image(i)), probe.label_names, title,
                                      int(index.features[layer].shape[1]))
    options = NeighboursOptions(probe.spec, k, probe.fingerprint())
    return NeighboursPicture(Picture(pixels, settings_of(options), report(found, probe), layer=layer), tiles)


def report(found: Neighbours, probe: ProbeSet) -> dict:
    """The ``--json`` report: each neighbour's image (the file's path for folder data, else its number),
    distance and label name; ``query_in_set`` names the query's own image when it is one of the set's (left out
    of its neighbours), else None."""
    from cnnexplorer.core.dataset.evaluate import image_reference

    def entry(n: Neighbour) -> dict:
        label = probe.label_names[n.label] if probe.label_names and n.label >= 0 else None
        return {"image": image_reference(probe.source(n.image), probe.spec, n.image), "distance": n.distance,
                "label": label}

    query = None if found.query is None else image_reference(probe.source(found.query), probe.spec, found.query)
    return {"layer": found.layer, "k": found.k, "knn_k": found.knn_k, "query_in_set": query,
            "feature": [entry(n) for n in found.feature],
            "pixel": [entry(n) for n in found.pixel], "feature_knn_acc": found.feature_knn_acc,
            "pixel_knn_acc": found.pixel_knn_acc}


def model_tile(handle, image) -> np.ndarray:
    """What the model sees of a PIL image, ``TILE`` pixels on its longer side, RGB uint8."""
    import numpy as np
    from PIL import Image

    pixels = handle.preprocessing.to_tensor(image)
    array = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
    height, width = array.shape[:2]
    scale = TILE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.BILINEAR))


def render_neighbours(found: Neighbours, query: np.ndarray, tile, label_names: list[str] | None, title: str,
                      features: int) -> tuple[np.ndarray, tuple]:
    """The picture: ``query`` (a tile) at the left, the two rows of neighbours (``tile(i)`` draws image
    ``i``) with distance and label under each, the k-NN accuracies below; ``H×W×3`` uint8, and each
    neighbour's tile as ``((x0, y0, x1, y1), image)``."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, SMALL, TITLE, fit_text, pil_font

    small, body, big = pil_font(SMALL), pil_font(BODY), pil_font(TITLE)
    rows = [(f"feature space: {found.layer} (L2 over its {features:,} pooled features)", found.feature),
            ("pixel space: 32x32 thumbnails of the model's input (L2 over 3,072 values in [0, 1])", found.pixel)]
    caption = knn_caption(found)
    left = MARGIN + TILE + 3 * GAP
    under = 2 * (SMALL + 4)
    row_height = BODY + 6 + TILE + under + GAP
    top = MARGIN + TITLE + 12
    width = max(left + max(found.k, 1) * (TILE + GAP) + MARGIN,
                2 * MARGIN + int(max(big.getlength(title), body.getlength(caption),
                                     *(left - MARGIN + body.getlength(text) for text, _ in rows))))
    height = top + 2 * row_height + BODY + MARGIN
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, font=big, fill=INK)
    image.paste(Image.fromarray(query), (MARGIN, top + BODY + 6))
    draw.text((MARGIN, top + BODY + 6 + query.shape[0] + 4), "query", font=small, fill=INK)
    tiles = []
    for r, (heading, neighbours) in enumerate(rows):
        y = top + r * row_height
        draw.text((left, y), heading, font=body, fill=INK)
        for c, n in enumerate(neighbours):
            x = left + c * (TILE + GAP)
            picture = tile(n.image)
            image.paste(Image.fromarray(picture), (x, y + BODY + 6))
            tiles.append(((x, y + BODY + 6, x + picture.shape[1], y + BODY + 6 + picture.shape[0]), n.image))
            label = label_names[n.label] if label_names and n.label >= 0 else "unlabelled"
            below = y + BODY + 6 + TILE + 2
            draw.text((x, below), fit_text(f"d {n.distance:.3g}", small, TILE), font=small, fill=MUTED)
            draw.text((x, below + SMALL + 4), fit_text(label, small, TILE), font=small, fill=INK)
    draw.text((MARGIN, top + 2 * row_height), caption, font=body, fill=INK)
    return np.asarray(image, dtype=np.uint8).copy(), tuple(tiles)


def knn_caption(found: Neighbours) -> str:
    if found.feature_knn_acc is None:
        return "no k-NN accuracy: the set has fewer than two labelled images"
    return (f"leave-one-out {found.knn_k}-NN accuracy over the set: feature space {found.feature_knn_acc * 100:.1f} %, "
            f"pixel space {found.pixel_knn_acc * 100:.1f} %")


def _add_flags(parser) -> None:
    from cnnexplorer.pictures.flags import bounded_int

    parser.add_argument("--k", type=bounded_int(1, 1000), default=DEFAULT_K, metavar="K",
                        help=f"neighbours: images per row, and the k of the k-NN accuracy (default {DEFAULT_K})")


RECIPE = Recipe("neighbours", NeighboursOptions, make_neighbours, _add_flags,
                from_flags=lambda args: NeighboursOptions(data=args.data, k=args.k))
