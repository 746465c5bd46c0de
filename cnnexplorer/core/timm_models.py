"""timm models: ``timm:NAME[:pretrained|none|PATH]`` (default ``pretrained``).

Weights come from timm's own download path and cache (the Hugging Face hub), or from a local
file given as PATH; images are prepared as timm's evaluation transform does, from the model's
``pretrained_cfg`` (input size, interpolation, crop percentage, mean and std). timm is imported
only here and only when a timm model is opened: importing it takes seconds.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
import torchvision
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing

SPEC_FORM = "timm:NAME[:pretrained|none|PATH-TO-WEIGHTS]"


def _timm():
    import timm

    return timm


def parse_spec(rest: str) -> tuple[str, str]:
    """(model name, weights source) of ``NAME[:pretrained|none|PATH]``; the source defaults to ``pretrained``."""
    name, _, source = rest.partition(":")
    if not name:
        raise UserError(f"a timm spec names a model: {SPEC_FORM}, e.g. timm:resnet18")
    if not _timm().is_model(name):
        from cnnexplorer.core.models import suggest

        raise UserError(f"unknown timm model '{name}'" + suggest(name, _timm().list_models()))
    return name, source or "pretrained"


def open_timm(rest: str) -> Job[ModelHandle]:
    """The timm model ``rest`` names, with its weights (downloaded by timm when not in its cache)."""
    name, source = parse_spec(rest)
    if source.lower() == "none":
        module, weights, spec = _timm().create_model(name, pretrained=False), "none", f"timm:{name}:none"
    elif source.lower() == "pretrained":
        yield Progress(0, None, f"loading the timm weights of {name} (downloaded into timm's cache if missing)")
        module, weights, spec = _pretrained(name), _tag(name), f"timm:{name}:pretrained"
    else:
        path = Path(source).expanduser().resolve()
        yield Progress(0, None, f"loading {path.name}")
        module, weights, spec = _from_file(name, path), str(path), f"timm:{name}:{path}"
    preprocessing, notes = timm_preprocessing(module)
    return ModelHandle(
        spec=spec,
        module=module,
        device=torch.device("cpu"),
        preprocessing=preprocessing,
        class_names=class_names(module),
        weights=weights,
        trained=weights != "none",
        notes=notes,
        about=_about(name, module, weights),
    )


def _pretrained(name: str) -> nn.Module:
    try:
        return _timm().create_model(name, pretrained=True)
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"could not get the timm weights of {name} ({reason[:160]}); no network? Download them once, "
                        f"or open timm:{name}:PATH with a local weights file, or timm:{name}:none for random weights"
                        ) from None


def _from_file(name: str, path: Path) -> nn.Module:
    if not path.is_file():
        raise UserError(f"the weights file {path} does not exist; pass an existing file as timm:{name}:PATH")
    try:
        return _timm().create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} does not hold weights that fit timm's {name} ({reason[:160]}); pass the file of "
                        "that model, or another model name") from None


def timm_preprocessing(module: nn.Module) -> tuple[Preprocessing, list[str]]:
    """The model's evaluation preprocessing as timm resolves it, and notes where it can only be approximated.

    timm's ``center`` crop mode resizes the shorter side to ``floor(size / crop_pct)`` and crops
    the centre: exactly ``Preprocessing`` with that ``resize``.
    """
    config = _timm().data.resolve_model_data_config(module)
    channels, height, width = config["input_size"]
    crop_pct = config.get("crop_pct") or _timm().data.DEFAULT_CROP_PCT
    notes = []
    if config.get("crop_mode", "center") != "center" or height != width:
        notes.append(f"timm prepares this model's images with the crop mode '{config.get('crop_mode')}' at "
                     f"{height}×{width}; here the shorter side is resized and the centre cropped")
    preprocessing = Preprocessing(
        channels=channels,
        size=(height, width),
        mean=tuple(float(m) for m in config["mean"]),
        std=tuple(float(s) for s in config["std"]),
        resize=math.floor(min(height, width) / crop_pct),
        interpolation=config["interpolation"],
    )
    return preprocessing, notes


def class_names(module: nn.Module) -> list[str]:
    """ImageNet's names (torchvision's list) for a 1000-class model, ``class i`` otherwise."""
    count = module.num_classes
    if count == 1000:
        return list(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])
    return [f"class {i}" for i in range(count)]


def _tag(name: str) -> str:
    """The pretrained tag timm picks for ``name`` (``resnet18`` → ``a1_in1k``)."""
    return _timm().models.get_pretrained_cfg(name).tag or "pretrained"


def _about(name: str, module: nn.Module, weights: str | None) -> str:
    """One line: the model, its weights (None: whatever a checkpoint holds), size and paper."""
    params = sum(p.numel() for p in module.parameters())
    what = {None: "", "none": ", untrained (random weights)"}.get(weights, f", weights {weights}")
    papers = module.pretrained_cfg.get("paper_ids")
    paper = f"; paper {papers if isinstance(papers, str) else ', '.join(papers)}" if papers else ""
    return f"timm's {name}{what}: {params / 1e6:.1f} M parameters{paper}"


def timm_architecture(rest: str):
    """``timm:NAME[:…]`` as an untrained architecture (for checkpoints and ``--arch``); the weights part is
    ignored."""
    from cnnexplorer.core.arch_specs import Architecture

    name, _ = parse_spec(rest.partition(":")[0])

    def build(num_classes: int | None) -> nn.Module:
        sized = {} if num_classes is None else {"num_classes": num_classes}
        return _timm().create_model(name, pretrained=False, **sized)

    try:
        with torch.device("meta"):
            probe = build(None)
    except (RuntimeError, NotImplementedError):  # a model that computes with tensors while it is built
        probe = build(None)
    preprocessing, _ = timm_preprocessing(probe)
    return Architecture(build, preprocessing, class_names(probe), about=_about(name, probe, None))
