"""Feature visualisation of many units at once, batched to fit the device's memory.

Every batch element maximises its own channel (or neuron, or class logit), so 16 channels cost
about one 16-image batch per step instead of 16 single-image runs.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.featurevis.optimize import Result, Settings, evaluate, optimize, run_to
from cnnexplorer.core.hooks import forward_hooks, output_tensors
from cnnexplorer.core.jobs import Job
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

KINDS = ("channel", "neuron", "logit")
MAX_UNITS = 4096
CPU_BUDGET_BYTES = 2 << 30
LOGIT_L2 = 1.0


def parse_units(text: str) -> list[int]:
    """``0-15`` or ``3,5,8-10`` → the listed indices, in order (at most ``MAX_UNITS`` of them)."""
    units: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise UserError(f"expected indices such as 0-15 or 3,5,8-10, got '{text}'") from None
        if last < first:
            raise UserError(f"the range {part.strip()} runs backwards; write it as {last}-{first}")
        if len(units) + last - first + 1 > MAX_UNITS:
            raise UserError(f"'{text}' names more than {MAX_UNITS} units; visualise fewer at a time")
        units += range(first, last + 1)
    return units


def unit_objective(kind: str, layer: str, units: list[int], logit_l2: float = LOGIT_L2) -> obj.Objective:
    """Element ``i`` maximises unit ``units[i]``; ``logit``: class logit − λ‖I − ½‖² at ``layer``
    (λ = ``logit_l2``; 0: the class score alone)."""
    if kind == "channel":
        return obj.channel(layer, units)
    if kind == "neuron":
        return obj.neuron(layer, units)
    if kind == "logit":
        return obj.class_logit(layer, units) - logit_l2 * obj.l2() if logit_l2 else obj.class_logit(layer, units)
    raise UserError(f"unknown objective '{kind}': use one of {', '.join(KINDS)}")


def layer_units(handle: ModelHandle, layer: str, size: int) -> int:
    """How many channels (or outputs) ``layer`` has, from one probe forward that stops there
    (in eval mode: a model in training mode would update its batch-norm statistics)."""
    with torch.no_grad(), eval_mode(handle.module):
        images = torch.full((1, handle.input_size[0], size, size), 0.5, device=handle.device)
        output = run_to(handle.pixel_model(), handle.module, [layer], images)[layer]
    return int(output.shape[1])


def workable_size(handle: ModelHandle, layer: str, size: int) -> int | None:
    """The square size a unit of ``layer`` can be visualised at: ``size`` when the model runs to the layer at
    that size, else the model's own input size when square (a Flatten into a Linear takes that size only, and
    then without the random transforms, which change the size), else None."""
    height, width = handle.input_size[1:]
    for side in dict.fromkeys((size, height) if height == width else (size,)):
        try:
            layer_units(handle, layer, side)
        except RuntimeError:  # torch's shape mismatch: the layer cannot run at this size
            continue
        return side
    return None


def bytes_per_image(handle: ModelHandle, layer: str, size: int) -> int:
    """Rough training-step memory for one image: every module output up to ``layer``, 4 bytes
    each, times 3 (the output, its saved copy for backward, its gradient)."""
    total = [0]
    owner = threading.get_ident()

    def count(module, args, output):
        if threading.get_ident() == owner:
            total[0] += sum(t.numel() * t.element_size() for t in output_tensors(output))

    leaves = [m for m in handle.module.modules() if not list(m.children())]
    with forward_hooks([(m, count) for m in leaves]):
        layer_units(handle, layer, size)
    return 3 * total[0] + 3 * 4 * size * size * 4


def batch_size_for(handle: ModelHandle, layer: str, size: int) -> int:
    """Images per batch that fit in half the free device memory (CPU: a 2 GiB budget)."""
    if handle.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(handle.device)
        budget = free // 2
    else:
        budget = CPU_BUDGET_BYTES
    return max(1, int(budget // bytes_per_image(handle, layer, size)))


def check_units(handle: ModelHandle, layer: str, units: list[int], size: int) -> None:
    available = layer_units(handle, layer, size)
    bad = [u for u in units if not 0 <= u < available]
    if bad:
        raise UserError(f"layer {layer or 'output'} has units 0 to {available - 1}; {bad[0]} is out of range")


def render_units(handle: ModelHandle, layer: str, units: list[int], kind: str = "channel",
                 settings: Settings = Settings(), seed: int = 0, batch_size: int | None = None) -> Job[Result]:
    """Optimise one image per unit of ``layer`` in batches (``batch_size`` None: fit to memory);
    yields every batch's ``Step``s, returns all images in ``units`` order."""
    if not units:
        raise UserError("no units to visualise: pass channels such as 0-15")
    check_units(handle, layer, units, settings.size)
    batch = batch_size or batch_size_for(handle, layer, settings.size)
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for first in range(0, len(units), batch):
        chunk = units[first: first + batch]
        parts.append((yield from optimize(handle, unit_objective(kind, layer, chunk, settings.logit_l2), len(chunk), settings,
                                          generator, first=first)))
    return Result(torch.cat([p.images for p in parts]), np.concatenate([p.values for p in parts]),
                  {**settings.to_json(), "kind": kind, "batch_size": batch}, seed,
                  np.concatenate([p.history for p in parts], axis=1))


def noise_values(handle: ModelHandle, objective: obj.Objective, count: int, size: int, samples: int = 8,
                 seed: int = 0) -> torch.Tensor:
    """Mean objective value over ``samples`` uniform-noise images, per element:
    ``objective`` evaluated on ``count`` copies of each noise image."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(samples, handle.input_size[0], size, size, generator=generator)
    total = torch.zeros(count)
    for image in noise:
        total += torch.from_numpy(evaluate(handle, objective, image.expand(count, -1, -1, -1)))
    return total / samples
