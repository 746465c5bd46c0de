"""One forward pass that records the outputs of chosen layers, each call of each module.

A module that runs several times in one forward pass (torchvision ResNet's shared ``relu``)
is recorded once per call: ``name`` (or ``name#0``) is the first call, ``name#1`` the second…
Outputs are kept as ``core.layouts`` reads them: a ViT's tokens and Swin's channels-last
outputs become ``[N,C,H,W]`` maps when captured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import record_outputs
from cnnexplorer.core.layouts import layout_of
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


def split_call(layer: str) -> tuple[str, int]:
    """``"layer1.0.relu#2"`` → ``("layer1.0.relu", 2)``; a plain name is call 0."""
    name, sep, call = layer.rpartition("#")
    if sep and call.isdigit():
        return name, int(call)
    return layer, 0


def not_run(name: str) -> UserError:
    return UserError(
        f"layer '{name}' produced no output for this input: the forward pass did not use it "
        "(an unused branch?); pick another layer"
    )


@dataclass(frozen=True)
class Capture:
    """What one forward pass recorded: ``{module name: [tensors of call 0, call 1, …]}``."""

    records: dict[str, list[tuple[torch.Tensor, ...]]]

    def calls(self, name: str) -> int:
        return len(self.records.get(name, ()))

    def layers(self) -> list[str]:
        """Every recorded output as a layer string: ``name`` for the first call, ``name#k`` after."""
        return [name if k == 0 else f"{name}#{k}" for name, calls in self.records.items() for k in range(len(calls))]

    def outputs(self, layer: str) -> tuple[torch.Tensor, ...]:
        """All tensors of ``layer`` (``name`` or ``name#k``), for modules with several outputs."""
        name, call = split_call(layer)
        if name not in self.records:
            raise UserError(f"layer '{name}' was not captured; capture it first")
        calls = self.records[name]
        if not calls:
            raise not_run(name)
        if call >= len(calls):
            raise UserError(f"layer '{name}' ran {len(calls)} time(s) in this forward pass; "
                            f"use {name} or {name}#1 … {name}#{len(calls) - 1}")
        return calls[call]

    def output(self, layer: str, output_index: int = 0) -> torch.Tensor:
        """Tensor ``output_index`` of ``layer`` (0 for modules returning one tensor)."""
        return pick_output(layer, self.outputs(layer), output_index)

    @property
    def nbytes(self) -> int:
        return sum(tensors_nbytes(tensors) for calls in self.records.values() for tensors in calls)


def pick_output(layer: str, tensors: tuple[torch.Tensor, ...], output_index: int) -> torch.Tensor:
    if not tensors:
        raise UserError(f"layer '{layer}' returns no tensor; pick another layer")
    if not 0 <= output_index < len(tensors):
        raise UserError(f"layer '{layer}' has {len(tensors)} output tensor(s); "
                        f"choose an output index from 0 to {len(tensors) - 1}")
    return tensors[output_index]


def tensors_nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(t.element_size() * t.nelement() for t in tensors)


def capture(handle: ModelHandle, pixels: torch.Tensor, layers: list[str] | None = None) -> Capture:
    """Run one forward pass on ``pixels`` ([C,H,W] or [N,C,H,W] in [0,1]) and record ``layers``.

    ``layers`` are dotted names of ``handle.module`` (``name#k`` is accepted and records
    ``name``); None records every submodule. Runs under ``no_grad`` in eval mode, restoring
    the modules' train/eval flags and removing the hooks afterwards, also on error. Each
    output is kept as ``core.layouts`` reads it (``[N,C,H,W]`` for a map).
    """
    root = handle.module
    names = [n for n, _ in root.named_modules() if n] if layers is None else [split_call(l)[0] for l in layers]
    batch = pixels[None] if pixels.ndim == 3 else pixels
    with torch.no_grad(), eval_mode(root), record_outputs(root, names) as records:
        handle.pixel_model()(batch.to(handle.device))
    layouts = {name: layout_of(root, name) for name in records}
    return Capture({name: [tuple(layouts[name].maps(t) for t in tensors) for tensors in calls]
                    for name, calls in records.items()})
