"""A new classifier head on a model's convolutional base, as Keras builds one with ``include_top=False``.

A model's *top* is what follows its convolutional base: the trailing top-level children after the
last one that holds a convolution (VGG's ``avgpool`` and ``classifier``, ResNet's ``avgpool`` and
``fc``, LeNet-5's ``flatten`` and ``classifier``); a model that is one container is looked into.
A head spec such as ``256,relu,dropout=0.5`` names the new head's layers; the head flattens the
base's output, runs them and ends in a Linear layer for the data's classes (one unit and a
``SigmoidPair`` for a binary head). It takes the first top child's place and the other top children
become ``nn.Identity``, so the model's own forward code still runs. A ``NewHead`` keeps what it was
built from, so a checkpoint records it (``head_record``) and reopening rebuilds it (``rebuild_head``).
"""

from __future__ import annotations

import difflib
import math

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.layers import SigmoidPair
from cnnexplorer.core.model_handle import eval_mode

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
WORDS = (*ACTIVATIONS, "dropout=P", "bn", "avgpool")
HEAD_HELP = ("the new head's layers after the base, comma-separated: a width (a Linear layer of that many units), "
             "relu, tanh, gelu, sigmoid, dropout=P, bn (BatchNorm); avgpool first averages each map instead of "
             "flattening it; the output layer for the data's classes is added. E.g. 256,relu,dropout=0.5")
_CONV = nn.modules.conv._ConvNd


def parse_head(spec: str) -> tuple[str, ...]:
    """The head spec's tokens, checked; ``UserError`` naming the token that is not a layer."""
    if not isinstance(spec, str):
        raise UserError(f"the head spec must be text such as 256,relu,dropout=0.5, not {spec!r}")
    tokens = tuple(t.strip().lower() for t in spec.split(",")) if spec.strip() else ()
    for position, token in enumerate(tokens):
        _check_token(spec, token, position)
    return tokens


def _check_token(spec: str, token: str, position: int) -> None:
    if token in ACTIVATIONS or token == "bn" or (token == "avgpool" and position == 0):
        return
    if token.isdigit() and 0 < int(token) <= 1_000_000:
        return
    word, _, value = token.partition("=")
    if word == "dropout" and value:
        try:
            p = float(value)
        except ValueError:
            p = math.nan
        if 0 <= p < 1:
            return
        problem = f"dropout={value} is not a probability in [0, 1)"
    elif token == "avgpool":
        problem = "avgpool can only come first (it replaces the flattening of the base's maps)"
    elif token.isdigit():
        problem = f"a layer width must be from 1 to 1000000, not {token}"
    else:
        close = difflib.get_close_matches(word, [w.partition("=")[0] for w in WORDS], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        problem = f"'{token or '(empty)'}' is not a layer{hint}"
    raise UserError(f"cannot read the head spec '{spec}': {problem}; use widths (256), relu, tanh, gelu, "
                    "sigmoid, dropout=P, bn, avgpool (first), e.g. 256,relu,dropout=0.5")


def describe_head(spec: str, binary: bool, classes: int | None) -> str:
    """The head as a chain of layers, e.g. ``Flatten → Linear 256 → ReLU → Linear 1 → sigmoid``."""
    names = {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU", "sigmoid": "sigmoid", "bn": "BatchNorm"}
    steps = ["average pool"] if parse_head(spec)[:1] == ("avgpool",) else ["Flatten"]
    for token in parse_head(spec):
        if token.isdigit():
            steps.append(f"Linear {token}")
        elif token.startswith("dropout"):
            steps.append(f"Dropout {token.partition('=')[2]}")
        elif token != "avgpool":
            steps.append(names[token])
    steps += ["Linear 1", "sigmoid"] if binary else [f"Linear {classes or '(one unit per class)'}"]
    return " → ".join(steps)


class GlobalAveragePool(nn.Module):
    """Each map's mean (Keras's GlobalAveragePooling2D); an input that is already flat passes unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(-1) if x.dim() > 2 else x


class NewHead(nn.Sequential):
    """A head built from a spec: flatten (or average) the base's output, the spec's layers, the output layer."""

    def __init__(self, spec: str, binary: bool, in_features: int, classes: int, dropped: tuple[str, ...] = ()):
        tokens = parse_head(spec)
        layers: list[nn.Module] = [GlobalAveragePool()] if tokens[:1] == ("avgpool",) else []
        layers.append(nn.Flatten())
        width = in_features
        for token in tokens:
            if token.isdigit():
                layers.append(nn.Linear(width, int(token)))
                width = int(token)
            elif token in ACTIVATIONS:
                layers.append(ACTIVATIONS[token]())
            elif token == "bn":
                layers.append(nn.BatchNorm1d(width))
            elif token.startswith("dropout"):
                layers.append(nn.Dropout(float(token.partition("=")[2])))
        layers.append(nn.Linear(width, 1 if binary else classes))
        if binary:
            layers.append(SigmoidPair())
        super().__init__(*layers)
        self.spec, self.binary, self.in_features, self.classes = spec, binary, in_features, classes
        self.dropped = tuple(dropped)


def has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, _CONV) for m in module.modules())


def top_children(module: nn.Module) -> list[str]:
    """The dotted names of the model's top: the trailing children after the last one holding a convolution.

    Empty when the model has no convolution, or its last part holds one (SqueezeNet's convolutional
    classifier); a model whose only child holds everything (a wrapped ``Sequential``) is looked into.
    """
    prefix = ""
    while True:
        children = list(module.named_children())
        last_conv = max((k for k, (_, child) in enumerate(children) if has_conv(child)), default=None)
        if last_conv is None:
            return []
        if len(children) == 1:
            prefix, module = prefix + children[0][0] + ".", children[0][1]
            continue
        return [prefix + name for name, _ in children[last_conv + 1:]]


def no_top_message(module: nn.Module) -> str:
    kind = type(module).__name__
    if not any(has_conv(child) for child in module.children()):
        return f"{kind} has no convolutional base, so there is no top to replace with a new head"
    return (f"{kind}'s last part holds a convolution (a convolutional classifier), so there is no dense top "
            "after its base to replace with a new head")


class _Measured(Exception):
    """Raised by the probe hook: the first top child's input has been seen, the rest need not run."""


def top_input_shape(module: nn.Module, first_top: str, input_size: tuple[int, int, int]) -> tuple[int, ...]:
    """The shape of what the base hands to the top's first child, for one image of ``input_size``."""
    seen: list[tuple[int, ...]] = []

    def grab(_module, args):
        seen.append(tuple(args[0].shape[1:]))
        raise _Measured

    probe = torch.zeros(1, *input_size, device=_device(module), dtype=_dtype(module))
    handle = module.get_submodule(first_top).register_forward_pre_hook(grab)
    try:
        with torch.no_grad(), eval_mode(module):
            module(probe)
    except _Measured:
        pass
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"{type(module).__name__} does not accept a {'×'.join(map(str, input_size))} input "
                        f"({_brief(exc)}); pass --input-size C,H,W") from None
    finally:
        handle.remove()
    if not seen:
        raise UserError(f"{type(module).__name__}'s forward never runs its {first_top}, so a new head there would "
                        "not be used; choose another architecture")
    return seen[0]


def apply_head(module: nn.Module, spec: str, binary: bool, classes: int, input_size: tuple[int, int, int],
               seed: int = 0) -> nn.Module:
    """Give ``module`` (changed in place, and returned) the head ``spec`` for ``classes`` classes.

    With an empty spec a binary head replaces only the final Linear layer (by one unit and a sigmoid).
    """
    if binary and classes != 2:
        raise UserError(f"a binary head (one sigmoid output) needs exactly 2 classes, not {classes}; "
                        "drop --binary (the GUI's 'one sigmoid output') for this data")
    tokens = parse_head(spec)
    if tokens:
        top = top_children(module)
        if not top:
            raise UserError(no_top_message(module) + "; train it without a head spec")
        shape = top_input_shape(module, top[0], input_size)
        in_features = shape[0] if tokens[0] == "avgpool" else math.prod(shape)
        place, dropped = top[0], tuple(top[1:])
    else:
        place, dropped = _final_linear(module), ()
        in_features = module.get_submodule(place).in_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = NewHead(spec, binary, in_features, classes, dropped)
    _install(module, place, head.to(_device(module), _dtype(module)), dropped)
    _check_output(module, input_size, 2 if binary else classes)
    return module


def _final_linear(module: nn.Module) -> str:
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears or not linears[-1]:
        raise UserError(f"{type(module).__name__} has no Linear output layer to make binary; give a head spec "
                        "with --head (e.g. --head 256,relu) to replace its top")
    return linears[-1]


def _install(module: nn.Module, place: str, head: nn.Module, dropped: tuple[str, ...]) -> None:
    for name, new in ((place, head), *((d, nn.Identity()) for d in dropped)):
        parent, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, child, new)


def _check_output(module: nn.Module, input_size: tuple[int, int, int], outputs: int) -> None:
    """The model with its new head gives one score per class, or its forward does not fit a new head."""
    probe = torch.zeros(1, *input_size, device=_device(module), dtype=_dtype(module))
    try:
        with torch.no_grad(), eval_mode(module):
            out = module(probe)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"{type(module).__name__}'s forward code does not fit a new head ({_brief(exc)}); "
                        "choose another architecture or train it without --head") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, outputs):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{type(module).__name__} with a new head returns {got}, not {outputs} class scores; "
                        "choose another architecture or train it without --head")


def head_record(module: nn.Module) -> dict | None:
    """What a checkpoint keeps to rebuild the model's new head (None when it has none)."""
    for name, m in module.named_modules():
        if isinstance(m, NewHead):
            return {"at": name, "spec": m.spec, "binary": m.binary, "in_features": m.in_features,
                    "classes": m.classes, "dropped": list(m.dropped)}
    return None


def rebuild_head(module: nn.Module, record: dict) -> nn.Module:
    """``module`` (an untrained build of the base's architecture) with the head ``record`` describes, in place."""
    try:
        head = NewHead(record["spec"], bool(record["binary"]), int(record["in_features"]), int(record["classes"]),
                       tuple(record.get("dropped", ())))
        place = str(record["at"])
        module.get_submodule(place)
        for name in head.dropped:
            module.get_submodule(name)
    except (KeyError, TypeError, ValueError, AttributeError, UserError) as exc:
        raise UserError(f"the checkpoint's head record is damaged ({_brief(exc)}); open it with --arch and a "
                        "state_dict of the base, or train the head again") from None
    _install(module, place, head.to(_device(module), _dtype(module)), head.dropped)
    return module


def has_auxiliary_heads(module: nn.Module) -> bool:
    """Whether the model returns auxiliary classifiers' outputs while training (GoogLeNet, Inception v3)."""
    return any(getattr(m, "aux_logits", False) is True for m in module.modules())


def _device(module: nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    tensor = tensor if tensor is not None else next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _dtype(module: nn.Module) -> torch.dtype:
    tensor = next((p for p in module.parameters() if p.is_floating_point()), None)
    return tensor.dtype if tensor is not None else torch.float32


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
