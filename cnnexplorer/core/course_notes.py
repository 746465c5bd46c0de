"""What a torchvision classifier is, and where it departs from the paper a course teaches.

The tree shows ``about`` above the model and ``layer_notes`` in a layer's tooltip, so a student
who counts GoogLeNet's 5×5 branch or AlexNet's 96 first-layer maps finds why torchvision's
model differs instead of doubting the course or the app.
"""

from __future__ import annotations

PAPERS = (  # (architecture name prefix, what it is); longer prefixes first where one contains another
    ("alexnet", "AlexNet (Krizhevsky et al. 2012)"),
    ("convnext", "ConvNeXt (Liu et al. 2022)"),
    ("densenet", "DenseNet (Huang et al. 2017)"),
    ("efficientnet_v2", "EfficientNetV2 (Tan & Le 2021)"),
    ("efficientnet", "EfficientNet (Tan & Le 2019)"),
    ("googlenet", "GoogLeNet (Szegedy et al. 2014)"),
    ("inception_v3", "Inception v3 (Szegedy et al. 2015)"),
    ("maxvit", "MaxViT (Tu et al. 2022)"),
    ("mnasnet", "MnasNet (Tan et al. 2018)"),
    ("mobilenet_v2", "MobileNetV2 (Sandler et al. 2018)"),
    ("mobilenet_v3", "MobileNetV3 (Howard et al. 2019)"),
    ("regnet", "RegNet (Radosavovic et al. 2020)"),
    ("resnext", "ResNeXt (Xie et al. 2016)"),
    ("wide_resnet", "Wide ResNet (Zagoruyko & Komodakis 2016)"),
    ("resnet", "ResNet (He et al. 2015)"),
    ("shufflenet_v2", "ShuffleNet V2 (Ma et al. 2018)"),
    ("squeezenet", "SqueezeNet (Iandola et al. 2016)"),
    ("swin_v2", "Swin Transformer V2 (Liu et al. 2021)"),
    ("swin", "Swin Transformer (Liu et al. 2021)"),
    ("vgg", "VGG (Simonyan & Zisserman 2014)"),
    ("vit", "Vision Transformer (Dosovitskiy et al. 2020)"),
)

GOOGLENET_BLOCKS = ("inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                    "inception4e", "inception5a", "inception5b")
V15_RESNETS = ("resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
               "wide_resnet50_2", "wide_resnet101_2")
TRANSFORM_INPUT = "it rescales its input to [-1, 1] itself (transform_input), as its weights from TensorFlow expect"


def paper(arch: str) -> str:
    """The architecture's family and paper, or its torchvision name when not listed."""
    return next((what for prefix, what in PAPERS if arch.startswith(prefix)), arch)


def torchvision_about(arch: str, weights, params: int | None) -> str:
    """One line: the family and paper, the weights, the parameter count, ImageNet accuracy and model-wide remarks."""
    if weights is None:
        what = f"torchvision's {arch}, untrained (random weights)"
    else:
        acc1 = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        accuracy = f", {acc1:.1f} % top-1 on ImageNet" if acc1 is not None else ""
        what = f"torchvision's {arch} with the ImageNet weights {weights.name}{accuracy}"
    size = "" if params is None else f"; {params / 1e6:.1f} M parameters"
    remarks = [f"{paper(arch)}: {what}{size}"]
    if weights is not None and arch in ("googlenet", "inception_v3"):
        remarks.append(TRANSFORM_INPUT)
    if arch == "googlenet" and weights is not None:
        remarks.append("the pretrained model has no auxiliary classifiers (torchvision drops them with the weights)")
    return "; ".join(remarks)


def torchvision_layer_notes(arch: str) -> dict[str, str]:
    """Layer name → where torchvision's layer ``arch`` differs from the paper."""
    notes: dict[str, str] = {}
    if arch == "googlenet":
        for block in GOOGLENET_BLOCKS:
            for name in (f"{block}.branch3.1", f"{block}.branch3.1.conv"):
                notes[name] = ("the paper's \"5×5\" branch: torchvision's GoogLeNet uses a 3×3 convolution here "
                               "(a known difference of its port, kept for the published weights)")
        notes["conv1"] = ("torchvision's GoogLeNet puts batch normalisation after every convolution and has no local "
                          "response normalisation, unlike the 2014 paper")
    elif arch == "alexnet":
        notes["features.0"] = ("64 maps of 11×11, not the paper's 96: torchvision follows Krizhevsky's one-GPU "
                               "variant (\"One weird trick\", 2014), without the two GPU groups or local response "
                               "normalisation")
        notes["features.3"] = "192 maps, not the paper's 256 (torchvision's one-GPU AlexNet)"
    elif arch in V15_RESNETS:
        for stage in ("layer2", "layer3", "layer4"):
            notes[f"{stage}.0.conv2"] = ("ResNet v1.5: this 3×3 convolution has stride 2; the paper (v1) puts the "
                                         "stride in the first 1×1 convolution (conv1)")
    elif arch.startswith("vgg"):
        notes["avgpool"] = ("not in the paper: an adaptive average pool to 7×7 lets other input sizes reach the "
                            "classifier; at 224 px the maps are already 7×7 and it changes nothing")
    elif arch == "inception_v3":
        notes["AuxLogits"] = "the auxiliary classifier; it only produces an output in training mode"
    return notes
