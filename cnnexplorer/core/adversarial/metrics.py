"""How big and how visible a perturbation is: L∞, L2, PSNR and SSIM per image.

All take ``[N,C,H,W]`` tensors of [0,1] pixels and return one value per image (PSNR and SSIM
in float64). SSIM is Wang et al. (2004): an 11×11 Gaussian window (σ 1.5), K1 = 0.01,
K2 = 0.03, data range 1, averaged over the valid window positions and the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_K1, _K2 = 0.01, 0.03


def linf(delta: Tensor) -> Tensor:
    return delta.flatten(1).abs().amax(dim=1)


def l2(delta: Tensor) -> Tensor:
    return delta.flatten(1).norm(dim=1)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB (data range 1); ``inf`` for identical images."""
    mse = (a - b).double().pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1 / mse)


def _gaussian_window(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of each image pair, in [-1, 1] (1 = identical).

    Images smaller than the window use a window as large as their shorter side (odd).
    """
    n, c, h, w = a.shape
    size = min(window, h - (1 - h % 2), w - (1 - w % 2))
    g = _gaussian_window(size, sigma).to(a.device)
    kernel_h = g.view(1, 1, 1, size).expand(c, 1, 1, size)
    kernel_v = g.view(1, 1, size, 1).expand(c, 1, size, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kernel_h, groups=c), kernel_v, groups=c)

    a, b = a.double(), b.double()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = _K1**2, _K2**2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.flatten(1).mean(dim=1)
