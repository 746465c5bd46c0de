"""How an image is parameterised: ``(params, image_fn)`` pairs, as in Lucent.

``image_fn()`` returns ``[N,C,H,W]`` in (0,1) through a sigmoid, so every parameter value is a
valid image. ``fft_image`` optimises a spectrum scaled by 1/frequency, in a decorrelated colour
space (Lucid's): steps then change coarse structure as easily as fine detail, which keeps
visualisations from turning into high-frequency noise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

ImageFn = Callable[[], torch.Tensor]

COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


def _randn(shape, generator: torch.Generator, device: torch.device, sd: float) -> torch.Tensor:
    return (torch.randn(*shape, generator=generator) * sd).to(device).requires_grad_(True)


def pixel_image(shape: tuple[int, int, int, int], generator: torch.Generator, device: torch.device,
                sd: float = 0.01, init: torch.Tensor | None = None) -> tuple[list[torch.Tensor], ImageFn]:
    """Pixels through a sigmoid, near grey, or starting from ``init`` (``[N,C,H,W]`` in [0,1])."""
    if init is None:
        logits = _randn(shape, generator, device, sd)
    else:
        logits = torch.logit(init.to(device).clamp(1e-3, 1 - 1e-3)).detach().clone().requires_grad_(True)
    return [logits], lambda: torch.sigmoid(logits)


def _freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def fft_image(shape: tuple[int, int, int, int], generator: torch.Generator, device: torch.device,
              sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True) -> tuple[list[torch.Tensor], ImageFn]:
    """A 1/f-scaled spectrum (``irfft2``, orthonormal), colour-decorrelated for 3 channels."""
    n, c, h, w = shape
    freqs = _freqs(h, w)
    spectrum = _randn((n, c, *freqs.shape, 2), generator, device, sd)
    scale = torch.tensor(1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power, dtype=torch.float32, device=device)
    color = torch.tensor(_COLOR, device=device)

    def image_fn() -> torch.Tensor:
        complex_spectrum = torch.view_as_complex(scale[..., None] * spectrum)
        image = torch.fft.irfftn(complex_spectrum, s=(h, w), norm="ortho") / 4.0
        if decorrelate and c == 3:
            image = torch.einsum("nchw,dc->ndhw", image, color)
        return torch.sigmoid(image)

    return [spectrum], image_fn


def grey_image(shape: tuple[int, int, int, int], generator: torch.Generator,
               device: torch.device) -> tuple[list[torch.Tensor], ImageFn]:
    """Plain pixels starting at exactly grey (0.5), clipped to [0,1]: the course's class-model
    recipe (Simonyan et al. 2014 start from the mean image; ours is grey), no sigmoid, no noise."""
    pixels = torch.full(shape, 0.5, device=device, requires_grad=True)
    return [pixels], lambda: pixels.clamp(0, 1)


PARAMETERISATIONS = {"pixel": pixel_image, "fft": fft_image, "grey": grey_image}


def gaussian_blur_(logits: torch.Tensor, sigma: float) -> None:
    """Blur a ``pixel_image``'s images in place (Yosinski et al.'s regulariser, every k steps)."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=logits.dtype, device=logits.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    with torch.no_grad():
        image = torch.sigmoid(logits)
        c = image.shape[1]
        image = torch.nn.functional.pad(image, (radius,) * 4, mode="replicate")
        image = torch.nn.functional.conv2d(image, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
        image = torch.nn.functional.conv2d(image, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
        logits.copy_(torch.logit(image.clamp(1e-3, 1 - 1e-3)))
