"""The dataset index: one batched, streaming pass of a model over a probe set.

For every channel of the chosen layers (``layer_plan``) it keeps the top-k images and the channel's
distribution (``layer_stats``); per image the pooled features of the feature layers, the top-5
predictions, the label and a thumbnail of the model's input. Memory is the batch's activations plus
those per-image records: nothing holds all activations.

The pass runs the model as ``handle.pixel_model()`` in eval mode under ``no_grad`` on the pixels
``preprocessing.to_tensor`` makes, with forward hooks removed when it ends, is cancelled or fails.
Its state is saved in the cache (``cache``) every ``save_every`` seconds (or ten times as long as a save
takes, whichever is longer) and when the job is closed (a GUI cancel, the CLI's Ctrl-C or SIGTERM), and
a later run with the same key continues from it; a finished index is read back with no model pass. The
key holds the batch size: the histograms' bins come from the first batch, and a convolution's float
rounding may differ with the batch. The cache folder is checked before the pass, so a read-only one
fails at once; a save that fails during the pass (a full disk) is reported and the pass goes on. A
damaged cache file is reported, removed and made again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnexplorer.core.checks import check_number
from cnnexplorer.core import distributed, free_memory
from cnnexplorer.core.dataset import cache
from cnnexplorer.core.dataset.index_types import THUMBNAIL, DatasetIndex
from cnnexplorer.core.dataset.thumbnails import pixels_thumbnail
from cnnexplorer.core.dataset.layer_plan import (INPUT, Plan, all_layers, default_layers, plan_index,
                                                 resolve_layers)
from cnnexplorer.core.dataset.layer_group import LayerGroup
from cnnexplorer.core.dataset.layer_stats import SAVED_FIELDS, LayerAccumulator, summarise
from cnnexplorer.core.dataset.probe import ProbeSet
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import forward_hooks, output_tensors
from cnnexplorer.core.interventions import active_edits, describe
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layouts import layout_of
from cnnexplorer.core.model_handle import ModelHandle, eval_mode
from cnnexplorer.core.outputs import check_output, remove_stale_temporaries

__all__ = ["index_job", "default_layers", "all_layers", "IndexNote", "CacheHit", "index_cache_file"]

SAVE_EVERY_S = 10.0
SAVE_SHARE = 0.1  # saving may take at most this share of the pass: a slow save waits longer for the next
MAX_TOP_K = 1000
TOP_PREDICTIONS = 5


@dataclass(frozen=True)
class IndexNote:
    """Something the user should know about the pass: a layer left out, a pass resumed."""

    text: str


@dataclass(frozen=True)
class CacheHit:
    """The index was read from ``path``; no model pass ran."""

    path: Path


def index_cache_file(index: DatasetIndex, cache_dir: Path | None = None) -> Path:
    """Where the finished ``index`` is kept."""
    return cache.finished_path(cache.cache_folder(cache_dir), index.key)


def index_job(handle: ModelHandle, probe: ProbeSet, layers: list[str] | None = None, top_k: int = 9,
              batch_size: int = 64, feature_layers: list[str] | None = None, cache_dir: Path | None = None,
              save_every: float = SAVE_EVERY_S) -> Job[DatasetIndex]:
    """The index of ``probe`` under ``handle`` (see the module notes); yields ``Progress``, ``IndexNote``, ``CacheHit``.

    Under torch.distributed each rank passes its contiguous part of the set (``distributed.shard_range``),
    saving and resuming its own state, and the parts are merged in order on every rank (rank 0 writes
    the finished index): the result equals a single-process pass.
    """
    check_number("top-k", top_k, 1, MAX_TOP_K, whole=True)
    check_number("batch-size", batch_size, 1, whole=True)
    check_number("save interval", save_every, 0)
    if not len(probe):
        raise UserError(f"{probe.spec} holds no images to index; choose a set with at least one image")
    names = resolve_layers(handle, layers)
    folder = cache.cache_folder(cache_dir)
    key = _key(handle, probe, names, top_k, batch_size, feature_layers)
    finished_file = cache.finished_path(folder, key)
    finished = yield from _stored(finished_file, key, "the cached index")
    if finished is not None:
        yield CacheHit(finished_file)
        for note in finished[0]["notes"]:
            yield IndexNote(note)
        return _index_from_state(*finished)
    here, part = distributed.world(), distributed.shard_range(len(probe))
    check_output("the index cache", finished_file)  # before the pass, on every rank: each saves its progress there
    with contextlib.closing(probe.batches(handle.preprocessing, batch_size if part.start else 1)) as first:
        first_batch = next(first)[1]  # the set's first batch, whose values fix the histograms' bins
    plan = plan_index(handle, first_batch[:1], names, feature_layers)
    for note in plan.notes:
        yield IndexNote(note)
    run = _Run(handle, probe, plan, key, top_k, part)
    partial = cache.partial_path(folder, key + (f"-rank{here.rank}of{here.size}" if here.distributed else ""))
    stored = yield from _stored(partial, key, "the saved progress")
    if stored is not None and run.resume(*stored):
        yield IndexNote(f"resumed at image {run.done:,} of {len(probe):,}")
    if part.start:
        run.take_edges(first_batch)
    yield from _pass(run, batch_size, partial, save_every)
    meta, arrays = _merged(run) if here.distributed else run.state()
    if here.main:
        cache.write_state(finished_file, meta, arrays)
    partial.unlink(missing_ok=True)
    remove_stale_temporaries(partial)
    return _index_from_state(meta, arrays)


def cached_index(handle: ModelHandle, probe: ProbeSet, top_k: int = 9, batch_size: int = 64,
                 cache_dir: Path | None = None) -> Job[DatasetIndex | None]:
    """The index ``index_job`` makes by default (every Conv2d/Linear layer, the default feature layers: what
    ``cnnexplorer index`` and the app make) when it is in the cache, else None; no pass is made."""
    key = _key(handle, probe, resolve_layers(handle, None), top_k, batch_size, None)
    finished = yield from _stored(cache.finished_path(cache.cache_folder(cache_dir), key), key, "the cached index")
    return None if finished is None else _index_from_state(*finished)


def _key(handle: ModelHandle, probe: ProbeSet, layers: list[str], top_k: int, batch_size: int,
         feature_layers: list[str] | None) -> str:
    edits = describe(active_edits(handle.module))  # interventions on: another model, another index
    return cache.index_key(weights=cache.weights_hash(handle.module), **({"edits": edits} if edits else {}),
                           model=handle.spec, preprocessing=handle.preprocessing.to_json(), data=probe.fingerprint(),
                           layers=layers, top_k=top_k, features=feature_layers, batch_size=batch_size)


def _stored(path: Path, key: str, what: str) -> Job[tuple[dict, dict[str, np.ndarray]] | None]:
    """The state in ``path`` (a finished index or saved progress) if there is a sound one; a damaged one is
    reported (``IndexNote``) and removed."""
    try:
        state = cache.read_state(path, key)
        if state is not None:
            _check_state(*state)
        return state
    except (cache.Unreadable, KeyError, ValueError, TypeError, IndexError) as exc:
        yield IndexNote(f"{what} {path.name} could not be read ({exc}); it is removed and made again")
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _check_state(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """``ValueError`` (or ``KeyError``, ``TypeError``) unless ``meta`` holds what an index is read with and the
    arrays are there with the sizes it gives them."""
    missing = sorted(_META_KEYS - set(meta)) + sorted(f"layer{k}.{field}" for k in range(len(meta["layers"]))
                                                       for field in SAVED_FIELDS if f"layer{k}.{field}" not in arrays)
    if missing:
        raise ValueError(f"it lacks {', '.join(missing[:4])}")
    done, (start, _), top_k = int(meta["done"]), meta["part"], int(meta["top_k"])
    rows = done - int(start)
    for name in (*_PER_IMAGE, *(f"feature{k}" for k in range(len(meta["features"])))):
        if len(arrays[name]) != rows:
            raise ValueError(f"{name} holds {len(arrays[name])} images, not {rows}")
    for k in range(len(meta["layers"])):
        if arrays[f"layer{k}.top_values"].ndim != 2 or arrays[f"layer{k}.top_values"].shape[1] != top_k:
            raise ValueError(f"layer {k}'s top-k table is not {top_k} wide")
    if len(arrays["labels"]) != int(meta["count"]) or len(meta["sources"]) != int(meta["count"]):
        raise ValueError("the labels or sources do not match the set's size")


def _merged(run: "_Run") -> tuple[dict, dict[str, np.ndarray]]:
    """Every rank's part joined in dataset order, on every rank."""
    parts = distributed.gather_objects(run.state())
    meta, arrays = parts[0]
    meta = {**meta, "done": parts[-1][0]["done"], "part": [0, parts[-1][0]["part"][1]],
            "parts": [part_meta["part"] for part_meta, _ in parts],  # who passed which images
            "skipped": {k: v for part_meta, _ in parts for k, v in part_meta["skipped"].items()}}
    merged = {key: np.concatenate([part[key] for _, part in parts]) for key in _PER_IMAGE}
    merged["labels"] = arrays["labels"]
    for k, (name, size) in enumerate(meta["layers"]):
        accumulators = [LayerAccumulator.from_state(name, tuple(size) if size else None, meta["top_k"], _layer_fields(part, k))
                        for _, part in parts]
        for later in accumulators[1:]:
            accumulators[0].merge(later)
        merged.update({f"layer{k}.{field}": value for field, value in accumulators[0].state().items()})
    for k in range(len(meta["features"])):
        merged[f"feature{k}"] = np.concatenate([part[f"feature{k}"] for _, part in parts])
    return meta, merged


def _layer_fields(arrays: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    return {key.split(".", 1)[1]: value for key, value in arrays.items() if key.startswith(f"layer{k}.")}


def _pass(run: "_Run", batch_size: int, partial: Path, save_every: float) -> Job[None]:
    """Feed the rest of the run's part of the set through it, saving its state now and then and when stopped."""
    part, start = run.part, run.done
    saved, interval, consistent, failed = time.monotonic(), save_every, True, False
    try:
        with run.hooks(), contextlib.closing(run.probe.batches_with_thumbnails(run.handle.preprocessing, batch_size,
                                                                               run.done, part.stop)) as batches:
            for first, pixels, _, thumbs in batches:
                consistent = False
                run.add(first, pixels, thumbs)
                consistent = True
                if time.monotonic() - saved >= interval and run.done < part.stop and not failed:
                    began = time.monotonic()
                    try:
                        run.save(partial)
                    except UserError as exc:
                        failed = True  # one note; the pass goes on, to be kept (or not) at its end
                        yield IndexNote(f"could not save the progress so far ({exc}); the pass goes on")
                    saved = time.monotonic()
                    interval = max(save_every, (saved - began) / SAVE_SHARE)
                yield Progress(run.done - part.start, len(part), _progress_text(run.done - part.start, len(part)))
    except BaseException:
        if consistent and run.done > start:
            with contextlib.suppress(UserError):
                run.save(partial)
        raise


def _progress_text(done: int, total: int) -> str:
    """The step's text; the time left is the progress bar's and the status bar's to say (``jobs.time_left``)."""
    return f"{done:,}/{total:,} images"


_PER_IMAGE = ("top5", "top5_probs", "thumbnails")
_META_KEYS = {"key", "model_spec", "data_spec", "count", "done", "part", "top_k", "class_names", "label_names",
              "sources", "skipped", "notes", "layers", "features"}


class _Run:
    """The state of one pass over ``part`` of the set: the layers' accumulators and the per-image records so far."""

    def __init__(self, handle: ModelHandle, probe: ProbeSet, plan: Plan, key: str, top_k: int, part: range):
        self.handle, self.probe, self.plan, self.key, self.top_k, self.part = handle, probe, plan, key, top_k, part
        n, predictions = len(part), min(TOP_PREDICTIONS, plan.classes)
        self.done = part.start  # the next image to pass
        self.layers = {name: LayerAccumulator(name, channels, size, top_k)
                       for name, (channels, size) in plan.layers.items()}
        self.group = LayerGroup(list(self.layers.values()))
        self.features: dict[str, np.ndarray | None] = {name: None for name in plan.features}
        self.top5 = np.full((n, predictions), -1, np.int64)
        self.top5_probs = np.zeros((n, predictions), np.float32)
        self.thumbnails = np.zeros((n, THUMBNAIL, THUMBNAIL, 3), np.uint8)
        self._pending: dict[tuple[str, str], object] = {}  # what the hooks saw in this batch
        self._called: set[str] = set()  # modules already recorded in this batch (a module may run twice)
        self._release = free_memory.Releaser()

    @contextlib.contextmanager
    def hooks(self):
        """Forward hooks on the plan's modules for the block, recording the first call per pass of this thread, and
        the model in eval mode (set once for the block: per batch it cost more than the hooks' own Python)."""
        root, owner = self.handle.module, threading.get_ident()
        outputs = {module: [] for module, way in self.plan.features.values() if way != INPUT}
        for name, (module, way) in self.plan.features.items():
            if way != INPUT:
                outputs[module].append(name)
        inputs = [(module, name) for name, (module, way) in self.plan.features.items() if way == INPUT]

        def on_output(module_name: str):
            def hook(module, args, output):
                if threading.get_ident() != owner or module_name in self._called:
                    return
                self._called.add(module_name)
                maps = layouts[module_name].maps(output_tensors(output)[0])
                if module_name in self.layers:
                    self._pending[("layer", module_name)] = summarise(maps, self.layers[module_name])
                for feature in outputs.get(module_name, ()):
                    self._pending[("feature", feature)] = pooled(maps)
            return hook

        def on_input(feature: str):
            def hook(module, args):
                if threading.get_ident() == owner and ("feature", feature) not in self._pending and args:
                    self._pending[("feature", feature)] = pooled(args[0])
            return hook

        watched = list(dict.fromkeys([*self.plan.layers, *outputs]))
        layouts = {name: layout_of(root, name) for name in watched}
        handles = []
        try:
            for module, feature in inputs:
                handles.append(root.get_submodule(module).register_forward_pre_hook(on_input(feature)))
            with forward_hooks([(root.get_submodule(name), on_output(name)) for name in watched]), eval_mode(root):
                yield
        finally:
            for handle in handles:
                handle.remove()

    def take_edges(self, pixels: torch.Tensor) -> None:
        """Histogram edges as a pass from the first image would fix them (from the set's first batch,
        ``pixels``), so that a part that starts later counts in the same bins."""
        if all(accumulator.hist_edges is not None for accumulator in self.layers.values()):
            return
        scratch = _Run(self.handle, self.probe, self.plan, self.key, self.top_k, range(len(pixels)))
        with scratch.hooks():
            scratch.add(0, pixels)
        for name, accumulator in self.layers.items():
            if accumulator.hist_edges is None:
                accumulator.hist_edges = scratch.layers[name].hist_edges

    def add(self, first: int, pixels: torch.Tensor, thumbs: np.ndarray | None = None) -> None:
        """One batch of images ``first …`` with their thumbnails (made from ``pixels`` when not given): run the model
        and merge what the hooks saw (copied to the host after the pass: a copy during it would make the host
        wait for a GPU at every layer)."""
        self._pending, self._called = {}, set()
        with torch.no_grad():
            output = self.handle.pixel_model()(pixels.to(self.handle.device))
            logits = output_tensors(output)[0].reshape(len(pixels), -1).float()
            probs, classes = torch.softmax(logits, 1).topk(self.top5.shape[1], 1)
        self.group.add(first, [self._pending.get(("layer", name)) for name in self.layers])
        rows = slice(first - self.part.start, first - self.part.start + len(pixels))
        for name in self.features:
            pooled = self._pending.get(("feature", name))
            if pooled is not None:
                if self.features[name] is None:
                    self.features[name] = np.zeros((len(self.part), pooled.shape[1]), np.float32)
                self.features[name][rows] = pooled.cpu().numpy()
        self.top5[rows], self.top5_probs[rows] = classes.cpu().numpy(), probs.cpu().numpy()
        self.thumbnails[rows] = thumbs if thumbs is not None else [pixels_thumbnail(image) for image in pixels]
        self.done = first + len(pixels)
        self._pending, self._called = {}, set()
        self._release()  # the batch's freed activations: the heap would otherwise grow with the set

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """What ``cache.write_state`` keeps of the run so far (a finished index when it has passed the whole set)."""
        n, probe = self.done - self.part.start, self.probe
        meta = {"key": self.key, "model_spec": self.handle.spec, "data_spec": probe.spec, "count": len(probe),
                "done": self.done, "part": [self.part.start, self.part.stop], "top_k": self.top_k,
                "class_names": list(self.handle.class_names), "label_names": probe.label_names,
                "sources": [probe.source(i) for i in range(len(probe))], "skipped": dict(probe.skipped),
                "notes": list(self.plan.notes),
                "layers": [[name, list(acc.map_size) if acc.map_size else None] for name, acc in self.layers.items()],
                "features": [name for name, values in self.features.items() if values is not None]}
        arrays = {"labels": probe.labels.copy(), "top5": self.top5[:n], "top5_probs": self.top5_probs[:n],
                  "thumbnails": self.thumbnails[:n]}
        for k, accumulator in enumerate(self.layers.values()):
            arrays.update({f"layer{k}.{field}": value for field, value in accumulator.state().items()})
        for k, name in enumerate(meta["features"]):
            arrays[f"feature{k}"] = self.features[name][:n]
        return meta, arrays

    def save(self, partial: Path) -> None:
        cache.write_state(partial, *self.state())

    def resume(self, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        """Continue from a saved state; False (and nothing changed) if it belongs to another plan, set or part."""
        layers = [[name, list(acc.map_size) if acc.map_size else None] for name, acc in self.layers.items()]
        if (meta["count"] != len(self.probe) or meta["layers"] != layers or not set(meta["features"]) <= set(self.features)
                or meta.get("part", [0, meta["count"]]) != [self.part.start, self.part.stop]):
            return False
        n = meta["done"] - self.part.start
        for k, accumulator in enumerate(self.layers.values()):
            self.layers[accumulator.name] = LayerAccumulator.from_state(accumulator.name, accumulator.map_size,
                                                                        self.top_k, _layer_fields(arrays, k))
        self.group = LayerGroup(list(self.layers.values()))
        for k, name in enumerate(meta["features"]):
            values = arrays[f"feature{k}"]
            self.features[name] = np.zeros((len(self.part), values.shape[1]), np.float32)
            self.features[name][:n] = values
        self.top5[:n], self.top5_probs[:n], self.thumbnails[:n] = arrays["top5"], arrays["top5_probs"], arrays["thumbnails"]
        self.probe.skipped.update(meta["skipped"])
        self.done = meta["done"]
        return True


def pooled(tensor: torch.Tensor) -> torch.Tensor:
    """Each image's global average: ``[N,C,H,W]`` → ``[N,C]``; a vector stays, anything else is flattened.
    The index's features and a query's (the neighbours) are pooled by this one function."""
    tensor = tensor.detach()
    if tensor.ndim == 4:
        return tensor.float().mean((2, 3))
    return tensor.reshape(tensor.shape[0], -1).to(torch.float32, copy=True)  # an in-place ReLU may overwrite it


def _index_from_state(meta: dict, arrays: dict[str, np.ndarray]) -> DatasetIndex:
    layers = {}
    for k, (name, size) in enumerate(meta["layers"]):
        accumulator = LayerAccumulator.from_state(name, tuple(size) if size else None, meta["top_k"], _layer_fields(arrays, k))
        layers[name] = accumulator.result()
    features = {name: arrays[f"feature{k}"] for k, name in enumerate(meta["features"])}
    return DatasetIndex(meta["key"], meta["model_spec"], meta["data_spec"], meta["done"], meta["top_k"], layers,
                        features, arrays["labels"][: meta["done"]], arrays["top5"], arrays["top5_probs"],
                        arrays["thumbnails"], meta["class_names"], meta["label_names"], meta["sources"][: meta["done"]],
                        meta["skipped"])
