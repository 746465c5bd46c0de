"""The adversarial picture: original | amplified perturbation | adversarial, with predictions.

Used by the GUI's Adversarial view and ``cnnexplorer export adversarial``, so both give the
same pixels. Images are enlarged by whole factors (nearest neighbour) so small inputs stay
readable and every pixel of the perturbation is visible. The perturbation is shown around mid
grey, amplified by a round factor written under it. PIL's bundled font has no "×" or "—", so
the text uses "x" and "-".
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cnnexplorer.core.adversarial.base import AttackResult
from cnnexplorer.core.adversarial.budget import as_uint8
from cnnexplorer.core.picture_style import BODY, INK, MARGIN, MUTED, PAPER, TITLE, pil_font

GOOD = (30, 120, 60)
BAD = (180, 40, 40)
FONT_SIZE = BODY
TITLE_SIZE = TITLE
GAP = 14
LINE = FONT_SIZE + 5
MIN_TILE = 160
_NICE = (1, 2, 5)


def amplification(delta: np.ndarray) -> int:
    """The largest of 1, 2, 5, 10, 20, 50 … that keeps ``0.5 + factor·δ`` within [0,1]."""
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    if peak == 0:
        return 1
    best, scale = 1, 1
    while True:
        for nice in _NICE:
            if nice * scale * peak > 0.5:
                return best
            best = nice * scale
        scale *= 10


def tile_image(pixels: np.ndarray, factor: int) -> Image.Image:
    """``[C,H,W]`` uint8 → an RGB PIL image enlarged ``factor`` times."""
    array = pixels.transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    image = Image.fromarray(np.ascontiguousarray(array))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def _lines_for(result: AttackResult, index: int, after: bool, class_names, top: int) -> list[str]:
    return [f"{s.label[:24]}  {100 * s.prob:.1f} %" for s in result.top(index, top, after, class_names)]


def render_adversarial_panel(result: AttackResult, class_names, index: int = 0, top: int = 5) -> np.ndarray:
    """The three-panel picture of image ``index`` of ``result``, an ``H×W×3`` uint8 array."""
    original = result.original[index].numpy()
    adversarial = result.adversarial[index].numpy()
    delta = adversarial - original
    factor_amp = amplification(delta)
    perturbation = np.clip(np.round((0.5 + factor_amp * delta) * 255), 0, 255).astype(np.uint8)
    tiles = [as_uint8(result.original[index]).numpy(), perturbation, as_uint8(result.adversarial[index]).numpy()]

    linf, l2 = float(result.linf[index]), float(result.l2[index])
    psnr, ssim = float(result.psnr[index]), float(result.ssim[index])
    captions = [
        ["original", *_lines_for(result, index, False, class_names, top)],
        [f"perturbation x{factor_amp}", f"Linf {linf * 255:.0f}/255", f"L2 {l2:.3f}",
         f"PSNR {psnr:.1f} dB" if np.isfinite(psnr) else "PSNR inf", f"SSIM {ssim:.3f}"],
        ["adversarial", *_lines_for(result, index, True, class_names, top)],
    ]
    success = bool(result.success[index])
    names = list(class_names)
    label = int(result.labels[index])
    goal = f"true class {names[label] if label < len(names) else label}"
    if result.targets is not None:
        target = int(result.targets[index])
        goal += f", target {names[target] if target < len(names) else target}"
    title = (f"{result.attack.upper()}  ({result.budget.describe()}, {int(result.iterations[index])} steps)  "
             f"{goal}: {'fooled' if success else 'not fooled'}")
    return render_row([tile_image(t, zoom_for(t)) for t in tiles], captions, title, GOOD if success else BAD)


def zoom_for(pixels: np.ndarray) -> int:
    """The whole enlargement that makes a ``[C,H,W]`` picture at least ``MIN_TILE`` pixels."""
    return max(1, -(-MIN_TILE // max(pixels.shape[1:])))


def render_row(tiles: list[Image.Image], captions: list[list[str]], title: str,
               title_colour: tuple[int, int, int] = INK) -> np.ndarray:
    """Pictures side by side under a title, each with caption lines (first line darker)."""
    font, title_font = pil_font(FONT_SIZE), pil_font(TITLE_SIZE)
    tile_h = max(t.height for t in tiles)
    columns = [max(t.width, *(int(np.ceil(font.getlength(line))) for line in c)) for t, c in zip(tiles, captions)]
    rows = max(len(c) for c in captions)
    title_h = TITLE_SIZE + 12
    canvas_w = max(2 * MARGIN + sum(columns) + GAP * (len(tiles) - 1),
                   2 * MARGIN + int(np.ceil(title_font.getlength(title))))
    canvas_h = 2 * MARGIN + title_h + tile_h + 8 + rows * LINE
    image = Image.new("RGB", (canvas_w, canvas_h), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, font=title_font, fill=title_colour)
    x = MARGIN
    for tile, caption, column in zip(tiles, captions, columns):
        image.paste(tile, (x + (column - tile.width) // 2, MARGIN + title_h))
        y = MARGIN + title_h + tile_h + 8
        for j, text in enumerate(caption):
            draw.text((x, y + j * LINE), text, font=font, fill=INK if j == 0 else MUTED)
        x += column + GAP
    return np.asarray(image, dtype=np.uint8).copy()
