"""Models that are not plain CNNs: ViT tokens, Swin's and ConvNeXt's channels-last outputs and
MaxViT's windows become [N,C,H,W] maps for activations, feature visualisation and CAM; models
with one input size get it; quantized models show activations and refuse gradients. Tiny
torchvision configurations (same classes, same layouts) keep this fast; one real ViT-B checks
the rules against the real configuration."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer
from torchvision.models.maxvit import MaxVit
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.ops.misc import Permute

from cnnexplorer.core.activations import activation_grid, capture, channel_stats
from cnnexplorer.core.attribution import compute_heatmap, last_conv_layer
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import Settings, layer_units, visualise
from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.layouts import fixed_input_size, layout_of
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import load_model

VIT_BLOCK = "encoder.layers.encoder_layer_1"
MAXVIT_LAYER = "blocks.0.layers.0.layers."
FAST = Settings(size=16, steps=2, preview_every=1)


def make_handle(module: nn.Module, size: int) -> ModelHandle:
    preprocessing = Preprocessing(3, (size, size), (0.5,) * 3, (0.25,) * 3)
    return ModelHandle("test", module.eval(), torch.device("cpu"), preprocessing, [f"class {i}" for i in range(10)],
                       "none", False)


@pytest.fixture(scope="module")
def vit():
    """Tokens [N, 1 + 4·4, 16]; no position embedding, so the first tokens are the patch embedding's
    output, and a random head (torchvision's is zero, which leaves no gradient to map)."""
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=10)
    with torch.no_grad():
        model.encoder.pos_embedding.zero_()
        model.heads.head.weight.normal_()
    return make_handle(model, 32)


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return make_handle(SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                                       window_size=[2, 2], num_classes=10), 32)


@pytest.fixture(scope="module")
def maxvit():
    torch.manual_seed(0)
    return make_handle(MaxVit(input_size=(64, 64), stem_channels=8, partition_size=2, block_channels=[8],
                              block_layers=[1], head_dim=4, stochastic_depth_prob=0.0, num_classes=10), 64)


def image(size: int) -> torch.Tensor:
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))


def test_vit_tokens_become_the_patch_grid_without_the_class_token(vit):
    recorded = capture(vit, image(32), ["conv_proj", "encoder.dropout", VIT_BLOCK])
    torch.testing.assert_close(recorded.output("encoder.dropout"), recorded.output("conv_proj"))
    block = recorded.output(VIT_BLOCK)
    assert block.shape == (1, 16, 4, 4)
    grid = activation_grid(block)
    assert not grid.units and grid.shape == (16, 4, 4)


def test_swin_and_permute_sections_are_read_channels_last(swin):
    recorded = capture(swin, image(32), ["features.0.0", "features.0.1", "norm", "permute"])
    assert torch.equal(recorded.output("features.0.1"), recorded.output("features.0.0"))
    assert torch.equal(recorded.output("norm"), recorded.output("permute"))
    assert recorded.output("norm").shape == (1, 16, 4, 4)
    block = nn.Sequential(nn.Conv2d(3, 4, 1), Permute([0, 2, 3, 1]), nn.LayerNorm(4), nn.Linear(4, 6),
                          Permute([0, 3, 1, 2]), nn.ReLU())
    assert [layout_of(block, str(i)).kind for i in range(6)] == ["maps"] + ["channels-last"] * 3 + ["maps"] * 2
    plain = make_handle(block, 8)
    recorded = capture(plain, image(8), ["3", "4"])
    assert torch.equal(recorded.output("3"), recorded.output("4"))


def test_maxvit_windows_are_put_back_in_place(maxvit):
    layers = [MAXVIT_LAYER + name for name in ("MBconv", "window_attention.partition_op", "window_attention",
                                               "grid_attention.partition_swap", "grid_attention.mlp_layer")]
    recorded = capture(maxvit, image(64), layers)
    assert torch.equal(recorded.output(layers[1]), recorded.output(layers[0]))
    assert torch.equal(recorded.output(layers[3]), recorded.output(layers[2]))
    assert recorded.output(layers[4]).shape == (1, 8, 16, 16)


def test_outputs_without_a_known_channel_axis_are_refused():
    tokens = torch.rand(1, 5, 7)
    with pytest.raises(UserError, match="which axis holds its channels"):
        activation_grid(tokens)
    with pytest.raises(UserError, match="which axis holds its channels"):
        obj.channel("x", 0)({"x": tokens})
    assert channel_stats(tokens).max.size == 35


def test_featurevis_runs_vit_at_its_size_and_maximises_a_hidden_channel(vit):
    assert fixed_input_size(vit.module) == (32, 32)
    assert layer_units(vit, VIT_BLOCK, 16) == 16
    result = drive(visualise(vit, "channel", VIT_BLOCK, [0, 5], None, FAST))
    assert result.images.shape == (2, 3, 16, 16)
    resized = F.interpolate(result.images, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    for i, unit in enumerate((0, 5)):
        expected = capture(vit, resized[i], [VIT_BLOCK]).output(VIT_BLOCK)[0, unit].mean()
        assert result.values[i] == pytest.approx(float(expected), rel=1e-4, abs=1e-5)


def test_featurevis_deepdream_on_maxvit_runs_every_octave_at_its_size(maxvit):
    assert fixed_input_size(maxvit.module) == (64, 64)
    result = drive(visualise(maxvit, "deepdream", MAXVIT_LAYER + "grid_attention.attn_layer", None, image(24), FAST))
    assert result.images.shape == (1, 3, 24, 24)


def test_vit_gradcam_maps_the_last_blocks_norm_on_the_patch_grid(vit):
    pixels = image(32)
    heatmap = compute_heatmap(vit, pixels, "gradcam", target=3)
    layer = "encoder.layers.encoder_layer_1.ln_1"
    assert heatmap.layer == layer == last_conv_layer(vit.module, (3, 32, 32))
    leaf = []

    def as_leaf(module, args, out):
        leaf.append(out.detach().requires_grad_(True))
        return leaf[0]

    hook = vit.module.get_submodule(layer).register_forward_hook(as_leaf)
    try:
        logits = vit.pixel_model()(pixels[None])
    finally:
        hook.remove()
    grad = torch.autograd.grad(logits[0, 3], leaf[0])[0][0, 1:].reshape(4, 4, 16).permute(2, 0, 1)
    acts = leaf[0].detach()[0, 1:].reshape(4, 4, 16).permute(2, 0, 1)
    cam = (grad.mean(dim=(1, 2), keepdim=True) * acts).sum(0).clamp(min=0)
    expected = F.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    assert heatmap.map.max() > 0
    torch.testing.assert_close(torch.from_numpy(heatmap.map), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(UserError, match="only through its class token.*encoder_layer_1.ln_1"):
        compute_heatmap(vit, pixels, "gradcam", target=3, layer=VIT_BLOCK)
    assert compute_heatmap(vit, pixels, "scorecam", target=3, layer=VIT_BLOCK).map.shape == (32, 32)
    zero_head = make_handle(VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=1, hidden_dim=4,
                                              mlp_dim=4, num_classes=10), 32)
    with pytest.raises(UserError, match="zero everywhere"):
        compute_heatmap(zero_head, pixels, "gradcam")


def test_swin_gradcam_reads_channels_last_like_its_permuted_copy(swin):
    pixels = image(32)
    assert last_conv_layer(swin.module, (3, 32, 32)) == "permute"
    at_norm = compute_heatmap(swin, pixels, "gradcam", target=2, layer="norm")
    at_permute = compute_heatmap(swin, pixels, "gradcam", target=2, layer="permute")
    assert at_norm.map.max() > 0
    torch.testing.assert_close(torch.from_numpy(at_norm.map), torch.from_numpy(at_permute.map))


def test_quantized_models_show_activations_and_refuse_gradients():
    quant = torch.ao.quantization
    model = nn.Sequential(quant.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10),
                          quant.DeQuantStub()).eval()
    model.qconfig = quant.get_default_qconfig(torch.backends.quantized.engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = quant.prepare(model)
        prepared(torch.rand(4, 3, 8, 8))
        handle = make_handle(quant.convert(prepared), 8)
        pixels = image(8)
        output = capture(handle, pixels, ["1"]).output("1")
        assert output.dtype == torch.float32 and activation_grid(output).shape == (4, 6, 6)
        for method in ("gradcam", "saliency"):
            with pytest.raises(UserError, match="quantized.*no gradients"):
                compute_heatmap(handle, pixels, method, layer="1" if method == "gradcam" else None)
        with pytest.raises(UserError, match="quantized.*feature visualisation"):
            drive(visualise(handle, "channel", "1", [0], None, FAST))


def test_real_vit_b_16_blocks_are_768_maps_on_the_14_by_14_grid():
    handle = load_model("torchvision:vit_b_16:none", "cpu")
    layer = "encoder.layers.encoder_layer_11"
    assert activation_grid(capture(handle, image(224), [layer]).output(layer)).shape == (768, 14, 14)
    assert last_conv_layer(handle.module, handle.input_size) == layer + ".ln_1"
