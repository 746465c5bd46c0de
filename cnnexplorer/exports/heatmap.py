"""``cnnexplorer export heatmap``: a class heatmap over its image, made by the core renderer."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnexplorer.exports.base import ExportView, Picture, class_index, need_image


def image_point(preprocessing, size: tuple[int, int], x: int, y: int) -> list[float]:
    """Model-input pixel ``(x, y)``'s centre in the original image's pixels (undoing the resize
    and the centre crop of ``preprocessing``; ``size`` is the original's width, height)."""
    out_h, out_w = preprocessing.size
    left, top, right, bottom = (0, 0, *size) if preprocessing.resize is None else preprocessing.crop_box(size)
    return [left + (x + 0.5) * (right - left) / out_w - 0.5, top + (y + 0.5) * (bottom - top) / out_h - 0.5]


def map_path(path: str) -> Path:
    """``--save-map``'s file, refused early unless it is a NumPy ``.npy`` name."""
    from cnnexplorer.core.errors import UserError

    if Path(path).suffix != ".npy":
        raise UserError(f"--save-map writes a NumPy file: give a name ending in .npy, not '{Path(path).name}'")
    return Path(path)


def _heatmap(handle, image, args) -> Picture:
    from cnnexplorer.core.attribution import compute_heatmap, default_cmap, render_heatmap
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.outputs import atomic_write_bytes
    from cnnexplorer.core.render import npy_bytes

    need_image(image, "heatmap")
    if not 0 <= args.alpha <= 1:
        raise UserError(f"--alpha {args.alpha}: the overlay's opacity goes from 0 (image only) to 1 (map only)")
    pixels = handle.preprocessing.to_tensor(image.image)
    target = class_index(handle, args.target) if args.target is not None else None
    heatmap = compute_heatmap(handle, pixels, args.method, target, args.layer, negative=args.why_not)
    cmap = args.cmap or default_cmap(heatmap)
    if args.save_map:
        atomic_write_bytes(map_path(args.save_map), npy_bytes(heatmap.map))
    x, y = heatmap.peak()
    return Picture(
        render_heatmap(pixels, heatmap, args.alpha, cmap),
        settings={"method": args.method, "target": heatmap.target, "why_not": args.why_not, "alpha": args.alpha,
                  "cmap": cmap},
        report={"method": args.method, "target": {"index": heatmap.target, "label": handle.label(heatmap.target)},
                "score": heatmap.score, "peak": [x, y], "peak_image": image_point(handle.preprocessing,
                                                                                 image.image.size, x, y),
                "layer": heatmap.layer, "why_not": args.why_not,
                "map": str(args.save_map) if args.save_map else None},
        layer=heatmap.layer,
    )


def _add_heatmap_options(parser: argparse.ArgumentParser) -> None:
    from cnnexplorer.core.attribution import METHODS

    parser.add_argument("--method", choices=METHODS, default="gradcam", help="heatmap: method (default gradcam)")
    parser.add_argument("--why-not", action="store_true", help="heatmap: show the evidence against --target")
    parser.add_argument("--alpha", type=float, default=0.7, metavar="A",
                        help="heatmap: opacity of the overlay, 0 to 1 (default 0.7)")
    parser.add_argument("--save-map", metavar="MAP.npy", help="heatmap: also save the raw map (model-input pixels)")


VIEWS = (ExportView("heatmap", _heatmap, _add_heatmap_options),)
