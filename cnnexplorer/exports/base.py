"""What every ``cnnexplorer export VIEW`` module shares: the picture it returns, its registry
entry, and the option parsing several views need."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnnexplorer.core.errors import UserError


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray
    settings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    layer: str | None = None


@dataclass(frozen=True)
class ExportView:
    name: str
    make: Callable[..., Picture]  # (handle, image | None, args) -> Picture
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def need_layer(args, view: str) -> str:
    if not args.layer:
        raise UserError(f"export {view} needs a layer: pass --layer NAME (`cnnexplorer summary` lists them)")
    return args.layer


def need_image(image, view: str):
    if image is None:
        raise UserError(f"export {view} needs an image: pass --image IMG")
    return image


def class_index(handle, text: str) -> int:
    """A class given as an index or a class name (case-insensitive) → its index."""
    names = [n.lower() for n in handle.class_names]
    if text.strip().lower() in names:
        return names.index(text.strip().lower())
    try:
        index = int(text)
    except ValueError:
        raise UserError(f"unknown class '{text}': give an index from 0 to {handle.num_classes - 1} "
                        f"or a class name such as '{handle.class_names[0]}'") from None
    if not 0 <= index < handle.num_classes:
        raise UserError(f"class {index} is out of range: the model has classes 0 to {handle.num_classes - 1}")
    return index


def pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers LO,HI, got '{text}'") from None
    return low, high



def add_shared_options(parser: argparse.ArgumentParser) -> None:
    """Options several views read; each view documents its own default."""
    from cnnexplorer.core.colormaps import COLORMAPS

    parser.add_argument("--cmap", choices=COLORMAPS,
                        help="colour map (activations default: diverging for signed outputs, else viridis)")
    parser.add_argument("--target", metavar="CLASS", help="target class, as an index or a class name")
    parser.add_argument("--steps", type=int, metavar="N", help="iterations of an optimisation or attack")
