"""Heatmap methods on tiny hand-built models and random-init torchvision nets: exact values
where they can be computed by hand, captum as a reference elsewhere, and no side effects."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnexplorer.core.attribution import METHODS, compute_heatmap, compute_heatmaps, render_heatmap
from cnnexplorer.core.attribution.guided import guided_gradients
from cnnexplorer.core.attribution.heatmap import Heatmap
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import load_image
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import load_model
from cnnexplorer.resource_files import resource_path

CHEAP = {"smoothgrad": {"samples": 4}, "ig": {"steps": 4}, "occlusion": {"window": 16, "stride": 16}}


def make_handle(module: nn.Module, channels: int = 3, size: int = 32, classes: int = 10) -> ModelHandle:
    """A handle whose normalisation is the identity, so pixels go into the module unchanged."""
    pre = Preprocessing(channels, (size, size), (0.0,) * channels, (1.0,) * channels)
    return ModelHandle("test", module, torch.device("cpu"), pre, [f"c{i}" for i in range(classes)], "none", False)


def test_gradcam_on_a_hand_built_model_equals_the_hand_computed_map():
    # conv 1x1 (weights 2 and -1) -> global mean -> linear [[3, 1], [0, 1]]: the gradient of class 0
    # w.r.t. A_k is W[0,k]/16 everywhere, so Grad-CAM = ReLU(3/16 * 2x + 1/16 * (-x)) = 5x/16.
    conv = nn.Conv2d(1, 2, 1, bias=False)
    linear = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        linear.weight.copy_(torch.tensor([[3.0, 1.0], [0.0, 1.0]]))
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    handle = make_handle(model, channels=1, size=4, classes=2)
    x = torch.rand(1, 4, 4)
    heatmap = compute_heatmap(handle, x, "gradcam", target=0)
    assert heatmap.layer == "0"  # found automatically: the last layer with a spatial map
    np.testing.assert_allclose(heatmap.map, 5 * x[0].numpy() / 16, rtol=1e-5, atol=1e-7)
    # class 1: ReLU(0 * 2x + 1/16 * (-x)) = 0 everywhere; "why not" negates the weights: x/16
    np.testing.assert_allclose(compute_heatmap(handle, x, "gradcam", target=1).map, 0.0, atol=1e-7)
    np.testing.assert_allclose(compute_heatmap(handle, x, "gradcam", target=1, negative=True).map,
                               x[0].numpy() / 16, rtol=1e-5, atol=1e-7)


def _state(module: nn.Module):
    return ({k: v.clone() for k, v in module.state_dict().items()}, [m.training for m in module.modules()],
            [p.requires_grad for p in module.parameters()], [p.grad for p in module.parameters()],
            [getattr(m, "inplace", None) for m in module.modules()])


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in module.modules())


@pytest.mark.parametrize("method", list(METHODS))
def test_a_map_changes_no_weight_mode_flag_or_hook(method):
    torch.manual_seed(0)
    handle = load_model("builtin:shapes", "cpu")
    module = handle.module
    module.train()
    module.features[0].eval()
    module.classifier.weight.requires_grad_(False)
    before = _state(module)
    heatmap = compute_heatmap(handle, torch.rand(3, 64, 64), method, **CHEAP.get(method, {}))
    after = _state(module)
    assert heatmap.map.shape[:2] == (64, 64) and np.isfinite(heatmap.map).all()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    assert _hook_count(module) == 0


def test_guided_backprop_and_deconvnet_on_resnet18_match_captum_and_differ_from_the_gradient():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    handle = make_handle(model, size=64)
    x = torch.rand(2, 3, 64, 64)
    inplace = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    from captum.attr import Deconvolution, GuidedBackprop

    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x_ref = x.clone().requires_grad_(True)
    plain = torch.autograd.grad(model(x_ref)[:, 3].sum(), x_ref)[0]
    for deconv, captum_class in ((False, GuidedBackprop), (True, Deconvolution)):
        ours, _, _ = guided_gradients(handle, x, 3, deconvnet=deconv)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = captum_class(reference).attribute(x.clone(), target=3)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
        assert (ours - plain).abs().max() > 0.1 * plain.abs().max()
    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == inplace
    heatmap = compute_heatmap(handle, x[:1], "guided")
    assert heatmap.map.shape == (64, 64) and heatmap.map.max() > 0


class FunctionalReLUNet(nn.Module):
    """ReLU as ``F.relu`` calls in ``forward``: no ReLU module to hook."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def test_guided_backprop_applies_its_rule_to_functional_relus():
    torch.manual_seed(1)
    handle = make_handle(FunctionalReLUNet().eval(), channels=1, size=8, classes=2)
    x = torch.rand(1, 1, 8, 8)
    guided, _, _ = guided_gradients(handle, x, 0)
    # by hand: guided ReLU = keep positive gradients where the ReLU's output is positive
    conv1, conv2, fc = handle.module.conv1, handle.module.conv2, handle.module.fc
    a1 = conv1(x).relu()
    a2 = conv2(a1).relu()
    g2 = fc.weight[0].view(1, 4, 1, 1).expand_as(a2) / 64
    g2 = g2.clamp(min=0) * (a2 > 0)
    a1_leaf = a1.detach().requires_grad_(True)
    (g1,) = torch.autograd.grad(conv2(a1_leaf), a1_leaf, g2)
    g1 = g1.clamp(min=0) * (a1 > 0)
    x_leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(conv1(x_leaf), x_leaf, g1)
    torch.testing.assert_close(guided, expected, rtol=1e-4, atol=1e-7)


def test_integrated_gradients_and_input_x_gradient_match_captum():
    from captum.attr import InputXGradient, IntegratedGradients

    torch.manual_seed(2)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    handle = make_handle(model, size=32)
    x = torch.rand(1, 3, 32, 32)
    ours = compute_heatmap(handle, x, "ig", target=4, steps=8)
    theirs = IntegratedGradients(model).attribute(x, torch.zeros_like(x), target=4, n_steps=8,
                                                  method="riemann_middle")
    np.testing.assert_allclose(ours.map, theirs.sum(dim=1)[0].detach().numpy(), rtol=1e-3, atol=1e-6)
    ixg = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=4).sum(dim=1)[0]
    np.testing.assert_allclose(compute_heatmap(handle, x, "inputxgrad", target=4).map, ixg.detach().numpy(),
                               rtol=1e-4, atol=1e-7)


def test_why_not_flips_signed_maps_and_callable_targets_work():
    torch.manual_seed(3)
    handle = load_model("builtin:shapes", "cpu")
    x = torch.rand(3, 64, 64)
    plus = compute_heatmap(handle, x, "inputxgrad", target=2)
    minus = compute_heatmap(handle, x, "inputxgrad", target=2, negative=True)
    np.testing.assert_allclose(minus.map, -plus.map, rtol=1e-5, atol=1e-7)
    assert minus.negative and minus.target == 2
    by_callable = compute_heatmap(handle, x, "inputxgrad", target=lambda logits: logits[2])
    np.testing.assert_allclose(by_callable.map, plus.map, rtol=1e-5, atol=1e-7)


def test_batched_maps_equal_one_at_a_time_and_render_blends():
    torch.manual_seed(4)
    handle = load_model("builtin:shapes", "cpu")
    x = torch.rand(3, 3, 64, 64)
    together = compute_heatmaps(handle, x, "scorecam", batch=40)
    for image, heatmap in zip(x, together):
        np.testing.assert_allclose(compute_heatmap(handle, image, "scorecam", batch=7).map, heatmap.map,
                                   rtol=1e-4, atol=1e-6)
    picture = render_heatmap(x[0], together[0], alpha=0.0)
    np.testing.assert_array_equal(picture, (x[0].permute(1, 2, 0) * 255).round().byte().numpy())
    assert not np.array_equal(render_heatmap(x[0], together[0], alpha=0.7), picture)


def test_user_errors_name_the_fix():
    handle = load_model("builtin:shapes", "cpu")
    x = torch.rand(3, 64, 64)
    with pytest.raises(UserError, match="choose one of"):
        compute_heatmap(handle, x, "magic")
    with pytest.raises(UserError, match="out of range"):
        compute_heatmap(handle, x, "gradcam", target=6)
    with pytest.raises(UserError, match="does not take"):
        compute_heatmap(handle, x, "saliency", steps=3)
    with pytest.raises(UserError, match="not a feature map"):
        compute_heatmap(handle, x, "gradcam", layer="classifier")
    with pytest.raises(UserError, match="leave out the layer"):
        compute_heatmap(handle, x, "saliency", layer="features")


def test_deletion_and_insertion_curves_run_between_the_image_and_its_baselines():
    from cnnexplorer.core.attribution import curves_job
    from cnnexplorer.core.attribution.blur import gaussian_blur
    from cnnexplorer.core.jobs import drive

    handle = load_model("builtin:shapes", "cpu")
    x = torch.rand(1, 3, 64, 64)
    heatmap = compute_heatmap(handle, x, "gradcam", target=2)
    deletion, insertion = drive(curves_job(handle, x, heatmap, steps=8))

    def prob(pixels):
        with torch.no_grad():
            return float(torch.softmax(handle.pixel_model()(pixels), dim=1)[0, 2])

    assert len(deletion.scores) == 9 and deletion.fractions[0] == 0 and deletion.fractions[-1] == 1
    assert deletion.scores[0] == pytest.approx(prob(x), rel=1e-4)
    assert deletion.scores[-1] == pytest.approx(prob(torch.zeros_like(x)), rel=1e-4)
    assert insertion.scores[0] == pytest.approx(prob(gaussian_blur(x, 8)), rel=1e-4)
    assert insertion.scores[-1] == pytest.approx(prob(x), rel=1e-4)
    assert deletion.auc == pytest.approx(np.mean((deletion.scores[1:] + deletion.scores[:-1]) / 2))


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "guided", "deconvnet", "ig", "inputxgrad"])
def test_gradient_maps_saturate_their_top_percent_instead_of_showing_specks(method):
    handle = load_model("builtin:shapes", "cpu")
    sample = sorted(resource_path("samples").glob("*.png"))[0]
    heatmap = compute_heatmap(handle, handle.pixels(load_image(sample)), method)

    def strength(clip):
        values = heatmap.display_values(clip)
        return np.abs(2 * values - 1) if heatmap.signed or values.ndim == 3 else values

    saturated = float((strength(1.0) >= 0.999).mean())
    assert 0.004 <= saturated <= 0.03  # about the top 1 %
    assert strength(1.0).mean() > 1.5 * strength(0.0).mean()
    assert heatmap.scale(1.0) < heatmap.scale(0.0) == pytest.approx(float(np.abs(heatmap.map).max()))


def test_a_map_is_drawn_over_the_part_of_the_original_the_model_saw():
    values = np.zeros((4, 4), np.float32)
    values[0, 0] = 1.0  # evidence in the model input's top-left corner only
    heatmap = Heatmap(values, False, 0, 1.0, "gradcam")
    background = np.full((30, 50, 3), 100, np.uint8)
    box = (10.0, 5.0, 30.0, 25.0)  # a 20×20 centre crop, 5 original pixels per map pixel
    picture = render_heatmap(torch.zeros(3, 4, 4), heatmap, 1.0, "jet", 0.0, background=background, box=box)
    assert picture.shape == background.shape
    assert picture[7, 12].tolist() == [128, 0, 0]  # the corner's map pixel, stretched: jet's strong end
    assert (picture[:, :10] == 100).all() and (picture[20:, 35:] == 100).all()  # outside: the image only
    alone = render_heatmap(torch.zeros(3, 4, 4), heatmap, 1.0, "jet", 0.0, background=background, box=box,
                           overlay=False)
    assert (alone[:, :9] == 255).all() and alone[20, 20].tolist() == [0, 0, 128]  # on paper; zero is dark blue


def test_the_default_cam_layer_is_the_last_block_with_a_map_not_a_fixed_grid_pool():
    """VGG's ``avgpool`` (adaptive, always 7×7) only resamples ``features``' maps: CAM uses ``features``."""
    import torchvision

    from cnnexplorer.core.attribution import last_conv_layer

    with torch.device("meta"):
        vgg, resnet = torchvision.models.vgg16(), torchvision.models.resnet18()
    assert last_conv_layer(vgg, (3, 224, 224), "meta") == "features"
    assert last_conv_layer(vgg, (3, 64, 64), "meta") == "features"
    assert last_conv_layer(resnet, (3, 224, 224), "meta") == "layer4"
