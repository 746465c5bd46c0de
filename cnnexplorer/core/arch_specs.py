"""Architecture specs → untrained modules: what a checkpoint or ``--arch`` names, rebuilt without weights.

A checkpoint stores weights and the spec of the architecture they fit. The spec kinds are
``builtin:NAME``, ``torchvision:ARCH[:WEIGHTS]`` (built with the flags torchvision's builder sets
for those weights), ``timm:NAME``, and two that run the user's code and so need trust:
``python:PATH:CLASS[:KWARGS-JSON]`` (a file that defines the class) and ``pickle:PATH`` (a fully
pickled module, whose structure is reused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.checkpoints import NeedsTrust
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing

ARCH_KINDS = ("builtin", "torchvision", "timm", "python", "pickle")
NEEDS_TRUST = ("python", "pickle")


@dataclass(frozen=True)
class Architecture:
    """A builder of the untrained model (``None``: its default class count), its preprocessing and
    class names, and what the tree says about it."""

    build: Callable[[int | None], nn.Module]
    preprocessing: Preprocessing
    class_names: list[str]
    about: str = ""
    layer_notes: dict[str, str] | None = None


def architecture(arch: str, trust: bool = False) -> Architecture:
    """The architecture ``arch`` names; ``UserError`` when it names none (or needs trust not given)."""
    kind, _, rest = trusted(normal_spec(arch), trust).partition(":")
    if kind == "builtin":
        return _builtin(rest.partition(":")[0], arch)
    if kind == "torchvision":
        from cnnexplorer.core.models import torchvision_architecture

        return torchvision_architecture(rest)
    if kind == "timm":
        from cnnexplorer.core.timm_models import timm_architecture

        return timm_architecture(rest)
    if kind == "python":
        from cnnexplorer.core.user_arch import python_architecture

        return python_architecture(rest)
    if kind == "pickle":
        from cnnexplorer.core.user_arch import pickle_architecture

        return pickle_architecture(rest)
    from cnnexplorer.core.models import known_specs, suggest

    raise UserError(f"unknown architecture '{arch}'; pass --arch builtin:NAME, torchvision:ARCH, timm:NAME or "
                    "python:FILE.py:CLASS" + suggest(arch, known_specs()))


def trusted(arch: str, trust: bool) -> str:
    """``arch``, unless it runs the user's code and ``trust`` was not given (then ``NeedsTrust``)."""
    if arch.partition(":")[0] in NEEDS_TRUST and not trust:
        raise NeedsTrust(f"the architecture {arch} runs code from a file of yours; pass --trust (CLI) or confirm "
                         "(GUI) only if you trust that file")
    return arch


def _builtin(name: str, arch: str) -> Architecture:
    entry = BUILTIN_MODELS.get(name)
    if entry is None:
        from cnnexplorer.core.models import suggest

        raise UserError(f"unknown built-in architecture '{arch}'; choose one of "
                        f"{', '.join('builtin:' + n for n in BUILTIN_MODELS)}" + suggest(name, list(BUILTIN_MODELS)))
    return Architecture(entry.build, entry.preprocessing, list(entry.class_names), about=entry.description)


def architecture_spec(handle: ModelHandle, arch: str | None = None) -> str:
    """The spec a checkpoint of ``handle``'s model is rebuilt from: ``arch`` if given, the model's own spec,
    the architecture its file records, or ``pickle:PATH`` for a fully pickled module."""
    from cnnexplorer.core.checkpoints import read_model_file

    if arch:
        return normal_spec(arch)
    if handle.spec.partition(":")[0] in ARCH_KINDS:
        return handle.spec
    try:
        found = read_model_file(handle.spec)
    except NeedsTrust:
        return f"pickle:{Path(handle.spec).resolve()}"
    if not found.arch:
        raise UserError(f"{handle.spec} does not name its architecture, so the trained model cannot be saved as a "
                        "checkpoint; pass --arch builtin:NAME, torchvision:ARCH, timm:NAME or FILE.py:CLASS")
    return found.arch


def normal_spec(arch: str) -> str:
    """``FILE.py:CLASS[:KWARGS]`` as ``python:`` with the file's absolute path, so a checkpoint finds it from
    anywhere; other specs as given."""
    arch = arch.strip()
    kind, _, rest = arch.partition(":")
    if kind.endswith(".py"):
        kind, rest = "python", arch
    if kind != "python":
        return arch
    file, _, tail = rest.partition(":")
    return f"python:{Path(file).expanduser().resolve()}:{tail}"
