"""Visualisations of one given image: DeepDream (amplify what a layer sees) and feature
inversion (reconstruct the image from a layer's output)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.featurevis.optimize import Result, Settings, evaluate, optimize, run_to
from cnnexplorer.core.jobs import Job
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


def deepdream(handle: ModelHandle, image: torch.Tensor, layer: str, settings: Settings = Settings(),
              seed: int = 0, octaves: int = 3, octave_scale: float = 1.4) -> Job[Result]:
    """Maximise ½ mean z² at ``layer`` starting from ``image`` (``[C,H,W]`` in [0,1]), from the
    smallest octave up, each octave ``octave_scale`` larger: coarse patterns first, then detail.
    Each octave starts from the image at its size plus the detail dreamed so far (enlarged), so
    downscaling never loses the image's own detail. ``settings.steps`` are shared among octaves."""
    generator = torch.Generator().manual_seed(seed)
    height, width = image.shape[1:]
    objective = obj.deepdream(layer)
    original = image[None].float()
    detail = torch.zeros_like(original)
    per_octave = replace(settings, steps=max(1, settings.steps // octaves), param="pixel", blur_every=0)
    histories = []
    for octave in range(octaves):
        factor = octave_scale ** (octaves - 1 - octave)
        size = (max(8, round(height / factor)), max(8, round(width / factor)))
        base = F.interpolate(original, size=size, mode="bilinear", align_corners=False)
        start = (base + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
        result = yield from optimize(handle, objective, 1, per_octave, generator, init=start)
        current = result.images
        histories.append(result.history)
        detail = current - base
    return Result(current, evaluate(handle, objective, current),
                  {**per_octave.to_json(), "steps": per_octave.steps * octaves, "kind": "deepdream",
                   "octaves": octaves, "octave_scale": octave_scale}, seed, np.concatenate(histories))


def invert(handle: ModelHandle, image: torch.Tensor, layer: str, settings: Settings = Settings(param="pixel", transforms=False),
           seed: int = 0, alpha: float = 6.0, alpha_weight: float = 1.0, tv_weight: float = 0.05) -> Job[Result]:
    """Reconstruct ``image`` (``[C,H,W]`` in [0,1], square) from ``layer``'s output: maximise
    −‖Φ(x) − Φ(x₀)‖²/‖Φ(x₀)‖² − α-norm − total variation, from noise at the image's size."""
    objective = inversion_objective(handle, image, layer, alpha, alpha_weight, tv_weight)
    settings = replace(settings, size=image.shape[-1])
    result = yield from optimize(handle, objective, 1, settings, torch.Generator().manual_seed(seed))
    return replace(result, settings={**result.settings, "kind": "inversion", "alpha": alpha,
                                     "alpha_weight": alpha_weight, "tv_weight": tv_weight})


def inversion_objective(handle: ModelHandle, image: torch.Tensor, layer: str, alpha: float = 6.0,
                        alpha_weight: float = 1.0, tv_weight: float = 0.05) -> obj.Objective:
    """``invert``'s objective: match ``layer``'s output on ``image``, α-norm and TV regularised."""
    with torch.no_grad(), eval_mode(handle.module):
        target = run_to(handle.pixel_model(), handle.module, [layer], image[None].to(handle.device))[layer].detach()
    return (obj.inversion(layer, target) - alpha_weight * obj.alpha_norm(alpha)
            - tv_weight * obj.total_variation())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0,1]."""
    mse = float((a.float() - b.float()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()
