"""Image augmentation as the course notes' Keras ``ImageDataGenerator`` lists it, on whole batches.

Rotation, width/height shift, shear, zoom and horizontal flip are one random affine map per
image, applied to the batch in one ``grid_sample`` call (fast on two cores, and each image gets
its own parameters). ``fill`` is Keras' ``fill_mode``: ``constant`` (``cval``), ``nearest``,
``reflect`` or ``wrap``; torchvision's affine transforms can only fill with a constant.
Random numbers come from the generator passed in, so a seeded run sees the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.checks import check_choice, check_flag, check_number

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


@dataclass(frozen=True)
class Augmentation:
    """Ranges like Keras': degrees, fractions of the side, shear degrees, zoom factor ``1 ± zoom``."""

    rotation: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    hflip: bool = False
    fill: str = "nearest"
    cval: float = 0.0

    def __post_init__(self):
        for name, value, high, open_high in (("rotation (degrees)", self.rotation, 180, False),
                                             ("width_shift (a fraction of the width)", self.width_shift, 1, False),
                                             ("height_shift (a fraction of the height)", self.height_shift, 1, False),
                                             ("shear (degrees)", self.shear, 90, True),
                                             ("zoom (the scale varies by 1 ± zoom)", self.zoom, 1, True),
                                             ("cval (a pixel value)", self.cval, 1, False)):
            check_number(f"augmentation {name}", value, 0, high, open_high=open_high)
        check_flag("augmentation hflip", self.hflip)
        check_choice("fill mode", self.fill, FILL_MODES)

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.width_shift or self.height_shift or self.shear or self.zoom or self.hflip)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_ALIASES = {"rotate": "rotation", "shift": ("width_shift", "height_shift"), "wshift": "width_shift",
            "hshift": "height_shift", "flip": "hflip", "fill_mode": "fill"}


def parse_augmentation(text: str) -> Augmentation:
    """``"rotation=15,shift=0.1,shear=10,zoom=0.1,hflip,fill=reflect"`` → ``Augmentation``; ``""`` or ``none``: off."""
    text = text.strip()
    if text in ("", "none", "off"):
        return Augmentation()
    values: dict = {}
    names = {f.name for f in fields(Augmentation)}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, has_value, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        targets = _ALIASES.get(key, key)
        for target in (targets if isinstance(targets, tuple) else (targets,)):
            if target not in names:
                raise UserError(f"unknown augmentation '{key}'; use rotation, width_shift, height_shift, shift, "
                                "shear, zoom, hflip, fill, cval (e.g. rotation=15,shift=0.1,hflip,fill=reflect)")
            values[target] = _value(target, raw.strip() if has_value else None)
    return Augmentation(**values)


_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _value(name: str, raw: str | None):
    """The value of ``name=raw``; ``raw`` is None for a bare name, which turns hflip on."""
    if name == "hflip":
        flag = _FLAGS.get("on" if raw is None else raw.lower())
        if flag is None:
            raise UserError(f"augmentation hflip is on or off (hflip, hflip=on, hflip=off), not '{raw}'")
        return flag
    if name == "fill":
        return raw or ""
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise UserError(f"augmentation {name} needs a number (e.g. {name}=0.1), not '{raw or ''}'") from None


def augment_batch(images: torch.Tensor, aug: Augmentation, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` [N,C,H,W] in [0,1], each moved by its own random affine map (a new tensor)."""
    if not aug.active:
        return images
    n, _, height, width = images.shape
    gen = generator

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=gen) * 2 - 1) * bound

    angle = torch.deg2rad(uniform(aug.rotation))
    shear = torch.deg2rad(uniform(aug.shear))
    zoom = 1 + uniform(aug.zoom)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(n)
    tx, ty = uniform(aug.width_shift) * width, uniform(aug.height_shift) * height
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output pixel (x, y) samples the input at R·Sh·Z·Flip·(x, y) - t, in pixels around the centre.
    a = torch.stack([cos, -sin + cos * torch.tan(shear)], 1) * zoom[:, None]
    b = torch.stack([sin, cos + sin * torch.tan(shear)], 1) * zoom[:, None]
    a[:, 0] *= flip
    b[:, 0] *= flip
    half = torch.tensor([width / 2, height / 2])
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, :2] = a * half / half[0]
    theta[:, 1, :2] = b * half / half[1]
    theta[:, 0, 2] = -tx / half[0]
    theta[:, 1, 2] = -ty / half[1]
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return _sample(images, grid, aug)


def _sample(images: torch.Tensor, grid: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    if aug.fill == "wrap":
        grid = torch.remainder(grid + 1, 2) - 1
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if aug.fill == "constant":
        shifted = F.grid_sample(images - aug.cval, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return shifted + aug.cval
    mode = "border" if aug.fill == "nearest" else "reflection"
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=mode, align_corners=False)


def preview_picture(images: torch.Tensor, labels: torch.Tensor, class_names: list[str], columns: int = 8,
                    tile: int = 96) -> np.ndarray:
    """A labelled grid of a batch (H×W×3 uint8), for the preview shown before training starts;
    each class name is written under its image at the readable ``SMALL`` size, cut to the tile's width."""
    from PIL import Image, ImageDraw

    from cnnexplorer.core.picture_style import INK, PAPER, SMALL, fit_text, pil_font

    count = len(images)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    label_h = SMALL + 6
    canvas = Image.new("RGB", (columns * (tile + 4) + 4, rows * (tile + label_h + 4) + 4), PAPER)
    draw = ImageDraw.Draw(canvas)
    font = pil_font(SMALL)
    pixels = images.detach().float().clamp(0, 1)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    for i in range(count):
        array = (pixels[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        picture = Image.fromarray(array).resize((tile, tile), Image.NEAREST)
        x, y = 4 + (i % columns) * (tile + 4), 4 + (i // columns) * (tile + label_h + 4)
        canvas.paste(picture, (x, y))
        name = class_names[int(labels[i])] if int(labels[i]) < len(class_names) else str(int(labels[i]))
        draw.text((x, y + tile + 2), fit_text(name, font, tile), fill=INK, font=font)
    return np.asarray(canvas)
