"""Forward hooks that never outlive their use, and layer lookup by dotted name.

Hooks are registered inside ``try`` and removed in ``finally``, so an exception in the forward
pass (or a cancelled job) leaves no hook behind: hooks forgotten in loops are the usual memory
leak of visualisation tools.
"""

from __future__ import annotations

import contextlib
import difflib
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from cnnexplorer.core.errors import UserError

Hook = Callable[[nn.Module, tuple, Any], Any]


def find_layer(root: nn.Module, name: str) -> nn.Module:
    """The submodule of ``root`` at dotted path ``name`` (``""`` is ``root`` itself).

    An unknown name raises ``UserError`` listing the closest names.
    """
    return find_layers(root, [name])[0]


def find_layers(root: nn.Module, names: Iterable[str]) -> list[nn.Module]:
    """``find_layer`` for many names, walking the module tree once."""
    modules = dict(root.named_modules())
    for name in names:
        if name not in modules:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; run `cnnexplorer summary` to list the layers"
            raise UserError(f"unknown layer '{name}'{hint}")
    return [modules[name] for name in names]


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Hook]]) -> Iterator[None]:
    """Register each ``(module, hook)`` pair as a forward hook for the block, removed after."""
    handles = []
    try:
        for module, hook in hooks:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def output_tensors(output: Any) -> tuple[torch.Tensor, ...]:
    """The tensors in a module's output, in order: a tensor, or tensors nested in tuples,
    lists (named tuples included) and dicts (by insertion order); anything else is skipped."""
    if isinstance(output, torch.Tensor):
        return (output,)
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return tuple(t for item in output for t in output_tensors(item))
    return ()


_NUMPY_DTYPES = {torch.float16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
                 torch.int32, torch.int64, torch.bool}


def cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A detached CPU copy of ``tensor``.

    CPU tensors are copied by numpy, a single-threaded memcpy: torch's parallel copy waits for
    every OpenMP thread, and stalls for a scheduler time slice whenever another process holds
    a core (measured 25× slower on a busy 2-core machine).
    """
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and tensor.dtype in _NUMPY_DTYPES and not tensor.is_neg():
        return torch.from_numpy(tensor.numpy().copy())
    return tensor.to("cpu", copy=True)


class _Snapshots:
    """Copies of tensors (``cpu_copy``), made once per (tensor, version) during one forward pass.

    A copy is needed because in-place operations later in the forward (ReLU(inplace=True),
    ``out += identity``) would otherwise change what was recorded. A container whose output is
    its last child's unchanged tensor shares that child's copy. Originals are referenced weakly
    (never kept alive); a dead reference means the ``id`` now belongs to another tensor.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        seen = self._seen.get(id(tensor))
        if seen is not None and seen[0]() is tensor and seen[1] == tensor._version:
            return seen[2]
        copy = cpu_copy(tensor)
        self._seen[id(tensor)] = (weakref.ref(tensor), tensor._version, copy)
        return copy


@contextlib.contextmanager
def record_outputs(root: nn.Module, names: Iterable[str]) -> Iterator[dict[str, list[tuple[torch.Tensor, ...]]]]:
    """Record the outputs of the named submodules of ``root`` during the block.

    Yields ``{name: [call 0 tensors, call 1 tensors, …]}``: one entry per call, because a
    module may run several times in one forward pass (torchvision ResNet's shared ``relu``).
    Each call's tensors are ``cpu_copy`` copies (see ``output_tensors`` for the order).
    Only forward passes run by the calling thread are recorded: the GUI may run the same
    model in another worker at the same time, and its calls must not mix into these records.
    """
    names = list(dict.fromkeys(names))
    modules = zip(names, find_layers(root, names))
    records: dict[str, list[tuple[torch.Tensor, ...]]] = {name: [] for name in names}
    snapshot = _Snapshots()
    owner = threading.get_ident()

    def recorder(name: str) -> Hook:
        def hook(module, args, output):
            if threading.get_ident() != owner:
                return
            records[name].append(tuple(snapshot(t) for t in output_tensors(output)))

        return hook

    with forward_hooks([(module, recorder(name)) for name, module in modules]):
        yield records
