"""LRP through zennit: parity with zennit's own attributor, conservation, refusals, the model untouched."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from cnnexplorer.core.attribution import compute_heatmap, compute_heatmaps
from cnnexplorer.core.attribution.lrp import input_bounds
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing

IMAGENET = Preprocessing(3, (64, 64), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def handle_of(module: nn.Module, preprocessing: Preprocessing = IMAGENET, classes: int = 1000) -> ModelHandle:
    return ModelHandle("test", module.eval(), torch.device("cpu"), preprocessing, [f"c{i}" for i in range(classes)],
                       "none", False)


def zennit_map(handle: ModelHandle, pixels: torch.Tensor, composite, target: int) -> torch.Tensor:
    """zennit's own LRP: its Gradient attributor on the normalised input, output relevance one-hot × logit."""
    mean = torch.tensor(handle.preprocessing.mean).view(1, -1, 1, 1)
    std = torch.tensor(handle.preprocessing.std).view(1, -1, 1, 1)
    inputs = ((pixels - mean) / std).requires_grad_(True)
    one_hot = torch.eye(handle.num_classes)[[target]]
    with Gradient(handle.module, composite) as attributor:
        _, relevance = attributor(inputs, lambda out: out * one_hot)
    return relevance.sum(1)[0] if len(pixels) == 1 else relevance.sum(1)


def assert_close_maps(ours, theirs, rtol=1e-4):
    """Equal up to float32 summation order: every pixel within ``rtol`` of the map's largest magnitude."""
    theirs = theirs.detach().numpy()
    assert abs(ours - theirs).max() <= rtol * abs(theirs).max()


def test_vgg16_equals_zennit_epsilon_gamma_box():
    torch.manual_seed(0)
    handle = handle_of(torchvision.models.vgg16())
    pixels = torch.rand(1, 3, 64, 64)
    ours = compute_heatmap(handle, pixels, "lrp", target=3, composite="epsilon-gamma-box")
    low, high = input_bounds(handle, (1, 3, 64, 64))
    theirs = zennit_map(handle, pixels, EpsilonGammaBox(low=low, high=high, canonizers=[VGGCanonizer()]), 3)
    assert_close_maps(ours.map, theirs)
    assert ours.info["relevance_sum"] == pytest.approx(float(theirs.sum()), rel=1e-4, abs=1e-6)


def test_resnet50_equals_zennit_epsilon_plus_flat_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    module = torchvision.models.resnet50()
    for m in module.modules():  # non-trivial batch-norm statistics, so merging them matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    module.train()
    handle = handle_of(module)
    pixels = torch.rand(1, 3, 64, 64)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        before = module.eval()(pixels)
    module.train()
    ours = compute_heatmap(handle, pixels, "lrp", target=7, composite="epsilon-plus-flat")
    assert module.training and all(m.training for m in module.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in module.modules())
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items()) and state.keys() == module.state_dict().keys()
    assert all(p.requires_grad and p.grad is None for p in module.parameters())
    with torch.no_grad():
        assert torch.equal(module.eval()(pixels), before)
    theirs = zennit_map(handle, pixels, EpsilonPlusFlat(canonizers=[ResNetCanonizer()]), 7)
    assert_close_maps(ours.map, theirs)


class Rectified(nn.Module):
    """Convolutions fed negative values (no ReLU between two), average pooling of both kinds, biases."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                                      nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("name", ["epsilon-plus-flat", "epsilon-gamma-box", "alpha2-beta1", "epsilon"])
def test_every_composite_equals_zennit_on_a_batch(name):
    """Each rule in its direct form (z⁺ with negative inputs, ε, flat, average pooling) or its general
    one (γ, α2β1, the box rule) gives zennit's own maps, image by image in a batch of three."""
    from zennit.composites import EpsilonAlpha2Beta1, LayerMapComposite, layer_map_base
    from zennit.rules import Epsilon
    from zennit.types import Convolution

    torch.manual_seed(4)
    handle = handle_of(Rectified(), Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), classes=5)
    pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    low, high = input_bounds(handle, tuple(pixels.shape))
    theirs = {"epsilon-plus-flat": EpsilonPlusFlat(), "epsilon-gamma-box": EpsilonGammaBox(low=low, high=high),
              "alpha2-beta1": EpsilonAlpha2Beta1(),
              "epsilon": LayerMapComposite(layer_map_base() + [((Convolution, nn.Linear), Epsilon())])}[name]
    expected = zennit_map(handle, pixels, theirs, 2)
    ours = compute_heatmaps(handle, pixels, "lrp", target=2, composite=name)
    for i, heatmap in enumerate(ours):
        assert_close_maps(heatmap.map, expected[i])


def test_a_kept_model_follows_its_weights_and_hooks_and_serves_a_nested_call():
    """The prepared shadow kept between calls is rebuilt when a weight changes in place or a hook comes or
    goes, and a call made while it is in use prepares its own."""
    from cnnexplorer.core.attribution.lrp import lrp_model

    from zennit.canonizers import SequentialMergeBatchNorm

    torch.manual_seed(8)
    rectified = Rectified()
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), rectified).eval()
    handle = handle_of(net, Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), classes=5)
    pixels = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    first = compute_heatmap(handle, pixels, "lrp", target=1).map
    assert_close_maps(compute_heatmap(handle, pixels, "lrp", target=1).map, torch.from_numpy(first), rtol=1e-6)
    hook = rectified.features[4].register_forward_hook(lambda module, args, output: output * 0.5)
    halved = compute_heatmap(handle, pixels, "lrp", target=1).map
    hook.remove()
    assert abs(halved - first).max() > 1e-3 * abs(first).max()
    assert_close_maps(compute_heatmap(handle, pixels, "lrp", target=1).map, torch.from_numpy(first), rtol=1e-6)
    with torch.no_grad():  # the merged weights depend on these: the kept ones are stale
        net[1].running_var.mul_(4)
        net[1].running_mean.add_(0.3)
    changed = compute_heatmap(handle, pixels, "lrp", target=1)
    assert_close_maps(changed.map, zennit_map(handle, pixels, EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()]), 1))
    with lrp_model(handle, "epsilon-plus-flat", tuple(pixels.shape)):
        nested = compute_heatmap(handle, pixels, "lrp", target=1)
    assert_close_maps(nested.map, torch.from_numpy(changed.map), rtol=1e-6)


def bias_free_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 4, bias=False))


def test_epsilon_conserves_the_logit_on_a_bias_free_relu_net_and_why_not_negates_it():
    handle = handle_of(bias_free_net(), Preprocessing(3, (32, 32), (0.5,) * 3, (0.25,) * 3), classes=4)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = compute_heatmaps(handle, pixels, "lrp", composite="epsilon")
    with torch.no_grad():
        logits = handle.pixel_model()(pixels)
    for i, heatmap in enumerate(maps):
        assert heatmap.info["logit"] == pytest.approx(float(logits[i].max()), rel=1e-6)
        assert heatmap.info["relevance_sum"] == pytest.approx(heatmap.info["logit"], rel=0.01)
        assert heatmap.signed and heatmap.map.shape == (32, 32)
    against = compute_heatmap(handle, pixels[:1], "lrp", target=maps[0].target, negative=True, composite="epsilon")
    assert against.info["relevance_sum"] == pytest.approx(-maps[0].info["relevance_sum"], rel=1e-5)


class Recorder:
    """A hook's owner that cannot be deep-copied (it holds a lock), as a GUI view's hooks are."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = 0

    def hook(self, module, args, output):
        self.calls += 1


def test_the_models_own_hooks_run_on_the_copy_and_stay_on_the_model_alone():
    net = bias_free_net()
    recorder = Recorder()
    handle = net[0].register_forward_hook(recorder.hook)
    pre = Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3)
    compute_heatmap(handle_of(net, pre, 4), torch.rand(1, 3, 16, 16), "lrp")
    assert recorder.calls == 1 and list(net[0]._forward_hooks.values()) == [recorder.hook]
    handle.remove()


class Residual(nn.Module):
    """A residual block written in forward code, as the built-ins and timm write them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv(x)
        out += x
        return torch.relu(out) * torch.sigmoid(x.mean((2, 3), keepdim=True))


class ReusedInPlace(nn.Module):
    """An in-place ReLU on a tensor a convolution has already taken (and its rule keeps)."""

    def __init__(self, inplace: bool):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=inplace)
        self.head = nn.Sequential(nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, bias=False))

    def forward(self, x):
        h = self.stem(x)
        branch = self.conv(h)
        return self.head(branch + self.relu(h))


def test_an_in_place_relu_after_a_kept_input_gives_the_out_of_place_map():
    pre, pixels = Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), torch.rand(1, 3, 16, 16)
    maps = []
    for inplace in (False, True):
        torch.manual_seed(10)
        net = ReusedInPlace(inplace)
        maps.append(compute_heatmap(handle_of(net, pre, 3), pixels, "lrp", target=0, composite="epsilon"))
        assert net.relu.inplace is inplace
    assert_close_maps(maps[1].map, torch.from_numpy(maps[0].map), rtol=1e-6)
    assert maps[1].info["relevance_sum"] == pytest.approx(maps[1].info["logit"], rel=0.01)


class Pooled(nn.Module):
    """Convolutions, then a global average written as a module, ``F.adaptive_avg_pool2d`` or ``x.mean``."""

    def __init__(self, pool: str):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU6(), nn.Conv2d(6, 8, 3, padding=1),
                                      nn.ReLU6())
        self.pool = pool
        self.module_pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.features(x)
        if self.pool == "module":
            x = self.module_pool(x)
        elif self.pool == "functional":
            x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        else:
            x = x.mean([2, 3])
        return self.head(torch.flatten(x, 1))


def test_a_spatial_average_in_forward_code_gets_the_pooling_modules_rule():
    """MobileNetV2 pools with ``F.adaptive_avg_pool2d`` and ShuffleNet with ``x.mean([2, 3])``: their maps
    are those of the same net pooling with a module, which zennit gives its ``Norm`` rule."""
    pre, pixels = Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), torch.rand(2, 3, 16, 16)
    maps = {}
    for pool in ("module", "functional", "mean"):
        torch.manual_seed(11)
        maps[pool] = compute_heatmaps(handle_of(Pooled(pool), pre, 3), pixels, "lrp", target=1)
    torch.manual_seed(11)
    theirs = zennit_map(handle_of(Pooled("module"), pre, 3), pixels, EpsilonPlusFlat(), 1)
    for pool in maps:
        for i, heatmap in enumerate(maps[pool]):
            assert_close_maps(heatmap.map, theirs[i])


def test_lrp_leaves_no_graph_for_the_garbage_collector_to_find():
    """Every layer call's rule frees with the pass: nothing holds an autograd node in a reference cycle."""
    import gc

    handle = handle_of(Rectified(), Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), classes=5)
    pixels = torch.rand(2, 3, 16, 16)

    def graph_tensors() -> int:
        return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor) and o.grad_fn is not None)

    compute_heatmaps(handle, pixels, "lrp", composite="epsilon")
    gc.collect()
    gc.disable()
    try:
        before = graph_tensors()
        for composite in ("epsilon", "epsilon-plus-flat", "alpha2-beta1"):
            compute_heatmaps(handle, pixels, "lrp", composite=composite)
        assert graph_tensors() == before
    finally:
        gc.enable()


def test_local_response_normalisation_passes_the_relevance_on():
    """AlexNet's and ZFNet's LRN layers (the course nets) pass relevance on unchanged: ε still conserves."""
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.LocalResponseNorm(5), nn.Conv2d(8, 8, 3, bias=False),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3, bias=False))
    handle = handle_of(net, Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), classes=3)
    heatmap = compute_heatmap(handle, torch.rand(1, 3, 16, 16), "lrp", composite="epsilon")
    assert heatmap.info["relevance_sum"] == pytest.approx(heatmap.info["logit"], rel=0.01)


def test_a_residual_sum_and_a_gate_in_forward_code_keep_the_relevance():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), Residual(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3, bias=False))
    handle = handle_of(net, Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), classes=3)
    heatmap = compute_heatmap(handle, torch.rand(1, 3, 16, 16), "lrp", composite="epsilon")
    assert heatmap.info["relevance_sum"] == pytest.approx(heatmap.info["logit"], rel=0.01)


class Misordered(nn.Module):
    """A batch norm registered right after a convolution but fed its ReLU: module order is not data flow."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x):
        return self.head(self.norm(torch.relu(self.conv(x))))


def test_a_batch_norm_holding_its_activation_is_merged_like_a_plain_one():
    """timm's BatchNormAct2d (the norm and its ReLU in one module) gives the map of BatchNorm2d + ReLU."""
    from timm.layers import BatchNormAct2d

    torch.manual_seed(6)
    conv, head = nn.Conv2d(3, 4, 3), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    plain = nn.BatchNorm2d(4)
    with torch.no_grad():
        plain.running_mean.uniform_(-0.2, 0.2)
        plain.weight.uniform_(0.5, 1.5)
    fused = BatchNormAct2d(4, act_layer=nn.ReLU)
    fused.load_state_dict(plain.state_dict())
    pre, pixels = Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3), torch.rand(1, 3, 16, 16)
    ours = compute_heatmap(handle_of(nn.Sequential(conv, fused, head), pre, 2), pixels, "lrp", target=0)
    reference = compute_heatmap(handle_of(nn.Sequential(conv, plain, nn.ReLU(), head), pre, 2), pixels, "lrp", target=0)
    assert_close_maps(ours.map, torch.from_numpy(reference.map), rtol=1e-5)


def small_densenet(shifted: bool) -> nn.Module:
    """torchvision's DenseNet, small, with batch norms that scale channels up, down and by negative
    factors; without shifts or biases (``shifted=False``) ε must conserve the relevance exactly."""
    torch.manual_seed(12)
    net = torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=3)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(-1.5, 1.5)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.3, 0.3) if shifted else module.bias.zero_()
                module.running_mean.uniform_(-0.3, 0.3) if shifted else module.running_mean.zero_()
            elif isinstance(module, nn.Linear):
                module.bias.zero_()
    return net.eval()


def test_densenet_pre_activation_norms_move_through_their_relus():
    """DenseNet's norm → ReLU → conv (and its last norm → ReLU → pool → classifier): the model computes
    what it did, ε conserves the logit, and the model is left as it was."""
    pre = Preprocessing(3, (32, 32), (0.5,) * 3, (0.25,) * 3)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(13))
    for shifted in (False, True):
        net = small_densenet(shifted)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.no_grad():
            logits = handle_of(net, pre, 3).pixel_model()(pixels)
        maps = compute_heatmaps(handle_of(net, pre, 3), pixels, "lrp", target=2, composite="epsilon")
        for i, heatmap in enumerate(maps):
            assert heatmap.info["logit"] == pytest.approx(float(logits[i, 2]), rel=1e-4, abs=1e-6)
            if not shifted:
                assert heatmap.info["relevance_sum"] == pytest.approx(heatmap.info["logit"], rel=0.01)
            assert np.isfinite(heatmap.map).all() and abs(heatmap.map).max() > 0
        assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    with torch.no_grad():
        net.features.transition1.norm.weight[1] = 0
    with pytest.raises(UserError, match="batch norm features.transition1.norm scales a channel by zero"):
        compute_heatmap(handle_of(net, pre, 3), pixels[:1], "lrp")


def test_models_without_a_rule_are_refused_with_the_reason():
    pre = Preprocessing(3, (16, 16), (0.5,) * 3, (0.25,) * 3)
    pre_activation = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UserError, match="batch norm 2 does not directly follow a convolution"):
        compute_heatmap(handle_of(pre_activation, pre, 2), torch.rand(1, 3, 16, 16), "lrp")
    layer_norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(4, 2))
    with pytest.raises(UserError, match="1 is a GroupNorm"):
        compute_heatmap(handle_of(layer_norm, pre, 2), torch.rand(1, 3, 16, 16), "lrp")
    with pytest.raises(UserError, match="batch norm norm is not fed by conv"):
        compute_heatmap(handle_of(Misordered(), pre, 2), torch.rand(1, 3, 16, 16), "lrp")
    dense = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 1), nn.Identity(), nn.ReLU(),
                          nn.Conv2d(6, 8, 1), nn.BatchNorm2d(6))
    with pytest.raises(UserError, match="batch norm 6 does not follow 5"):
        compute_heatmap(handle_of(dense, pre, 2), torch.rand(1, 3, 16, 16), "lrp")
    with pytest.raises(UserError, match="composite"):
        compute_heatmap(handle_of(bias_free_net(), pre, 4), torch.rand(1, 3, 16, 16), "lrp", composite="z-plus")


@pytest.mark.parametrize("spec", ["builtin:shapes", "builtin:lenet5"])
def test_builtins_explain_their_top_class(spec):
    from cnnexplorer.core.jobs import drive
    from cnnexplorer.core.models import open_model

    handle = drive(open_model(spec, "cpu"))
    pixels = torch.rand(1, *handle.input_size, generator=torch.Generator().manual_seed(0))
    heatmap = compute_heatmap(handle, pixels, "lrp", composite="epsilon-gamma-box")
    assert heatmap.map.shape == handle.input_size[1:] and abs(heatmap.map).max() > 0
    assert heatmap.info["composite"] == "epsilon-gamma-box"
