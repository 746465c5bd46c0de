"""Top-k class predictions for images, without touching the caller's model state."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


@dataclass(frozen=True)
class ClassScore:
    index: int
    label: str
    prob: float

    def to_json(self) -> dict:
        return {"index": self.index, "label": self.label, "prob": self.prob}


def predict_tensor(handle: ModelHandle, pixels: torch.Tensor, top: int = 5) -> list[list[ClassScore]]:
    """Top-``top`` classes for a ``[N,C,H,W]`` batch of [0,1] pixels, one list per image."""
    with torch.no_grad(), eval_mode(handle.module):
        logits = handle.pixel_model()(pixels.to(handle.device))
    if not torch.isfinite(logits).all():
        raise UserError(f"{handle.spec} gives non-finite scores (NaN or infinity) for this image: its weights hold "
                        "NaN or infinite values (a diverged training run?); load other weights")
    probs = torch.softmax(logits.float(), dim=1).cpu()
    k = min(top, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [
        [ClassScore(int(i), handle.label(int(i)), float(p)) for p, i in zip(row_p, row_i)]
        for row_p, row_i in zip(values, indices)
    ]


def predict_images(handle: ModelHandle, images: list[Image.Image], top: int = 5) -> list[list[ClassScore]]:
    """Top-``top`` classes for PIL images, preprocessed with the model's own transforms."""
    batch = torch.stack([handle.preprocessing.to_tensor(im) for im in images])
    return predict_tensor(handle, batch, top)
