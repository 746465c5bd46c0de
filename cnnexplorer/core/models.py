"""Model specs → ``ModelHandle``: built-in nets, torchvision classifiers and files.

Spec strings (the same in GUI and CLI):
``builtin:NAME`` | ``torchvision:ARCH[:WEIGHTS]`` (WEIGHTS: DEFAULT, an enum name, or ``none``)
| ``timm:NAME[:pretrained|none|PATH]`` | a file path. ``open_model`` is a job (a generator yielding
``Progress``) because weights
may have to be downloaded.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.course_notes import torchvision_about, torchvision_layer_notes
from cnnexplorer.core.devices import resolve_device
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress, drive
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.weights import pretrained_torchvision
from cnnexplorer.resource_files import resource_path

DEFAULT_SPEC = "builtin:shapes"


@dataclass(frozen=True)
class FileOptions:
    """What a model file may not carry itself (CLI ``--arch``, ``--labels`` … options)."""

    arch: str | None = None
    labels: str | None = None
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    trust: bool = False


def torchvision_classifiers() -> list[str]:
    """Every classification architecture torchvision offers, sorted."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def open_model(spec: str, device: str | torch.device = "auto", options: FileOptions = FileOptions()) -> Job[ModelHandle]:
    """Load the model named by ``spec`` onto ``device`` (a job: yields Progress, returns a handle)."""
    spec = spec.strip()
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    kind, _, rest = spec.partition(":")
    if kind == "builtin":
        handle = _open_builtin(rest)
    elif kind == "torchvision":
        handle = yield from _open_torchvision(rest)
    elif kind == "timm":
        from cnnexplorer.core.timm_models import open_timm  # imports timm, which takes seconds

        handle = yield from open_timm(rest)
    elif kind in ("python", "pickle") or kind.endswith(".py"):
        from cnnexplorer.core.user_arch import open_user_architecture

        handle = open_user_architecture(spec, options)
    elif Path(spec).expanduser().exists() or looks_like_path(spec):
        from cnnexplorer.core.model_files import open_file  # model_files builds on this module

        handle = yield from open_file(Path(spec).expanduser(), options)
    else:
        raise UserError(
            f"unknown model spec '{spec}': use builtin:NAME, torchvision:ARCH[:WEIGHTS], timm:NAME or a file path"
            + suggest(spec, known_specs())
        )
    yield Progress(1, 1, f"moving {handle.spec} to {dev}")
    handle.module.eval()
    return handle.to(dev)


def known_specs() -> list[str]:
    """Specs to complete and suggest: the built-ins, every torchvision classifier and the zoo's timm models."""
    from cnnexplorer.core.zoo import TIMM_ZOO  # the zoo builds on this module

    return ([f"builtin:{n}" for n in BUILTIN_MODELS] + [f"torchvision:{a}" for a in torchvision_classifiers()]
            + [f"timm:{m.name}" for m in TIMM_ZOO])


def looks_like_path(spec: str) -> bool:
    """A spec with a folder separator or a file suffix means a file, even a missing one."""
    return "/" in spec or "\\" in spec or bool(Path(spec).suffix)


def load_model(spec: str, device: str | torch.device = "auto", options: FileOptions = FileOptions()) -> ModelHandle:
    """``open_model`` run to its end, without progress reporting."""
    return drive(open_model(spec, device, options))


def _open_builtin(name: str) -> ModelHandle:
    entry = BUILTIN_MODELS.get(name)
    if entry is None:
        raise UserError(
            f"unknown built-in model '{name}'; choose one of {', '.join(BUILTIN_MODELS)}"
            + suggest(name, list(BUILTIN_MODELS))
        )
    module = entry.build()
    if entry.weights is not None:
        state = torch.load(resource_path("weights", entry.weights), map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    return ModelHandle(
        spec=f"builtin:{name}",
        module=module,
        device=torch.device("cpu"),
        preprocessing=entry.preprocessing,
        class_names=list(entry.class_names),
        weights="builtin" if entry.weights else "none",
        trained=entry.weights is not None,
        about=entry.description,
    )


def _weights_enum(arch: str, weights_name: str):
    """The torchvision weights enum member for ``arch`` (None for ``none``)."""
    if weights_name.lower() == "none":
        return None
    enum = torchvision.models.get_model_weights(arch)
    try:
        return enum[weights_name.upper() if weights_name.upper() == "DEFAULT" else weights_name]
    except KeyError:
        names = ["DEFAULT", *(w.name for w in enum), "none"]
        raise UserError(
            f"unknown weights '{weights_name}' for torchvision:{arch}; choose one of {', '.join(names)}"
        ) from None


def _torchvision_arch(arch: str) -> str:
    archs = torchvision_classifiers()
    if arch not in archs:
        raise UserError(f"unknown torchvision classifier '{arch}'" + suggest(arch, archs))
    return arch


def _open_torchvision(rest: str) -> Job[ModelHandle]:
    arch, _, weights_name = rest.partition(":")
    weights = _weights_enum(_torchvision_arch(arch), weights_name or "DEFAULT")
    if weights is None:
        module = torchvision.models.get_model(arch, weights=None)
    else:
        module = yield from pretrained_torchvision(arch, weights, url=_mirror_url(weights.url))
    meta = weights or _plain_weights(arch)
    return ModelHandle(
        spec=f"torchvision:{arch}:{weights.name if weights else 'none'}",
        module=module,
        device=torch.device("cpu"),
        preprocessing=preprocessing_from_weights(meta),
        class_names=weights_class_names(meta),
        weights=weights.name if weights else "none",
        trained=weights is not None,
        about=torchvision_about(arch, weights, sum(p.numel() for p in module.parameters())),
        layer_notes=torchvision_layer_notes(arch),
    )


def torchvision_builder_flags(arch: str, weights) -> dict:
    """The keyword arguments torchvision's builder sets itself when given ``weights`` (none without).

    GoogLeNet and Inception v3 rescale their input (``transform_input``); GoogLeNet's pretrained
    model drops its auxiliary heads, Inception v3's keeps them; ViT and MaxViT take the weights'
    image size. ``tests/core/test_torchvision_parity.py`` checks every weights' parameter count.
    """
    if weights is None:
        return {}
    if arch in ("googlenet", "inception_v3"):
        return {"transform_input": True, "aux_logits": arch == "inception_v3", "init_weights": False}
    if arch.startswith("vit_"):
        return {"image_size": weights.meta["min_size"][0]}
    if arch == "maxvit_t":
        return {"input_size": weights.meta["min_size"]}
    return {}


def _plain_weights(arch: str):
    """Weights whose input size the plain builder (no weights) fits: DEFAULT, unless it needs a larger image."""
    def fits(weights) -> bool:
        flags = torchvision_builder_flags(arch, weights)
        return flags.get("image_size", 224) == 224 and list(flags.get("input_size", [224, 224])) == [224, 224]

    enum = torchvision.models.get_model_weights(arch)
    return next((w for w in (enum.DEFAULT, *enum) if fits(w)), enum.DEFAULT)


def torchvision_architecture(rest: str):
    """``torchvision:ARCH[:WEIGHTS]`` as an untrained architecture (for checkpoints and ``--arch``), built with
    the flags torchvision's builder sets for those weights (DEFAULT when not named; ``none``: the plain builder)."""
    from cnnexplorer.core.arch_specs import Architecture

    name, _, weights_name = rest.partition(":")
    specs = [f"torchvision:{a}" for a in torchvision_classifiers()]
    if f"torchvision:{name}" not in specs:
        raise UserError(f"unknown architecture 'torchvision:{name}'" + suggest(f"torchvision:{name}", specs))
    weights = _weights_enum(name, weights_name or "DEFAULT")
    flags = torchvision_builder_flags(name, weights)
    meta = weights or _plain_weights(name)

    def build(num_classes: int | None) -> torch.nn.Module:
        sized = {} if num_classes is None else {"num_classes": num_classes}
        return torchvision.models.get_model(name, weights=None, **flags, **sized)

    params = weights.meta["num_params"] if weights is not None else None
    return Architecture(build, preprocessing_from_weights(meta), weights_class_names(meta),
                        about=torchvision_about(name, weights, params), layer_notes=torchvision_layer_notes(name))


def weights_class_names(weights) -> list[str]:
    """The weights' categories; ``class i`` for VGG16's features-only weights, which name none."""
    return list(weights.meta["categories"] or (f"class {i}" for i in range(1000)))


def _mirror_url(url: str) -> str | None:
    """``$CNNEXPLORER_WEIGHTS_MIRROR`` + the file name, when a mirror of download.pytorch.org is set."""
    mirror = os.environ.get("CNNEXPLORER_WEIGHTS_MIRROR")
    return mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1] if mirror else None


def preprocessing_from_weights(weights) -> Preprocessing:
    """Input size, resize, interpolation and normalisation from a torchvision weights' transforms."""
    transform = weights.transforms()
    return Preprocessing(
        channels=3,
        size=(transform.crop_size[0], transform.crop_size[0]),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        resize=transform.resize_size[0],
        interpolation=transform.interpolation.value,
    )
