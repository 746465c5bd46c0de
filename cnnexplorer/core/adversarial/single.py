"""Attacking one image of a model handle, and saving the result: what the GUI and the CLI share.

The image is attacked at the model's input resolution (after its resize and crop), so the
saved PNG, fed back through the same preprocessing, is exactly the image that was judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnexplorer.core.adversarial.base import Attack, AttackResult, clean_probabilities
from cnnexplorer.core.adversarial.budget import as_uint8
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.outputs import atomic_write_bytes
from cnnexplorer.core.render import png_bytes


def attack_image(handle: ModelHandle, pixels: torch.Tensor, attack: Attack, target: int | None = None,
                 seed: int = 0) -> Job[AttackResult]:
    """Attack ``pixels`` ([C,H,W] in [0,1]) away from the model's prediction, or towards ``target``."""
    batch = pixels[None] if pixels.dim() == 3 else pixels
    model = handle.pixel_model()
    before = clean_probabilities(model, batch)
    if target is not None and int(before[0].argmax()) == target:
        raise UserError(f"the model already predicts {handle.label(target)} ({target}) for this image; "
                        "choose another target class")
    return (yield from attack.run(model, batch, targets=target, seed=seed, before=before))


def adversarial_pixels(result: AttackResult, index: int = 0) -> np.ndarray:
    """Image ``index`` as uint8 ``H×W×3`` (``H×W`` for one channel): exactly the judged pixels."""
    levels = as_uint8(result.adversarial[index]).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(levels[:, :, 0] if levels.shape[2] == 1 else levels)


def png_path(path: str | Path) -> Path:
    """``path`` if it names a PNG file; a lossy format would change the pixels that fool the model."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"{path.name}: save the adversarial image as a .png file (a lossy format "
                        "would change the pixels that fool the model)")
    return path


def save_adversarial(path: str | Path, result: AttackResult, index: int = 0) -> Path:
    """Write image ``index`` as a lossless PNG (atomically); refuse other formats."""
    path = png_path(path)
    atomic_write_bytes(path, png_bytes(adversarial_pixels(result, index)))
    return path
