"""The model-randomisation sanity check (Adebayo et al. 2018): a map that explains the model
must change when the model's weights do.

Parametrised layers are re-initialised in a cascade from the top (classifier first) on a deep
copy of the model, so the caller's model is never touched; after each stage the map is
recomputed and compared with the original by Spearman rank correlation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.methods import heatmap_job
from cnnexplorer.core.attribution.targets import TargetSpec
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle


@dataclass(frozen=True)
class SanityStage:
    """The map after randomising every parametrised layer from the top down to ``layer``."""

    layer: str
    randomised: int
    correlation: float
    heatmap: Heatmap


@dataclass(frozen=True)
class SanityResult:
    original: Heatmap
    stages: tuple[SanityStage, ...]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps (ties get their average rank; 0 when either map is constant)."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse].astype(np.float64)


def parametrised_layers(module: nn.Module) -> list[str]:
    """Names of the submodules that own parameters, in forward-definition order."""
    return [name for name, mod in module.named_modules() if name and any(True for _ in mod.parameters(recurse=False))]


def _randomise(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        for parameter in module.parameters(recurse=False):
            nn.init.normal_(parameter, std=0.02)


def sanity_job(handle: ModelHandle, pixels: Tensor, method: str = "gradcam", target: TargetSpec = None,
               layer: str | None = None, stages: int = 6, seed: int = 0, **options) -> Job[SanityResult]:
    """Cascading randomisation in at most ``stages`` steps (groups of layers, top first),
    explaining the original model's target class throughout."""
    layers = parametrised_layers(handle.module)
    if not layers:
        raise UserError("this model has no parameters to randomise; the sanity check needs a trained model")
    original = yield from heatmap_job(handle, pixels, method, target, layer, **options)
    target = original.target if original.target is not None else target
    model = copy.deepcopy(handle.module)
    shadow = replace(handle, module=model)
    modules = dict(model.named_modules())
    top_down = layers[::-1]
    groups = [part.tolist() for part in np.array_split(np.array(top_down, dtype=object), min(stages, len(top_down)))]
    results = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for number, group in enumerate(groups):
            yield Progress(number + 1, len(groups) + 1, f"sanity check: randomising down to {group[-1]}")
            for name in group:
                _randomise(modules[name])
            heatmap = yield from heatmap_job(shadow, pixels, method, target, original.layer, **options)
            done = sum(len(g) for g in groups[:number + 1])
            results.append(SanityStage(group[-1], done, rank_correlation(original.scalar_map, heatmap.scalar_map),
                                       heatmap))
    return SanityResult(original, tuple(results))
