"""The networks the course teaches, layer for layer, so their parameter counts match the course's.

Keras' ``Conv2D(n, 3)`` is an unpadded 3×3 convolution and ``MaxPooling2D(2)`` halves the map,
rounding down. The two ImageNet networks pool as Caffe did, rounding up (``ceil_mode``): that is
how ZFNet's 110-pixel map pools to 55 and its 26-pixel map to 13. Their local response
normalisation is AlexNet's (5 maps, α 10⁻⁴, β 0.75, k 2).
"""

from __future__ import annotations

from torch import nn

from cnnexplorer.core.layers import SigmoidPair


def _conv_relu(c_in: int, c_out: int, kernel: int, **options) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, **options), nn.ReLU()]


class KerasMNIST(nn.Module):
    """Chollet's MNIST convnet (Deep Learning with Python §5.1): three 3×3 convolutions, two poolings."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(1, 32, 3),  # 26×26
            nn.MaxPool2d(2),  # 13×13
            *_conv_relu(32, 64, 3),  # 11×11
            nn.MaxPool2d(2),  # 5×5
            *_conv_relu(64, 64, 3),  # 3×3
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(3 * 3 * 64, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class KerasMNISTDropout(nn.Module):
    """The Keras examples' ``mnist_cnn``: two 3×3 convolutions, one pooling, dropout, a 128-wide layer."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(1, 32, 3),  # 26×26
            *_conv_relu(32, 64, 3),  # 24×24
            nn.MaxPool2d(2),  # 12×12
            nn.Dropout(0.25),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(12 * 12 * 64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class CatsDogs(nn.Module):
    """The course's cats-vs-dogs CNN (Deep Learning with Python §5.2) on 150×150 RGB.

    Four conv/pool stages (32, 64, 128, 128 maps), Dense 512 and one sigmoid output, which
    ``SigmoidPair`` shows as the two class scores; for other than two classes the last layer has
    one output per class instead.
    """

    def __init__(self, num_classes: int = 2):
        super().__init__()
        stages = []
        for c_in, c_out in ((3, 32), (32, 64), (64, 128), (128, 128)):  # 148→74, 72→36, 34→17, 15→7
            stages += [*_conv_relu(c_in, c_out, 3), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*stages)
        self.flatten = nn.Flatten()
        binary = num_classes == 2
        self.classifier = nn.Sequential(
            nn.Linear(7 * 7 * 128, 512), nn.ReLU(), nn.Linear(512, 1 if binary else num_classes),
            *([SigmoidPair()] if binary else []),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def _imagenet_classifier(num_classes: int) -> nn.Sequential:
    """AlexNet's and ZFNet's three fully connected layers on 6×6×256, with dropout before the first two."""
    return nn.Sequential(
        nn.Dropout(0.5), nn.Linear(6 * 6 * 256, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes),
    )


class ZFNet(nn.Module):
    """ZFNet (Zeiler & Fergus 2013) on 224×224 RGB: AlexNet with a 7×7 stride-2 first layer, on one GPU."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(3, 96, 7, stride=2, padding=1),  # 110×110
            _pool(),  # 55×55
            _lrn(),
            *_conv_relu(96, 256, 5, stride=2),  # 26×26
            _pool(),  # 13×13
            _lrn(),
            *_conv_relu(256, 384, 3, padding=1),
            *_conv_relu(384, 384, 3, padding=1),
            *_conv_relu(384, 256, 3, padding=1),
            _pool(),  # 6×6
        )
        self.flatten = nn.Flatten()
        self.classifier = _imagenet_classifier(num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class AlexNetOriginal(nn.Module):
    """AlexNet as Krizhevsky et al. (2012) trained it on 227×227 RGB: 96 first-layer maps, local
    response normalisation, and the layers split over two GPUs kept apart as two groups."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(3, 96, 11, stride=4),  # 55×55
            _lrn(),
            _pool(),  # 27×27
            *_conv_relu(96, 256, 5, padding=2, groups=2),
            _lrn(),
            _pool(),  # 13×13
            *_conv_relu(256, 384, 3, padding=1),  # the two GPUs exchange maps here
            *_conv_relu(384, 384, 3, padding=1, groups=2),
            *_conv_relu(384, 256, 3, padding=1, groups=2),
            _pool(),  # 6×6
        )
        self.flatten = nn.Flatten()
        self.classifier = _imagenet_classifier(num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))
