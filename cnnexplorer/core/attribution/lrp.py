"""Layer-wise relevance propagation (Bach et al. 2015) through zennit's composites and canonizers.

The relevance of the target's logit is passed back layer by layer with a rule per layer type,
so that (up to the rules' stabilisers and biases) the input's relevances sum to the logit.
zennit's composites choose the rules and its canonizers merge batch norms; ``lrp_engine`` runs
the rules. The model itself is never touched: rules and merges act on a *shadow* of the model, a
copy of its module tree whose parameters and buffers are new tensor objects sharing the
original's storage (no weights are copied). Another worker using the model meanwhile, an error or
a cancel can therefore never leave a rule or a merged batch norm behind.

Residual sums, gates and averages written in ``forward`` code get their rules from ``lrp_rules``;
DenseNet's pre-activation batch norms move into the layer after their ReLU (``lrp_canonizers``).
A model LRP cannot explain correctly is refused rather than shown with a wrong map: a batch norm
neither merged into the layer before it nor moved into the one after (another model's
pre-activation block), another normalisation (layer/group norm), or a product of two full layer
outputs (attention).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.attribution.lrp_canonizers import Moved, PreActivationMerge, preactivation_pairs
from cnnexplorer.core.attribution.lrp_engine import ruled
from cnnexplorer.core.attribution.lrp_rules import mixing_rules
from cnnexplorer.core.attribution.targets import TargetSpec, Targets, resolve_targets
from cnnexplorer.core.checks import check_choice
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layouts import require_gradients
from cnnexplorer.core.model_handle import ModelHandle

COMPOSITES = ("epsilon-plus-flat", "epsilon-gamma-box", "alpha2-beta1", "epsilon")
"""zennit's EpsilonPlusFlat, EpsilonGammaBox and EpsilonAlpha2Beta1, and the plain ε rule everywhere."""

_OTHER_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def canonizers_for(module: nn.Module) -> list:
    """zennit's canonizers for the model's family: VGG's, else a batch-norm merge of ``merged_pairs``
    (ResNet, DenseNet, MobileNet, EfficientNet, timm's nets, the built-ins) and, for DenseNet, its
    pre-activation batch norms moved through their ReLUs (``lrp_canonizers``). Residual sums, gates
    and averages written in ``forward`` code get their rules from ``lrp_rules``: for torchvision's
    ResNet that is the rule zennit's ResNet canonizer gives its ``Sum`` module, without stacking the
    two branches to sum them."""
    from torchvision.models import VGG
    from zennit.canonizers import NamedMergeBatchNorm
    from zennit.torchvision import VGGCanonizer

    if isinstance(module, VGG):
        return [VGGCanonizer()]
    after = preactivation_pairs(module)
    return ([NamedMergeBatchNorm([((linear,), norm) for linear, norm in merged_pairs(module)])]
            + ([PreActivationMerge(after)] if after else []))


def merged_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """``batch_norm_pairs`` less the batch norms ``preactivation_pairs`` moves into the layer after them."""
    moved = {norm for norm, _ in preactivation_pairs(module)}
    return [(linear, norm) for linear, norm in batch_norm_pairs(module) if norm not in moved]


def batch_norm_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """``(layer, batch norm)`` names: each batch norm right after a convolution or linear layer in module
    order, as zennit's ``SequentialMergeBatchNorm`` pairs them, except that a batch norm holding modules
    of its own (timm's ``BatchNormAct2d``, its activation inside) counts as one layer, not as its parts."""
    from zennit.types import BatchNorm
    from zennit.types import Linear as LinearTypes

    pairs: list[tuple[str, str]] = []
    last: list[tuple[str, nn.Module]] = []

    def walk(name: str, child: nn.Module) -> None:
        children = list(child.named_children())
        if children and not isinstance(child, BatchNorm):
            for sub, grandchild in children:
                walk(f"{name}.{sub}" if name else sub, grandchild)
            return
        if isinstance(child, BatchNorm) and last and isinstance(last[-1][1], LinearTypes):
            pairs.append((last[-1][0], name))
        last.append((name, child))

    walk("", module)
    return pairs


def input_bounds(handle: ModelHandle, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Pixels 0 and 1 in the model's normalised input space (EpsilonGammaBox's ZBox bounds)."""
    mean, std = _normalisation(handle)
    return ((0 - mean) / std).expand(shape), ((1 - mean) / std).expand(shape)


def make_composite(name: str, canonizers: list, bounds: tuple[Tensor, Tensor]):
    """The zennit composite ``name`` (one of ``COMPOSITES``) with ``canonizers``. Local response
    normalisation (AlexNet's and ZFNet's) passes relevance on unchanged, as the LRP toolbox treats it
    (Lapuschkin et al. 2016): it rescales activations but mixes no evidence between positions."""
    from zennit import composites as zc
    from zennit.rules import Epsilon, Pass
    from zennit.types import Convolution

    check_choice("the LRP composite (--composite)", name, COMPOSITES)
    extra = [(nn.LocalResponseNorm, Pass())]
    if name == "epsilon-plus-flat":
        return zc.EpsilonPlusFlat(layer_map=extra, canonizers=canonizers)
    if name == "epsilon-gamma-box":
        return zc.EpsilonGammaBox(low=bounds[0], high=bounds[1], layer_map=extra, canonizers=canonizers)
    if name == "alpha2-beta1":
        return zc.EpsilonAlpha2Beta1(layer_map=extra, canonizers=canonizers)
    return zc.LayerMapComposite(extra + zc.layer_map_base() + [((Convolution, nn.Linear), Epsilon())],
                                canonizers=canonizers)


def shadow(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree in eval mode whose parameters (not requiring gradients) and buffers
    share the original's storage: rewriting their ``.data`` (as canonizers do) leaves the original alone.
    The hooks the model has are the same callables in the copy's own registries (a hook bound to an
    object that cannot be copied, a view holding a lock, stays usable)."""
    memo: dict[int, object] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        twin = tensor.detach()
        memo[id(tensor)] = nn.Parameter(twin, requires_grad=False) if isinstance(tensor, nn.Parameter) else twin
    for child in module.modules():  # hooks are kept (an intervention applies here too) but not copied
        for key, value in vars(child).items():
            if "hooks" in key and isinstance(value, dict):
                memo[id(value)] = type(value)(value)
    try:
        twin_module = copy.deepcopy(module, memo)
    except Exception as exc:  # a module holding something that cannot be copied (a lock, a C handle)
        raise UserError(f"LRP works on a copy of the model's layers and this model cannot be copied ({exc}); "
                        "use another heatmap method such as gradcam") from None
    return twin_module.eval()


def _refuse_mismatched_pairs(model: nn.Module) -> None:
    """A batch norm is merged into the layer before it *in module order*; where that layer is not what
    feeds it (a pre-activation block: a norm following the previous block's conv), refuse before merging."""
    modules = dict(model.named_modules())
    for linear, norm in merged_pairs(model):
        before = modules[linear]
        width = getattr(before, "out_channels", getattr(before, "out_features", None))
        if width != modules[norm].num_features:
            raise UserError(f"LRP cannot explain this model: batch norm {norm} does not follow {linear}, the layer "
                            "before it, so no canonizer can merge it; use another heatmap method such as gradcam")


def _refuse_unmerged(model: nn.Module, canonized: list) -> None:
    from zennit.canonizers import MergeBatchNorm
    from zennit.types import BatchNorm

    merged = {id(h.batch_norm) for h in canonized if isinstance(h, (MergeBatchNorm, Moved))}
    for name, child in model.named_modules():
        if isinstance(child, BatchNorm) and id(child) not in merged:
            raise UserError(f"LRP cannot explain this model: batch norm {name} does not directly follow a "
                            "convolution or linear layer (a pre-activation block), so no canonizer merges it and its "
                            "relevance would be wrong; use another heatmap method such as gradcam")
        if isinstance(child, _OTHER_NORMS):
            raise UserError(f"LRP cannot explain this model: {name} is a {type(child).__name__}, which has no "
                            "relevance rule; use another heatmap method such as gradcam")


@dataclass
class LRPModel:
    """A canonized, hooked shadow of the model taking normalised input, and the normalisation."""

    module: nn.Module
    mean: Tensor
    std: Tensor

    def normalise(self, pixels: Tensor) -> Tensor:
        return ((pixels - self.mean) / self.std).detach().requires_grad_(True)

    def forward(self, inputs: Tensor) -> Tensor:
        """Logits of the normalised ``inputs``, sums and gates in the ``forward`` code given their rules."""
        with mixing_rules():
            return self.module(inputs)


@contextlib.contextmanager
def lrp_model(handle: ModelHandle, composite: str, shape: tuple[int, ...]) -> Iterator[LRPModel]:
    """The model's shadow with ``composite``'s rules and the family's canonizers, for the block.

    The prepared shadow (merged batch norms, the rules' clamped weights) is kept for the next call on
    the same model while its weights, buffers and hooks stay the same: preparing it is a pass over every
    weight, a tenth of a ResNet's forward and backward. A call finding it in use prepares its own."""
    require_gradients(handle.module, "LRP")
    key = (composite, shape, _fingerprint(handle.module))
    kept = _PREPARED.get(id(handle.module))
    if kept is not None and kept.model() is handle.module and kept.key == key and kept.lock.acquire(blocking=False):
        try:
            with torch.enable_grad():
                yield LRPModel(kept.module, *_normalisation(handle))
        finally:
            kept.lock.release()
        return
    with contextlib.ExitStack() as stack:
        twin = _prepare(handle, composite, shape, stack)
        with torch.enable_grad():
            yield LRPModel(twin, *_normalisation(handle))
        if key == (composite, shape, _fingerprint(handle.module)):
            _keep(_Prepared(weakref.ref(handle.module), key, twin, stack.pop_all(), threading.Lock()))


def _prepare(handle: ModelHandle, composite: str, shape: tuple[int, ...], stack: contextlib.ExitStack) -> nn.Module:
    twin = shadow(handle.module)
    _refuse_mismatched_pairs(twin)
    rules = make_composite(composite, canonizers_for(twin), input_bounds(handle, shape))
    canonized = stack.enter_context(ruled(twin, rules))
    _refuse_unmerged(twin, canonized)
    stack.enter_context(_merges_checked(twin, canonized))
    return twin


@dataclass
class _Prepared:
    """A prepared shadow: its model, what it was prepared for, who uses it, and the context of its rules
    and merges (kept: closing it, as dropping it would, takes them off the shadow)."""

    model: weakref.ref
    key: tuple
    module: nn.Module
    undo: contextlib.ExitStack
    lock: threading.Lock


_PREPARED: "collections.OrderedDict[int, _Prepared]" = collections.OrderedDict()
_KEPT = 2
"""Prepared shadows kept, the latest models' (a shadow holds its merged and clamped weights)."""


def _keep(prepared: _Prepared) -> None:
    """Keep ``prepared``, dropping its model's previous one and the oldest beyond ``_KEPT``; a dropped one
    not in use is closed now (its rules and merges undone), not left to the garbage collector's finalisers."""
    model = id(prepared.model())
    dropped = [_PREPARED.pop(model, None)]
    _PREPARED[model] = prepared
    while len(_PREPARED) > _KEPT:
        dropped.append(_PREPARED.popitem(last=False)[1])
    for entry in dropped:
        if entry is not None and entry.lock.acquire(blocking=False):
            entry.undo.close()


def _fingerprint(model: nn.Module) -> tuple:
    """What a prepared shadow depends on: every parameter's and buffer's storage and version (an
    optimiser step or a loaded state bumps them) and the hooks registered on every layer."""
    tensors = tuple((t.data_ptr(), t._version, t.dtype, t.shape) for t in itertools.chain(model.parameters(), model.buffers()))
    hooks = tuple((tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for m in model.modules())
    return tensors, hooks


@contextlib.contextmanager
def _merges_checked(model: nn.Module, canonized: list) -> Iterator[None]:
    """Hooks on the shadow that stop the forward pass when a merged batch norm is not fed by the layer
    merged into it (module order and data flow disagree), for the block."""
    from zennit.canonizers import MergeBatchNorm

    names = {id(m): n for n, m in model.named_modules()}
    latest: dict[int, Tensor] = {}  # the tensors themselves: a freed output's id may be reused
    handles = []

    def remember(module, args, output):
        latest[id(module)] = output

    def check(linears):
        def hook(module, args):
            if not any(latest.get(id(linear)) is args[0] for linear in linears):
                raise UserError(f"LRP cannot explain this model: batch norm {names[id(module)]} is not fed by "
                                f"{names[id(linears[0])]}, the layer merged into it, so its relevance would be wrong; "
                                "use another heatmap method such as gradcam")
        return hook

    try:
        for merge in (h for h in canonized if isinstance(h, MergeBatchNorm)):
            handles += [linear.register_forward_hook(remember) for linear in merge.linears]
            handles.append(merge.batch_norm.register_forward_pre_hook(check(merge.linears), prepend=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _normalisation(handle: ModelHandle) -> tuple[Tensor, Tensor]:
    pre = handle.preprocessing
    return tuple(torch.tensor(v, dtype=torch.float32, device=handle.device).view(1, -1, 1, 1) for v in (pre.mean, pre.std))


def output_relevance(logits: Tensor, targets: Targets) -> Tensor:
    """The relevance put on the logits: the target's logit (for a score of several logits, each
    logit times its derivative), negated for "why not"."""
    with torch.enable_grad():
        live = logits.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(targets.scores(live).sum(), live)
    return slope * logits.detach()


def relevance(model: LRPModel, pixels: Tensor, target: TargetSpec | Targets,
              negative: bool = False) -> tuple[Tensor, Tensor, Targets]:
    """Input relevance ``[N,C,H,W]`` of each image's target (in the normalised input, where the first
    layer's rule puts it), the logits and the resolved targets."""
    inputs = model.normalise(pixels)
    logits = model.forward(inputs)
    targets = resolve_targets(target, logits.detach(), negative)
    (found,) = torch.autograd.grad(logits, inputs, output_relevance(logits, targets))
    return found, logits.detach(), targets


def lrp(handle: ModelHandle, pixels: Tensor, target: TargetSpec = None, negative: bool = False,
        composite: str = "epsilon-plus-flat") -> Job[list[Heatmap]]:
    """LRP maps (relevance summed over colour channels, signed) for a batch ``[N,C,H,W]`` in [0,1];
    each ``Heatmap.info`` holds the relevance sum and the target's logit it should match."""
    yield Progress(0, 1, f"LRP ({composite})")
    pixels = pixels.to(handle.device)
    with lrp_model(handle, composite, tuple(pixels.shape)) as model:
        found, logits, targets = relevance(model, pixels, target, negative)
    return relevance_heatmaps(found, logits, targets, "lrp", composite)


def relevance_heatmaps(found: Tensor, logits: Tensor, targets: Targets, method: str, composite: str,
                       layer: str | None = None) -> list[Heatmap]:
    """One signed heatmap per image with the relevance sum and the explained logit in its ``info``."""
    maps = found.detach().sum(dim=1).float().cpu().numpy()
    scores = targets.scores(logits).float().cpu()
    return [Heatmap(maps[i], True, targets.index(i), targets.reported_score(i, logits), method, layer, targets.negative,
                    info={"composite": composite, "relevance_sum": float(maps[i].sum(dtype="float64")),
                          "logit": float(scores[i])})
            for i in range(maps.shape[0])]
