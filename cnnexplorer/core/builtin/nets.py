"""The built-in architectures: the shapes demo net, LeNet-5 and CNN Explainer's TinyVGG."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3×3 conv/BN layers with an identity shortcut, as in ResNet's basic block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + x)


class ShapesNet(nn.Module):
    """The demo classifier for 64×64 RGB shapes: conv/BN/ReLU stages and residual blocks."""

    def __init__(self, num_classes: int, width: int = 24):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(3, w),
            nn.MaxPool2d(2),
            conv_bn_relu(w, 2 * w),
            nn.MaxPool2d(2),
            ResidualBlock(2 * w),
            conv_bn_relu(2 * w, 4 * w),
            nn.MaxPool2d(2),
            ResidualBlock(4 * w),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 32×32 grey images: C1-S2-C3-S4-C5-F6-output."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5),
            nn.Tanh(),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class TinyVGG(nn.Module):
    """The small VGG of CNN Explainer: two conv-conv-pool blocks on 64×64 RGB, no padding."""

    def __init__(self, num_classes: int = 10, width: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3),
            nn.ReLU(),
            nn.Conv2d(width, width, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3),
            nn.ReLU(),
            nn.Conv2d(width, width, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width * 13 * 13, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))
