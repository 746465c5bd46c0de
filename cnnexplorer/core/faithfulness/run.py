"""Faithfulness of heatmap methods over images or a whole probe set: the methods × metrics table.

Each batch of images is explained by every method (and by a random map, the baseline row every
method must beat), then scored by deletion and insertion AUC, ROAD MoRF and LeRF (``perturb``)
and, where boxes are given, the pointing game (the map's maximum inside a box). The explained
class is the image's label when the set's labels name the model's classes, else (an unlabelled
folder) the model's top prediction. The table holds the mean of each metric over the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from cnnexplorer.core import distributed
from cnnexplorer.core.attribution.methods import find_method, heatmaps_job
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.faithfulness.boxes import boxes_for, image_key, region
from cnnexplorer.core.faithfulness.perturb import auc, deletion_job, road_job
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, eval_mode

RANDOM = "random"
FORWARD_BATCH = 128
"""Perturbed images per forward pass."""
SEED_STRIDE = 1_000_003
"""A batch's generator is seeded ``seed × SEED_STRIDE + its first image``."""
METRICS = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "pointing")
BETTER = {"deletion_auc": "lower", "insertion_auc": "higher", "road_morf": "lower", "road_lerf": "higher",
          "pointing": "higher"}


@dataclass
class Table:
    """Per method (``random`` last) the sum of each metric and how many images it counts."""

    methods: tuple[str, ...]
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    images: int = 0

    def add(self, method: str, metric: str, values: np.ndarray) -> None:
        self.sums.setdefault(method, {}).setdefault(metric, 0.0)
        self.counts.setdefault(method, {}).setdefault(metric, 0)
        self.sums[method][metric] += float(np.sum(values))
        self.counts[method][metric] += int(np.size(values))

    def value(self, method: str, metric: str) -> float | None:
        count = self.counts.get(method, {}).get(metric, 0)
        return self.sums[method][metric] / count if count else None

    def to_json(self) -> dict:
        rows = {}
        for method in self.methods:
            rows[method] = {m: self.value(method, m) for m in METRICS if self.value(method, m) is not None}
        return {"methods": rows, "count": self.images}


def check_methods(names) -> tuple[str, ...]:
    """The methods asked for, known and in order, without ``random`` (always added)."""
    names = tuple(dict.fromkeys(n.strip() for n in names if n.strip() and n.strip() != RANDOM))
    if not names:
        raise UserError("name at least one heatmap method (e.g. gradcam,saliency); the random map is always added")
    for name in names:
        find_method(name)
    return names


def random_maps(count: int, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
    return torch.rand((count, *shape), generator=generator)


def score_batch(handle: ModelHandle, pixels: Tensor, targets: Tensor, methods: tuple[str, ...], table: Table,
                steps: int = 20, batch: int = 64, regions: list[np.ndarray | None] | None = None,
                generator: torch.Generator | None = None, road: bool = True) -> Job[dict[str, Tensor]]:
    """Add one batch of images (``pixels`` ``[n,C,H,W]`` in [0,1], ``targets`` ``[n]``) to ``table``;
    return the maps it scored by method."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    pixels = pixels.to(handle.device)
    targets = targets.to(handle.device)
    n, _, height, width = pixels.shape
    model = handle.pixel_model()
    baseline = torch.tensor(handle.preprocessing.mean, dtype=pixels.dtype)
    with torch.no_grad(), eval_mode(handle.module):
        original = torch.softmax(model(pixels).float(), dim=1).gather(1, targets[:, None])[:, 0]
    maps: dict[str, Tensor] = {}
    for number, method in enumerate((*methods, RANDOM)):
        yield Progress(number, len(methods) + 1, f"{method}: maps")
        if method == RANDOM:
            maps[method] = random_maps(n, (height, width), generator)
        else:
            found = yield from heatmaps_job(handle, pixels, method, [int(t) for t in targets.tolist()])
            maps[method] = torch.from_numpy(np.stack([h.scalar_map for h in found])).float()
        with torch.no_grad(), eval_mode(handle.module):
            fractions, deletion, insertion = yield from deletion_job(model, pixels, maps[method], targets, original,
                                                                     baseline, steps, batch)
            table.add(method, "deletion_auc", auc(fractions, deletion))
            table.add(method, "insertion_auc", auc(fractions, insertion))
            if road:
                morf, lerf = yield from road_job(model, pixels, maps[method], targets, batch, generator)
                table.add(method, "road_morf", morf)
                table.add(method, "road_lerf", lerf)
        if regions is not None:
            hits = [bool(r[np.unravel_index(int(torch.argmax(m)), m.shape)])
                    for m, r in zip(maps[method], regions) if r is not None]
            if hits:
                table.add(method, "pointing", np.array(hits, dtype=np.float64))
    table.images += n
    return maps


def targets_of(handle: ModelHandle, pixels: Tensor, labels: Tensor | None = None) -> Tensor:
    """The class each image explains: its label where given (``>= 0``), else the top prediction."""
    with torch.no_grad(), eval_mode(handle.module):
        top = handle.pixel_model()(pixels.to(handle.device)).argmax(dim=1).cpu()
    if labels is None:
        return top
    return torch.where(labels >= 0, labels, top)


def dataset_job(handle: ModelHandle, probe, methods, steps: int = 20, batch: int = 32,
                boxes: dict | None = None, limit: int | None = None, seed: int = 0, road: bool = True) -> Job[Table]:
    """The table over a ``ProbeSet`` (its first ``limit`` images), ``batch`` images explained at a time.

    Each batch draws its random maps and ROAD noise from a generator seeded by ``seed`` and the batch's
    first image, so under torch.distributed each rank can score its contiguous run of whole batches
    (``distributed.shard_range`` over the batches) and the merged table is one process's (up to the float
    rounding of sums added in another order).
    """
    from cnnexplorer.core.dataset.evaluate import match_labels

    methods = check_methods(methods)
    table = Table((*methods, RANDOM))
    mapping = None
    if probe.label_names:
        try:
            mapping, _ = match_labels(probe.label_names, handle.class_names)
        except UserError:
            mapping = None
    root = probe.spec[len("folder:"):] if probe.spec.startswith("folder:") else None
    total = len(probe) if limit is None else min(limit, len(probe))
    part = distributed.shard_range(-(-total // batch))
    start, stop = part.start * batch, min(part.stop * batch, total)
    for first, pixels, labels in probe.batches(handle.preprocessing, batch, start, stop):
        yield Progress(first - start, stop - start, f"faithfulness: image {first + 1} of {total}")
        mapped = None
        if mapping is not None:
            mapped = torch.tensor([mapping[int(l)] if l >= 0 else -1 for l in labels.tolist()])
        regions = None
        if boxes is not None:
            regions = []
            for i in range(first, first + len(pixels)):
                found = boxes_for(boxes, image_key(probe.source(i), root, i))
                size = probe.image(i).size if found else None
                regions.append(None if found is None else region(found, size, _crop(handle, size), handle.input_size[1:]))
        targets = targets_of(handle, pixels, mapped)
        generator = torch.Generator().manual_seed(seed * SEED_STRIDE + first)
        yield from score_batch(handle, pixels, targets, methods, table, steps, FORWARD_BATCH, regions,
                               generator, road)
    table = _merged(table)
    if boxes is not None and not any("pointing" in c for c in table.counts.values()):
        raise UserError("no image of the data has a box in the box file: name the files by their path relative to "
                        "the data folder (or the image's number for built-in data)")
    return table


def _merged(table: Table) -> Table:
    """Every rank's table added up, in rank order (the table itself in one process)."""
    parts = distributed.gather_objects((table.sums, table.counts, table.images))
    merged = Table(table.methods)
    for sums, counts, images in parts:
        for method, metrics in sums.items():
            for metric, value in metrics.items():
                merged.sums.setdefault(method, {}).setdefault(metric, 0.0)
                merged.counts.setdefault(method, {}).setdefault(metric, 0)
                merged.sums[method][metric] += value
                merged.counts[method][metric] += counts[method][metric]
        merged.images += images
    return merged


def _crop(handle: ModelHandle, size: tuple[int, int]) -> tuple[float, float, float, float]:
    pre = handle.preprocessing
    return (0.0, 0.0, float(size[0]), float(size[1])) if pre.resize is None else pre.crop_box(size)


def image_job(handle: ModelHandle, pixels: Tensor, methods, target: int | None = None, steps: int = 20,
              seed: int = 0, road: bool = True, region_mask: np.ndarray | None = None) -> Job[tuple[Table, dict]]:
    """The table for one image ``[C,H,W]`` (its maps too, by method): the GUI's current image."""
    methods = check_methods(methods)
    table = Table((*methods, RANDOM))
    batch = pixels[None] if pixels.ndim == 3 else pixels
    targets = targets_of(handle, batch) if target is None else torch.tensor([int(target)])
    maps = yield from score_batch(handle, batch, targets, methods, table, steps, FORWARD_BATCH,
                                  None if region_mask is None else [region_mask],
                                  torch.Generator().manual_seed(seed), road)
    return table, maps
