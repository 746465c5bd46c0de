"""Recorded layer outputs kept between requests, so switching layer for the same image runs no model."""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict

import torch

from cnnexplorer.core.activations.recording import Capture, capture, not_run, pick_output, split_call, tensors_nbytes
from cnnexplorer.core.hooks import find_layers
from cnnexplorer.core.model_handle import ModelHandle

DEFAULT_BUDGET = 512 * 2**20


def model_key(handle: ModelHandle) -> tuple:
    """Identity of the model *and its current weights*: in-place weight updates (training,
    loading a state dict) bump the tensors' version counters, which invalidates cached results."""
    state = sum(t._version for t in handle.module.parameters()) + sum(t._version for t in handle.module.buffers())
    return (weakref.ref(handle.module), str(handle.device), handle.preprocessing, state)


def pixels_key(pixels: torch.Tensor) -> str:
    """SHA-256 of the pixel tensor, for images that have no file hash (edited or generated)."""
    data = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(str(data.shape).encode() + data.tobytes()).hexdigest()


class ActivationCache:
    """Recorded layer outputs keyed by (model and weights, image, layer call), within a byte budget.

    A miss runs one forward pass recording ``layers`` (default: every module) and keeps them
    all, so switching layer for the same image is a lookup. When the budget is exceeded the
    least recently used entries go first; ``forward_passes`` counts the model runs.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET, layers: list[str] | None = None):
        self.budget_bytes = budget_bytes
        self.layers = layers
        self.forward_passes = 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, ...] | None] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._capture_lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def get_or_capture(self, handle: ModelHandle, pixels: torch.Tensor, layer: str,
                       image_key: str | None = None, output_index: int = 0) -> torch.Tensor:
        """Tensor ``output_index`` of ``layer`` for this image, from the cache or one new pass.

        ``image_key`` identifies the pixels (the image file's SHA-256); None hashes the pixels.
        """
        return pick_output(layer, self.get_outputs(handle, pixels, layer, image_key), output_index)

    def get_outputs(self, handle: ModelHandle, pixels: torch.Tensor, layer: str,
                    image_key: str | None = None) -> tuple[torch.Tensor, ...]:
        """Every tensor ``layer`` returned for this image (see ``get_or_capture``)."""
        tensors = self.get_many(handle, pixels, [layer], image_key)[layer]
        if tensors is None:
            raise not_run(split_call(layer)[0])
        return tensors

    def get_many(self, handle: ModelHandle, pixels: torch.Tensor, layers: list[str],
                 image_key: str | None = None) -> dict[str, tuple[torch.Tensor, ...] | None]:
        """The tensors of each of ``layers`` (None for a module the forward pass did not use):
        from the cache when all are there, else from ONE new pass, returned whole even when
        the budget cannot keep all of it (so a big model's statistics need one pass)."""
        calls = [split_call(layer) for layer in layers]
        find_layers(handle.module, [name for name, _ in calls])
        base = (model_key(handle), image_key or pixels_key(pixels))
        keys = [(*base, f"{name}#{call}") for name, call in calls]
        hit = self._lookup(keys)
        if hit is None:
            with self._capture_lock:  # a second caller waits for the same pass instead of repeating it
                hit = self._lookup(keys)
                if hit is None:
                    kept = self.layers if self.layers is not None else [n for n, _ in handle.module.named_modules() if n]
                    recorded = capture(handle, pixels, [*kept, *layers])
                    self.forward_passes += 1
                    self._store(base, recorded, keys[-1] if keys else None)
                    return {layer: recorded.outputs(layer) if recorded.calls(name) else None
                            for layer, (name, _) in zip(layers, calls)}
        return dict(zip(layers, hit))

    def _lookup(self, keys: list[tuple]) -> list[tuple[torch.Tensor, ...] | None] | None:
        """The entries of ``keys`` (marked most recently used), or None unless all are cached."""
        with self._lock:
            if not all(key in self._entries for key in keys):
                return None
            for key in keys:
                self._entries.move_to_end(key)
            return [self._entries[key] for key in keys]

    def _store(self, base: tuple, recorded: Capture, last: tuple | None) -> None:
        """Keep every recorded call (``None`` marks a module that did not run), ``last`` newest."""
        entries = {(*base, f"{n}#{k}"): t for n, calls in recorded.records.items() for k, t in enumerate(calls)}
        entries.update({(*base, f"{n}#0"): None for n, calls in recorded.records.items() if not calls})
        if last in entries:
            entries[last] = entries.pop(last)
        with self._lock:
            for key, tensors in entries.items():
                if key in self._entries:
                    self._nbytes -= tensors_nbytes(self._entries.pop(key) or ())
                self._entries[key] = tensors
                self._nbytes += tensors_nbytes(tensors or ())
            while self._nbytes > self.budget_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._nbytes -= tensors_nbytes(dropped or ())
