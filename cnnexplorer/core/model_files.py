"""Model files → ``ModelHandle``: the app's checkpoints, state_dicts, safetensors, trusted pickles.

A bare state_dict needs an architecture (``--arch``); its class count is read from the final
Linear layer's weight. A checkpoint of a model given a new head records it, and the head is rebuilt
on the architecture before the weights are loaded. A fully pickled module is only opened with
explicit trust.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cnnexplorer.core.arch_specs import architecture
from cnnexplorer.core.checkpoints import align_keys, load_state_checked, read_model_file
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.input_files import require_regular_file
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing, eval_mode
from cnnexplorer.core.models import FileOptions
from cnnexplorer.core.training.heads import rebuild_head

MAX_LABELS_BYTES = 16_000_000  # ImageNet-21k's names take about 0.5 MB
PICKLE_PREPROCESSING = Preprocessing(3, (224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256)


def open_file(path: Path, options: FileOptions) -> Job[ModelHandle]:
    """A model file: an app checkpoint, a state_dict/safetensors with an arch, or a trusted pickle."""
    yield Progress(0, None, f"reading {path.name}")
    file = read_model_file(path, trust=options.trust)
    notes = list(file.notes)
    about, layer_notes = "", {}
    if file.kind == "module":
        module, default_names = file.module, None
        preprocessing = with_options(PICKLE_PREPROCESSING, options)
        if None in (options.input_size, options.mean, options.std):
            notes.append(
                f"the file has no preprocessing: using {'×'.join(map(str, preprocessing.input_size))}, "
                f"mean {preprocessing.mean}, std {preprocessing.std} (change with --input-size, --mean, --std)"
            )
        num_classes = count_outputs(path, module, preprocessing)
    else:
        arch = options.arch or file.arch
        if arch is None:
            raise UserError(f"{path} is a bare state_dict; pass --arch SPEC (e.g. --arch torchvision:resnet18)")
        yield Progress(0, None, f"building {arch}")
        found = architecture(arch, trust=options.trust)
        build, default_pre, default_names = found.build, found.preprocessing, found.class_names
        head = file.extra.get("head") if file.kind == "checkpoint" else None
        if head is not None:
            build = _with_head(found.build, head)
        about, layer_notes = found.about, dict(found.layer_notes or {})
        module = _fitted_module(path, arch, build, file.state_dict, notes)
        preprocessing = with_options(file.preprocessing or default_pre, options)
        classifier = _classifier(module)
        num_classes = _class_count(module, classifier[1]) if classifier else len(default_names)
    return ModelHandle(
        spec=str(path),
        module=module,
        device=torch.device("cpu"),
        preprocessing=preprocessing,
        class_names=_class_names(path, options.labels, file.class_names, default_names, num_classes),
        weights=str(path),
        trained=True,
        notes=notes,
        about=about,
        layer_notes=layer_notes,
    )


def _classifier(module: nn.Module) -> tuple[str, int] | None:
    """The final Linear layer's weight key and class count (None if the model has no Linear)."""
    linears = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    name, linear = linears[-1]
    return (f"{name}.weight" if name else "weight"), linear.out_features


def _with_head(build: Callable[[int | None], nn.Module], record) -> Callable[[int | None], nn.Module]:
    """The architecture, built for the head's classes (auxiliary classifiers answer for them too), with the new
    head a training run gave it in place of its top."""
    if not isinstance(record, dict):
        raise UserError(f"the checkpoint's head record must be a dict, not {type(record).__name__}; open it with "
                        "--arch and a state_dict of the base, or train the head again")
    return lambda _classes: rebuild_head(build(record.get("classes")), record)


def _class_count(module: nn.Module, outputs: int) -> int:
    """The classes of a model whose final Linear layer has ``outputs`` units: 2 for one sigmoid output."""
    return 2 if outputs == 1 and any(isinstance(m, SigmoidPair) for m in module.modules()) else outputs


def _fitted_module(path: Path, arch: str, build: Callable[[int | None], nn.Module],
                   state: dict[str, torch.Tensor], notes: list[str]) -> nn.Module:
    """``arch`` built for the class count its classifier weight in ``state`` shows, then loaded."""
    probe = _structure(build)
    state, prefix = align_keys(state, probe.state_dict())
    if prefix:
        notes.append(f"removed the key prefix '{prefix}' to fit {arch}")
    state = _without_left_out(probe, state, arch, notes)
    classifier = _classifier(probe)
    weight = state.get(classifier[0]) if classifier else None
    fits = weight is None or weight.ndim != 2 or weight.shape[0] == classifier[1]
    module = build(None if fits else int(weight.shape[0]))
    load_state_checked(module, state, str(path), arch)
    return module


def _without_left_out(probe: nn.Module, state: dict[str, torch.Tensor], arch: str,
                      notes: list[str]) -> dict[str, torch.Tensor]:
    """``state`` without the weights of parts ``arch`` leaves out (set to None), as torchvision's pretrained
    GoogLeNet leaves out the auxiliary classifiers its published weights file still holds."""
    left_out = sorted({key.partition(".")[0] for key in state
                       if "." in key and getattr(probe, key.partition(".")[0], 0) is None})
    if left_out:
        notes.append(f"left out the weights of {', '.join(left_out)}, which {arch} does not have")
    return {k: v for k, v in state.items() if k.partition(".")[0] not in left_out}


def _structure(build: Callable[[int | None], nn.Module]) -> nn.Module:
    """The default model's layout, on the meta device where it can be built there (no init cost)."""
    try:
        with torch.device("meta"):
            return build(None)
    except (RuntimeError, NotImplementedError):  # e.g. RegNet calls .item() while building
        return build(None)


def count_outputs(path: Path, module: nn.Module, pre: Preprocessing) -> int:
    """Classes of a pickled model, by one forward pass that also checks the input size."""
    size = "×".join(map(str, pre.input_size))
    try:
        with torch.no_grad(), eval_mode(module):
            out = module(torch.zeros(1, *pre.input_size))
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} does not accept a {size} input ({first_line}); pass --input-size C,H,W") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise UserError(f"{path} does not return class scores (a [batch, classes] tensor) for a {size} input")
    return int(out.shape[1])


def with_options(pre: Preprocessing, options: FileOptions) -> Preprocessing:
    """``pre`` with the user's --input-size/--mean/--std; a new size scales the whole image to it."""
    changed = {}
    if options.input_size is not None:
        channels, height, width = options.input_size
        changed["channels"] = channels
        if (height, width) != pre.size:
            changed.update(size=(height, width), resize=None)
    return replace(pre, **changed, mean=tuple(options.mean or pre.mean), std=tuple(options.std or pre.std))


def _class_names(path: Path, labels: str | None, from_file: list[str] | None,
                 defaults: list[str] | None, num_classes: int) -> list[str]:
    """--labels, else the file's names, else the arch's own names if the count fits, else ``class i``."""
    if labels is not None:
        names, source = _read_labels(Path(labels)), f"labels file {labels}"
    elif from_file is not None:
        names, source = from_file, str(path)
    elif defaults is not None and len(defaults) == num_classes:
        return list(defaults)
    else:
        return [f"class {i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise UserError(
            f"{source} has {len(names)} class names but the model has {num_classes} classes; "
            "pass --labels FILE with one name per line, one line per class"
        )
    return names


def _read_labels(path: Path) -> list[str]:
    require_regular_file(path, "labels file", "give a UTF-8 text file, one class name per line",
                         max_bytes=MAX_LABELS_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read labels file {path} ({exc}); give a UTF-8 text file, one class name per line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]
