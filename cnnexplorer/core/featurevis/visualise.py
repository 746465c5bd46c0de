"""One entry point for every kind of feature visualisation, as the CLI export and the GUI run it:
the optimised images plus, per image, the objective's value on them, on random noise and on
the given image, so a user can judge how far the optimisation went."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.featurevis.image_objectives import deepdream, invert, inversion_objective
from cnnexplorer.core.featurevis.optimize import Settings, evaluate, optimize
from cnnexplorer.core.featurevis.units import KINDS as UNIT_KINDS
from cnnexplorer.core.featurevis.units import check_units, layer_units, noise_values, render_units, unit_objective
from cnnexplorer.core.jobs import Job
from cnnexplorer.core.model_handle import ModelHandle

OBJECTIVES = (*UNIT_KINDS, "diversity", "deepdream", "inversion")
IMAGE_KINDS = ("deepdream", "inversion")
NOISE_SAMPLES = 8
DIVERSITY_IMAGES = 4


@dataclass(frozen=True)
class Visualisation:
    """``images[i]`` (``[N,C,H,W]`` in [0,1]) shows unit ``units[i]`` (None for an image-based
    objective); ``values``, ``noise_values`` and ``image_values`` (None without an image) are the
    objective on the result, on uniform noise (mean of 8) and on the given image; ``history``
    (``[steps, N]``) its value at every step, for the objective curve."""

    kind: str
    layer: str
    units: list[int | None]
    images: torch.Tensor
    values: np.ndarray
    noise_values: np.ndarray
    image_values: np.ndarray | None
    settings: dict
    seed: int
    history: np.ndarray

    def channels_json(self) -> list[dict]:
        return [{"index": unit, "value": float(self.values[i]), "noise_value": float(self.noise_values[i]),
                 "image_value": None if self.image_values is None else float(self.image_values[i])}
                for i, unit in enumerate(self.units)]


def visualise(handle: ModelHandle, kind: str, layer: str, units: list[int] | None = None,
              image: torch.Tensor | None = None, settings: Settings = Settings(), seed: int = 0) -> Job[Visualisation]:
    """Run the ``kind`` objective (channel, neuron, logit: one image per unit of ``layer``;
    diversity: ``DIVERSITY_IMAGES`` different images of the one unit given; deepdream,
    inversion: from ``image``, ``[C,H,W]`` in [0,1] at the model's input size)."""
    shown = shown_units(kind, units)
    if kind == "diversity":
        if not units or len(units) != 1:
            raise UserError("the diversity objective shows several images of ONE channel: pass a single channel")
        objective = obj.channel(layer, shown[0])
        check_units(handle, layer, shown[:1], settings.size)
        result = yield from optimize(handle, objective, len(shown), settings, torch.Generator().manual_seed(seed),
                                     extra=settings.diversity * obj.diversity(layer))
        result = replace(result, settings={**result.settings, "kind": kind})
        image_for_values = None if image is None else image[None].expand(len(shown), -1, -1, -1)
    elif kind in UNIT_KINDS:
        result = yield from render_units(handle, layer, units or [], kind, settings, seed)
        objective = unit_objective(kind, layer, units, settings.logit_l2)
        image_for_values = None if image is None else image[None].expand(len(units), -1, -1, -1)
    elif kind in IMAGE_KINDS:
        if image is None:
            raise UserError(f"the {kind} objective needs an image: pass --image IMG")
        if kind == "deepdream":
            result = yield from deepdream(handle, image, layer, settings, seed)
            objective = obj.deepdream(layer)
        else:
            regularisers = dict(alpha=settings.alpha, alpha_weight=settings.alpha_weight, tv_weight=settings.inversion_tv)
            result = yield from invert(handle, image, layer, replace(settings, param="pixel", transforms=False), seed,
                                       **regularisers)
            objective = inversion_objective(handle, image, layer, **regularisers)
        image_for_values = image[None]
    else:
        raise UserError(f"unknown objective '{kind}': use one of {', '.join(OBJECTIVES)}")
    size = result.images.shape[-1]
    noise = noise_values(handle, objective, len(shown), size, NOISE_SAMPLES, seed).numpy()
    image_values = None if image_for_values is None else evaluate(handle, objective, image_for_values)
    return Visualisation(kind, layer, shown, result.images, result.values, noise, image_values,
                         result.settings, seed, result.history)


def shown_units(kind: str, units: list[int] | None) -> list[int | None]:
    """The unit each image of a visualisation shows: one per unit, ``DIVERSITY_IMAGES`` of the one
    diversity unit, None for the one image of an image-based objective."""
    if kind in IMAGE_KINDS:
        return [None]
    return list(units or []) * (DIVERSITY_IMAGES if kind == "diversity" else 1)


def default_units(handle: ModelHandle, kind: str, layer: str, limit: int = 16) -> list[int] | None:
    """What to visualise when no unit is given: the first ``limit`` channels (logit: classes),
    channel 0 for diversity, nothing for the image-based objectives."""
    if kind in IMAGE_KINDS:
        return None
    if kind == "diversity":
        return [0]
    available = handle.num_classes if kind == "logit" else layer_units(handle, layer, 32)
    return list(range(min(limit, available)))
