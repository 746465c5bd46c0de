"""The user's own architectures: a Python file that defines the model's class, or a fully pickled module.

``python:FILE.py:CLASS[:KWARGS-JSON]`` (also written ``FILE.py:CLASS[:KWARGS-JSON]``) imports the
file and builds ``CLASS(**KWARGS)``; ``pickle:FILE`` reuses a pickled module's structure. Both run
the user's code, so both need trust. A class may say what it takes with class attributes
``input_size = (C, H, W)``, ``mean``, ``std`` and ``class_names``; otherwise ImageNet's 3×224×224
preprocessing is assumed and ``--input-size/--mean/--std/--labels`` change it. Training builds the
class with its defaults and replaces its final Linear layer when the data's class count differs; a
class whose constructor takes ``num_classes`` is built with a checkpoint's class count when the
checkpoint reopens, any other gets its final Linear layer made that wide.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import json
from pathlib import Path

import torch
from torch import nn

from cnnexplorer.core.arch_specs import Architecture, normal_spec, trusted
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_files import count_outputs, with_options, open_file
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import FileOptions

IMAGENET = Preprocessing(3, (224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256)
FORM = "python:FILE.py:CLASS[:KWARGS-JSON], e.g. python:nets/mine.py:SmallNet:{\"width\": 32}"


def open_user_architecture(spec: str, options: FileOptions) -> ModelHandle:
    """An untrained model of the user's architecture (``python:``), or a pickled model (``pickle:``)."""
    spec = trusted(normal_spec(spec), options.trust)
    kind, _, rest = spec.partition(":")
    if kind == "pickle":
        from cnnexplorer.core.jobs import drive

        return drive(open_file(Path(rest), FileOptions(**{**options.__dict__, "trust": True})))
    found = python_architecture(rest)
    pre = with_options(found.preprocessing, options)
    module = found.build(None)
    classes = count_outputs(spec, module, pre)
    names = found.class_names if len(found.class_names) == classes else [f"class {i}" for i in range(classes)]
    return ModelHandle(spec=spec, module=module, device=torch.device("cpu"), preprocessing=pre, class_names=names,
                       weights="none", trained=False, about=found.about)


def python_architecture(rest: str) -> Architecture:
    """``FILE.py:CLASS[:KWARGS-JSON]`` (the part after ``python:``) as an architecture."""
    file, _, tail = rest.partition(":")
    name, _, kwargs_text = tail.partition(":")
    if not file.endswith(".py") or not name:
        raise UserError(f"'{rest}' does not name a Python file and a class; write {FORM}")
    kwargs = _kwargs(kwargs_text)
    cls = _model_class(Path(file), name)
    takes_classes = "num_classes" in inspect.signature(cls).parameters

    def build(num_classes: int | None) -> nn.Module:
        given = dict(kwargs)
        if num_classes is not None and takes_classes:
            given["num_classes"] = num_classes
        try:
            module = cls(**given)
        except Exception as exc:  # the user's constructor may fail in any way
            raise UserError(f"{name}({_args(given)}) from {file} failed ({_brief(exc)}); fix the class or its "
                            "keyword arguments") from None
        if not isinstance(module, nn.Module):
            raise UserError(f"{name} in {file} made a {type(module).__name__}, not a torch.nn.Module")
        return _with_classes(module, num_classes)

    pre = _class_preprocessing(cls, file)
    names = [str(n) for n in getattr(cls, "class_names", [])]
    return Architecture(build, pre, names, about=f"{name} from {file}" + (f" ({_args(kwargs)})" if kwargs else ""))


def pickle_architecture(rest: str) -> Architecture:
    """``FILE`` (the part after ``pickle:``): a pickled module's structure, copied for each build."""
    from cnnexplorer.core.checkpoints import read_model_file

    found = read_model_file(Path(rest), trust=True)
    if found.module is None:
        raise UserError(f"{rest} holds no pickled module, so it names no architecture; pass --arch with the "
                        "architecture its weights fit")
    template = found.module

    def build(num_classes: int | None) -> nn.Module:
        return _with_classes(copy.deepcopy(template), num_classes)

    return Architecture(build, IMAGENET, [], about=f"the pickled model in {rest}")


def _kwargs(text: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"the keyword arguments '{text}' are not JSON ({exc.msg}); write them as a JSON object, "
                        f"e.g. {{\"width\": 32}}") from None
    if not isinstance(value, dict):
        raise UserError(f"the keyword arguments '{text}' are a JSON {type(value).__name__}, not an object; write "
                        "them as {\"name\": value, ...}")
    return value


def _model_class(path: Path, name: str) -> type:
    """Class ``name`` from the Python file ``path``, imported afresh under a name of its own."""
    path = path.expanduser()
    if not path.is_file():
        raise UserError(f"architecture file {path} not found; check the path in {FORM}")
    module_name = "cnnexplorer_arch_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file may fail in any way
        raise UserError(f"importing {path} failed ({_brief(exc)}); fix the file") from None
    cls = getattr(module, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        defined = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)
                         and v.__module__ == module_name)
        what = f"it defines {', '.join(defined)}" if defined else "it defines no nn.Module class"
        raise UserError(f"{path} has no nn.Module class named {name} ({what}); check the class name in {FORM}")
    return cls


def _class_preprocessing(cls: type, file: str) -> Preprocessing:
    """The class's own ``input_size``/``mean``/``std`` attributes, else ImageNet's."""
    size = getattr(cls, "input_size", None)
    if size is None:
        return IMAGENET
    try:
        channels, height, width = (int(s) for s in size)
        grey = channels == 1
        mean = tuple(float(m) for m in getattr(cls, "mean", (0.5,) if grey else IMAGENET.mean))
        std = tuple(float(s) for s in getattr(cls, "std", (0.5,) if grey else IMAGENET.std))
    except (TypeError, ValueError):
        raise UserError(f"{cls.__name__}.input_size in {file} must be (C, H, W), with mean and std one number per "
                        "channel") from None
    return Preprocessing(channels, (height, width), mean, std)


def _with_classes(module: nn.Module, num_classes: int | None) -> nn.Module:
    """``module`` with its final Linear layer made ``num_classes`` wide when it is not."""
    from cnnexplorer.core.training.transfer import head_name, replace_head

    if num_classes is None:
        return module
    head = module.get_submodule(head_name(module))
    return module if head.out_features == num_classes else replace_head(module, num_classes)


def _args(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
