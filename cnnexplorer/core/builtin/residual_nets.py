"""A CIFAR-style ResNet for the 64-px shapes and its plain twin, for the course's degradation experiment.

He et al. (2015) show that a deeper plain net trains worse than a shallower one and that identity
shortcuts fix it. Here both twins are ONE class: ``shortcuts`` switches the additions off, and
the shortcuts that change size are parameter-free (option A of the paper: subsample and pad with
zero channels), so the residual net and its plain twin have the same layers and the same weights.
Depth counts the weight layers as the paper does: 6·n + 2 for n blocks per stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortcutBlock(nn.Module):
    """Two 3×3 conv/BN layers; with ``shortcuts`` on, the input (subsampled, zero-padded) is added back."""

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.stride, self.extra = stride, c_out - c_in
        self.shortcut_on = shortcut

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: the identity, subsampled by the stride, with zero channels appended."""
        x = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.shortcut_on:
            out = out + self.shortcut(x)
        return self.relu2(out)


class ResidualShapesNet(nn.Module):
    """Stem 3×3 conv (stride 2) and 2×2 max pool (64 → 16 px), three stages of ``blocks`` blocks
    (width, 2·width, 4·width maps at 16, 8, 4 px), global average pool, linear: 6·blocks + 2
    weight layers. Small enough to train on a laptop CPU in minutes."""

    def __init__(self, num_classes: int, blocks: int, shortcuts: bool = True, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(2))
        stages, c_in = [], width
        for stage in range(3):
            c_out = width * 2 ** stage
            stages.append(nn.Sequential(*(ShortcutBlock(c_in if b == 0 else c_out, c_out,
                                                        2 if stage and b == 0 else 1, shortcuts)
                                          for b in range(blocks))))
            c_in = c_out
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c_in, num_classes)
        self.depth = 6 * blocks + 2

    @property
    def shortcuts(self) -> bool:
        """Whether the blocks add their input back (False: the plain twin)."""
        return all(block.shortcut_on for block in self.blocks())

    @shortcuts.setter
    def shortcuts(self, on: bool) -> None:
        for block in self.blocks():
            block.shortcut_on = bool(on)

    def blocks(self) -> list[ShortcutBlock]:
        return [m for m in self.modules() if isinstance(m, ShortcutBlock)]

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.classifier(self.flatten(self.pool(x)))


def depth_blocks(depth: int) -> int:
    """Blocks per stage of a ``depth``-layer net (depth = 6·n + 2)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth {depth} is not 6·n + 2 (8, 14, 20, 26, 32, …)")
    return (depth - 2) // 6


def residual_factory(depth: int, shortcuts: bool):
    """``num_classes -> module`` for the registry."""
    blocks = depth_blocks(depth)
    return lambda num_classes: ResidualShapesNet(num_classes, blocks, shortcuts)
