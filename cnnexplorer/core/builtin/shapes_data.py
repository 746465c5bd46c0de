"""The *shapes* dataset: one coloured shape on a cluttered background, rendered in torch.

Every image holds exactly one object (a circle, square, triangle, star, cross or ring) of
random colour, size, position and rotation, anti-aliased from a signed distance function,
over a textured background (colour gradient, smooth noise, stripes, thin line segments and
pixel noise). The clutter is drawn independently of the label and contains no class shape,
so the only way to tell the classes apart is to look at the object; ``masks`` says where it is.

All scene parameters are drawn from the seed before anything is rendered and are measured in
fractions of the image side, so ``size=256`` renders the same scenes as ``size=64``, sharper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from cnnexplorer.core.errors import UserError

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

VALIDATION_SEED = 2**62 + 20250101
"""Seed of the fixed held-out set; ``training_batches`` can never reach it."""

_MAX_TRAINING_SEED = 2**40
_STEPS_PER_SEED = 2**20
_MAX_LINES = 6
_CHUNK = 64


@dataclass(frozen=True)
class ShapesBatch:
    """``images`` [N,3,S,S] float in [0,1]; ``labels`` [N] long; ``masks`` [N,S,S] bool (object pixels)."""

    images: Tensor
    labels: Tensor
    masks: Tensor


def generate_shapes(n: int, seed: int, size: int = 64) -> ShapesBatch:
    """``n`` images of ``size``×``size`` pixels, the same for the same seed; class counts differ by at most one."""
    gen = torch.Generator().manual_seed(seed)
    scene = _draw_scene(n, gen)
    images, masks = [], []
    for start in range(0, max(n, 1), _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in scene.items()}
        image, mask = _render(part, size, gen)
        images.append(image)
        masks.append(mask)
    return ShapesBatch(images=torch.cat(images), labels=scene["label"], masks=torch.cat(masks))


def validation_set(n: int = 2000) -> ShapesBatch:
    """The fixed held-out set the shipped weights are judged on (64×64)."""
    return generate_shapes(n, VALIDATION_SEED)


def training_batches(batch_size: int, seed: int, size: int = 64, start: int = 0) -> Iterator[ShapesBatch]:
    """Endless fresh batches; step ``k`` is ``generate_shapes(batch_size, seed * 2**20 + k)``."""
    if not 0 <= seed < _MAX_TRAINING_SEED:
        raise UserError(f"training seed {seed} is out of range: use a seed from 0 to {_MAX_TRAINING_SEED - 1}")
    step = start
    while True:
        yield generate_shapes(batch_size, seed * _STEPS_PER_SEED + step % _STEPS_PER_SEED, size)
        step += 1


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _draw_scene(n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Every random choice of ``n`` scenes, in units of the image side (resolution-free)."""
    k = len(SHAPE_CLASSES)
    label = (torch.arange(n) % k)[torch.randperm(n, generator=gen)]
    radius = _uniform(gen, (n,), 0.15, 0.28)
    margin = 1.15 * radius + 0.02
    centre = margin[:, None] + (1 - 2 * margin[:, None]) * torch.rand(n, 2, generator=gen)
    angle = _uniform(gen, (n,), 0.0, 2 * math.pi)
    base = _uniform(gen, (n, 3), 0.1, 0.9)
    tint = _uniform(gen, (n, 3), -0.15, 0.15)
    grad_angle = _uniform(gen, (n,), 0.0, 2 * math.pi)
    noise = _uniform(gen, (n, 3, 6, 6), -1.0, 1.0) * _uniform(gen, (n, 1, 1, 1), 0.0, 0.12)
    stripes = torch.stack(
        [
            _uniform(gen, (n,), 3.0, 9.0),  # cycles per image side
            _uniform(gen, (n,), 0.0, math.pi),  # direction
            _uniform(gen, (n,), 0.0, 2 * math.pi),  # phase
            _uniform(gen, (n,), -0.1, 0.1) * (torch.rand(n, generator=gen) < 0.5),  # amplitude
        ],
        dim=1,
    )
    line_count = torch.randint(0, _MAX_LINES + 1, (n,), generator=gen)
    lines = torch.cat(
        [
            torch.rand(n, _MAX_LINES, 4, generator=gen),  # endpoints x0,y0,x1,y1
            _uniform(gen, (n, _MAX_LINES, 1), 0.01, 0.03),  # width
            torch.rand(n, _MAX_LINES, 3, generator=gen),  # colour
            (torch.arange(_MAX_LINES)[None, :, None] < line_count[:, None, None]).float(),
        ],
        dim=2,
    )
    colour = _contrasting_colour(base, gen)
    shade = torch.cat([_uniform(gen, (n, 1), -0.12, 0.12), _uniform(gen, (n, 1), 0.0, 2 * math.pi)], 1)
    pixel_noise = _uniform(gen, (n,), 0.0, 0.04)
    return dict(
        label=label, radius=radius, centre=centre, angle=angle, base=base, tint=tint, grad_angle=grad_angle,
        noise=noise, stripes=stripes, lines=lines, colour=colour, shade=shade, pixel_noise=pixel_noise,
    )


def _contrasting_colour(base: Tensor, gen: torch.Generator) -> Tensor:
    """An object colour far from the background's: some channels (at least one) jump away."""
    n = base.shape[0]
    away = torch.rand(n, 3, generator=gen) < 0.5
    away[torch.arange(n), torch.randint(0, 3, (n,), generator=gen)] = True
    up = base < 0.5
    room = torch.where(up, 1 - base, base)
    jump = room * _uniform(gen, (n, 3), 0.6, 1.0) * torch.where(up, 1.0, -1.0)
    drift = _uniform(gen, (n, 3), -0.2, 0.2)
    return (base + torch.where(away, jump, drift)).clamp(0, 1)


def _render(scene: dict[str, Tensor], size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    n = scene["label"].shape[0]
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(axis, axis, indexing="ij")  # [S,S], in image sides
    image = _background(scene, x, y)
    for i in range(_MAX_LINES):
        line = scene["lines"][:, i]
        dist = _segment_distance(x, y, line[:, 0:2], line[:, 2:4]) - line[:, 4, None, None] / 2
        alpha = _coverage(dist, size) * line[:, 8, None, None]
        image = image + alpha[:, None] * (line[:, 5:8, None, None] - image)
    dist = _object_distance(scene, x, y)  # in image sides
    alpha = _coverage(dist, size)
    gx, gy = torch.cos(scene["shade"][:, 1]), torch.sin(scene["shade"][:, 1])
    across = ((x - scene["centre"][:, 0, None, None]) * gx[:, None, None]
              + (y - scene["centre"][:, 1, None, None]) * gy[:, None, None]) / scene["radius"][:, None, None]
    colour = scene["colour"][:, :, None, None] + (scene["shade"][:, 0, None, None] * across)[:, None]
    image = image + alpha[:, None] * (colour - image)
    image = image + scene["pixel_noise"][:, None, None, None] * torch.randn(n, 3, size, size, generator=gen)
    return image.clamp_(0, 1), dist < 0


def _coverage(dist: Tensor, size: int) -> Tensor:
    """Anti-aliased pixel coverage of the region ``dist < 0`` (distances in image sides)."""
    return (0.5 - dist * size).clamp_(0, 1)


def _background(scene: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Gradient + smooth colour noise + stripes: texture without any shape in it."""
    size = x.shape[0]
    ga = scene["grad_angle"][:, None, None]
    ramp = (x - 0.5) * torch.cos(ga) + (y - 0.5) * torch.sin(ga)  # [-0.71, 0.71]
    image = scene["base"][:, :, None, None] + scene["tint"][:, :, None, None] * ramp[:, None]
    noise = torch.nn.functional.interpolate(scene["noise"], size=(size, size), mode="bicubic", align_corners=False)
    freq, direction, phase, amp = scene["stripes"].unbind(1)
    along = x * torch.cos(direction)[:, None, None] + y * torch.sin(direction)[:, None, None]
    wave = amp[:, None, None] * torch.sin(2 * math.pi * freq[:, None, None] * along + phase[:, None, None])
    return image + noise + wave[:, None]


def _segment_distance(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance of every pixel to the segment ``a``–``b`` ([N,2] each); [N,S,S]."""
    px, py = x - a[:, 0, None, None], y - a[:, 1, None, None]
    bx, by = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
    h = ((px * bx + py * by) / (bx * bx + by * by).clamp_min(1e-9)).clamp(0, 1)
    return torch.hypot(px - h * bx, py - h * by)


def _object_distance(scene: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Signed distance to each image's object (negative inside), in image sides; [N,S,S]."""
    radius = scene["radius"][:, None, None]
    dx, dy = x - scene["centre"][:, 0, None, None], y - scene["centre"][:, 1, None, None]
    c, s = torch.cos(scene["angle"])[:, None, None], torch.sin(scene["angle"])[:, None, None]
    px, py = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius  # object frame, unit = radius
    dist = torch.empty_like(px)
    for k, sdf in enumerate(_SDFS):
        chosen = scene["label"] == k
        if chosen.any():
            dist[chosen] = sdf(px[chosen], py[chosen])
    return dist * radius


def _box(px: Tensor, py: Tensor, hx: float, hy: float) -> Tensor:
    qx, qy = px.abs() - hx, py.abs() - hy
    return torch.hypot(qx.clamp_min(0), qy.clamp_min(0)) + torch.maximum(qx, qy).clamp_max(0)


def _circle(px: Tensor, py: Tensor) -> Tensor:
    return torch.hypot(px, py) - 1.0


def _square(px: Tensor, py: Tensor) -> Tensor:
    return _box(px, py, 0.8, 0.8)


def _triangle(px: Tensor, py: Tensor) -> Tensor:
    """Equilateral triangle, circumradius 1.1 (Inigo Quilez's exact distance)."""
    r, k = 1.1 * math.sqrt(3) / 2, math.sqrt(3)
    px = px.abs() - r
    py = py + r / k
    fold = px + k * py > 0
    px, py = torch.where(fold, (px - k * py) / 2, px), torch.where(fold, (-k * px - py) / 2, py)
    px = px - px.clamp(-2 * r, 0)
    return -torch.hypot(px, py) * torch.sign(py)


def _star(px: Tensor, py: Tensor) -> Tensor:
    """Five-pointed star, outer radius 1.1, inner 0.5 (Inigo Quilez's exact distance)."""
    r, rf = 1.1, 0.45
    k1x, k1y = 0.809016994375, -0.587785252292
    px = px.abs()
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):
        d = 2 * (kx * px + ky * py).clamp_min(0)
        px, py = px - d * kx, py - d * ky
    px, py = px.abs(), py - r
    bax, bay = rf * -k1y * r, rf * k1x * r - r
    h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(0, 1)
    return torch.hypot(px - bax * h, py - bay * h) * torch.sign(py * bax - px * bay)


def _cross(px: Tensor, py: Tensor) -> Tensor:
    return torch.minimum(_box(px, py, 1.0, 0.3), _box(px, py, 0.3, 1.0))


def _ring(px: Tensor, py: Tensor) -> Tensor:
    return (torch.hypot(px, py) - 0.75).abs() - 0.25


_SDFS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (_circle, _square, _triangle, _star, _cross, _ring)
