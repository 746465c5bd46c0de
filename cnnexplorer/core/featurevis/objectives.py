"""What feature visualisation maximises: objectives that compose with ``+``, ``-`` and scalar ``*``.

An objective maps the activations recorded during one forward pass to one value per batch
element (higher is better), so a batch can hold a different channel in every element. Each is
built from a closure by the ``objective`` decorator, as in Lucent; ``layers`` are the layers the
closure reads, and the optimisation loop stops the forward pass once all of them have run.
``INPUT`` names the [0,1] image itself (for regularisers). Values are means, not sums, so they
compare across layer and image sizes (Adam is invariant to that scale).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from cnnexplorer.core.layouts import unknown_layout

INPUT = "<input>"
Activations = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """``fn(activations) -> [N]`` values to maximise; ``layers``: the activations it reads."""

    fn: Callable[[Activations], torch.Tensor]
    layers: frozenset[str]
    name: str

    def __call__(self, activations: Activations) -> torch.Tensor:
        return self.fn(activations)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), self.layers | other.layers, f"{self.name} + {other.name}")

    def __sub__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) - other(a), self.layers | other.layers, f"{self.name} - {other.name}")

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __mul__(self, scale: float) -> "Objective":
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return Objective(lambda a: scale * self(a), self.layers, f"{scale:g}·({self.name})")

    __rmul__ = __mul__


def objective(*layer_args: str) -> Callable:
    """Decorator: ``factory(*args) -> closure`` becomes ``factory(*args) -> Objective``.

    ``layer_args`` names the factory's parameters that hold layer names (read by the closure);
    a factory with none reads ``INPUT``.
    """

    def wrap(factory: Callable[..., Callable[[Activations], torch.Tensor]]) -> Callable[..., Objective]:
        names = factory.__code__.co_varnames[: factory.__code__.co_argcount]

        @functools.wraps(factory)
        def build(*args, **kwargs) -> Objective:
            bound = dict(zip(names, args), **kwargs)
            layers = frozenset(bound[n] for n in layer_args) if layer_args else frozenset({INPUT})
            shown = ", ".join(_short(v) for v in bound.values())
            return Objective(factory(*args, **kwargs), layers, f"{factory.__name__}({shown})")

        return build

    return wrap


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{value[0]}…{value[-1]}]"
    return repr(value)


@functools.lru_cache(maxsize=64)
def _channel_index(channels: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The channels as an index on ``device``, made once: one sent to a GPU at every step would make the host wait."""
    return torch.tensor(channels, device=device)


def _per_element(channels: int | Sequence[int], act: torch.Tensor) -> torch.Tensor:
    """``act[i, channels[i]]`` for every element (an int: the same channel everywhere) of maps
    ``[N,C,H,W]`` or vectors ``[N,C]``; other shapes have no known channel axis."""
    if act.dim() not in (2, 4):
        raise unknown_layout(act)
    if isinstance(channels, int):
        return act[:, channels]
    index = _channel_index(tuple(channels), act.device)
    if len(index) != len(act):
        raise ValueError(f"{len(index)} channels for a batch of {len(act)}")
    return act[torch.arange(len(act), device=act.device), index]


@objective("layer")
def channel(layer: str, n: int | Sequence[int]):
    """Mean of channel ``n``'s map (a sequence: element ``i`` maximises channel ``n[i]``); of a vector output,
    the unit itself."""

    def inner(a):
        picked = _per_element(n, a[layer])
        return picked if picked.dim() == 1 else picked.flatten(1).mean(1)

    return inner


@objective("layer")
def neuron(layer: str, n: int | Sequence[int]):
    """The centre unit of channel ``n`` (a vector output: the unit itself)."""

    def inner(a):
        maps = _per_element(n, a[layer])
        if maps.dim() == 1:
            return maps
        return maps[:, maps.shape[1] // 2, maps.shape[2] // 2]

    return inner


@objective("layer")
def class_logit(layer: str, n: int | Sequence[int]):
    """The logit (pre-softmax score) ``S_c`` of class ``n`` at the model's output ``layer``."""
    return lambda a: _per_element(n, a[layer].flatten(1))


@objective("layer")
def deepdream(layer: str):
    """½ mean z² over the whole layer: amplifies whatever the layer already sees."""
    return lambda a: 0.5 * a[layer].flatten(1).pow(2).mean(1)


@objective("layer")
def inversion(layer: str, target: torch.Tensor):
    """−‖Φ(x) − Φ(x₀)‖² / ‖Φ(x₀)‖²: 0 when the layer's output equals ``target`` (Mahendran &
    Vedaldi); the normalisation makes one weight suit every layer."""

    def inner(a):
        target_ = target.to(a[layer].device)
        diff = (a[layer] - target_).flatten(1).pow(2).sum(1)
        return -diff / target_.flatten(1).pow(2).sum(1).clamp_min(1e-12)

    return inner


@objective("layer")
def diversity(layer: str):
    """−mean cosine similarity of each element's Gram matrix to the others' (Lucid): a batch of
    different patterns for one channel when added to its ``channel`` objective."""

    def inner(a):
        act = a[layer].flatten(2)
        gram = torch.nn.functional.normalize(torch.bmm(act, act.transpose(1, 2)).flatten(1), dim=1)
        similarity = gram @ gram.T
        count = max(len(act) - 1, 1)
        return -(similarity.sum(1) - similarity.diagonal()) / count

    return inner


@objective()
def l2(center: float = 0.5):
    """Mean squared distance of the image from ``center`` (subtract it: ``S_c − λ‖I‖²``)."""
    return lambda a: (a[INPUT] - center).flatten(1).pow(2).mean(1)


@objective()
def alpha_norm(alpha: float = 6.0, center: float = 0.5):
    """Mean ``|I − center|^α``: with a large α, penalises only extreme pixels."""
    return lambda a: (a[INPUT] - center).abs().pow(alpha).flatten(1).mean(1)


@objective()
def total_variation():
    """Mean absolute difference of neighbouring pixels: subtract it for smoother images."""

    def inner(a):
        image = a[INPUT]
        dy = (image[:, :, 1:] - image[:, :, :-1]).abs().flatten(1).mean(1)
        dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().flatten(1).mean(1)
        return dx + dy

    return inner
