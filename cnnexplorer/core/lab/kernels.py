"""The kernel playground: hand-set kernels on an image or a small typed matrix, and why each value is what it is.

The course's worked examples come from public tutorials it quotes: the sharpen kernel on a 5×5
grey patch (zero-padded, 320 at the top-left) and a 7×7 curve detector that answers 6,600 on a
patch holding a matching curve (A. Deshpande, "A Beginner's Guide to Understanding
Convolutional Neural Networks", 2016). Values are cross-correlations, as a CNN's "convolution"
computes them (the kernel is not flipped).

For a real layer, ``top_input_channels`` splits a conv unit's value at one pixel into the sums
over each input channel (weights × the input patch), the channels that made it fire.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import cpu_copy, find_layer, record_outputs
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.lab.arithmetic import kernel_step
from cnnexplorer.core.model_handle import eval_mode

CURVE_DETECTOR = np.array([
    [0, 0, 0, 0, 0, 30, 0],
    [0, 0, 0, 0, 30, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 30, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
], dtype=np.float64)

NAMED_KERNELS: dict[str, np.ndarray] = {
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "blur": np.full((3, 3), 1 / 9),
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "edge": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64),
    "curve": CURVE_DETECTOR,
}
"""The kernels the playground offers by name (``curve`` is the course's 7×7 curve detector)."""

SHARPEN_PATCH = np.array([
    [105, 102, 100, 97, 96],
    [103, 99, 103, 101, 102],
    [101, 98, 104, 102, 100],
    [99, 101, 106, 104, 99],
    [104, 104, 104, 100, 98],
], dtype=np.float64)
"""The course's 5×5 grey patch for the sharpen example: zero-padded, its top-left output is 320."""

CURVE_PATCH = np.array([
    [0, 0, 0, 0, 0, 0, 30],
    [0, 0, 0, 0, 50, 50, 50],
    [0, 0, 0, 20, 50, 0, 0],
    [0, 0, 0, 50, 50, 0, 0],
    [0, 0, 0, 50, 0, 0, 0],
    [0, 0, 0, 50, 0, 0, 0],
    [0, 0, 0, 50, 0, 0, 0],
], dtype=np.float64)
"""The course's receptive field holding a curve: the curve detector gives 6,600 on it."""

WORKED_EXAMPLES = {"sharpen": (SHARPEN_PATCH, 1, (0, 0), 320.0), "curve": (CURVE_PATCH, 0, (0, 0), 6600.0)}
"""name → (matrix, zero padding, output pixel, the course's value) of each worked example."""


def kernel_named(name: str) -> np.ndarray:
    try:
        return NAMED_KERNELS[name].copy()
    except KeyError:
        raise UserError(f"unknown kernel '{name}'; choose one of {', '.join(NAMED_KERNELS)} or type one "
                        "(rows separated by ';' or new lines, e.g. '0 -1 0; -1 5 -1; 0 -1 0')") from None


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(/[+-]?(\d+(\.\d*)?|\.\d+))?$")


def parse_matrix(text: str, what: str = "kernel") -> np.ndarray:
    """A typed matrix: rows separated by ';' or new lines, values by spaces or commas; a value may be
    a fraction such as ``1/9``. Brackets are ignored, so ``[[1, 2], [3, 4]]`` works too."""
    cleaned = text.replace("[", " ").replace("]", ";") if "[" in text else text
    rows = [row for row in re.split(r"[;\n]", cleaned) if row.strip(" ,\t")]
    values = [[v for v in re.split(r"[,\s]+", row.strip(" ,\t")) if v] for row in rows]
    if not values:
        raise UserError(f"the {what} is empty; type its rows separated by ';', e.g. '0 -1 0; -1 5 -1; 0 -1 0'")
    for row in values:
        for value in row:
            if not _NUMBER.match(value):
                raise UserError(f"'{value}' in the {what} is not a number; type numbers such as 2, -0.5 or 1/9")
    if len({len(row) for row in values}) != 1:
        raise UserError(f"the {what}'s rows have different lengths ({', '.join(str(len(r)) for r in values)}); "
                        "give every row the same number of values")
    try:
        matrix = np.array([[float(Fraction(v)) for v in row] for row in values], dtype=np.float64)
    except ZeroDivisionError:
        raise UserError(f"the {what} divides by zero; check its fractions") from None
    if not np.isfinite(matrix).all():
        raise UserError(f"the {what} has a value too large to use")
    return matrix


def correlate(matrix, kernel, padding: int = 0, stride: int = 1) -> np.ndarray:
    """Slide ``kernel`` over ``matrix`` (2-D, zero-padded by ``padding``): a CNN's convolution of one channel."""
    x = torch.as_tensor(np.asarray(matrix, dtype=np.float64))[None, None]
    k = torch.as_tensor(np.asarray(kernel, dtype=np.float64))[None, None]
    if k.shape[-1] > x.shape[-1] + 2 * padding or k.shape[-2] > x.shape[-2] + 2 * padding:
        raise UserError(f"the {k.shape[-2]}×{k.shape[-1]} kernel is larger than the padded "
                        f"{x.shape[-2] + 2 * padding}×{x.shape[-1] + 2 * padding} matrix; pad more or use a smaller kernel")
    return F.conv2d(x, k, stride=stride, padding=padding)[0, 0].numpy()


@dataclass(frozen=True)
class Explanation:
    """Why one output value is what it is: the input ``patch`` under the kernel (zeros where it
    hangs over the padding), the ``kernel``, their elementwise ``products`` and ``total``."""

    row: int
    col: int
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    total: float

    def text(self) -> str:
        """``105×5 + 102×-1 + … = 320``, the non-zero products only (all when every one is zero)."""
        terms = [(p, k) for p, k in zip(self.patch.ravel(), self.kernel.ravel()) if p * k != 0] or [(0.0, 0.0)]
        return " + ".join(f"{p:g}×{k:g}" for p, k in terms) + f" = {self.total:g}"


def explain(matrix, kernel, row: int, col: int, padding: int = 0, stride: int = 1) -> Explanation:
    """The patch × kernel sum behind output pixel (``row``, ``col``) of ``correlate``."""
    kernel = np.asarray(kernel, dtype=np.float64)
    padded = np.pad(np.asarray(matrix, dtype=np.float64), padding)
    kh, kw = kernel.shape
    rows, cols = (padded.shape[0] - kh) // stride + 1, (padded.shape[1] - kw) // stride + 1
    if not (0 <= row < rows and 0 <= col < cols):
        raise UserError(f"output pixel ({row}, {col}) is outside the {rows}×{cols} response")
    step = kernel_step(padded, kernel, row, col, stride)
    return Explanation(row, col, step.patch, kernel, step.products, step.value)


def apply_to_image(image, kernel, per_channel: bool = False) -> np.ndarray:
    """Response maps of ``kernel`` on an image (H×W grey or H×W×C, any scale), same size ("same"
    zero padding, centred for odd and even kernels alike): (1, H, W) on the grey image (the mean of
    the channels) or (C, H, W) one per channel with ``per_channel``."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        raise UserError(f"an image must be H×W or H×W×C, not of shape {pixels.shape}")
    channels = pixels.transpose(2, 0, 1) if per_channel else pixels.mean(2)[None]
    k = torch.as_tensor(np.asarray(kernel, dtype=np.float32))
    kh, kw = k.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    x = F.pad(torch.as_tensor(np.ascontiguousarray(channels))[:, None], (left, kw - 1 - left, top, kh - 1 - top))
    return F.conv2d(x, k[None, None])[:, 0].numpy()


def top_input_channels(conv: nn.Conv2d, layer_input: torch.Tensor, channel: int, row: int, col: int,
                       count: int = 5) -> list[tuple[int, float]]:
    """The input channels that most raise conv unit (``channel``, ``row``, ``col``): per input channel
    the sum of weights × its input patch, largest first (``count`` of them). The sums plus the bias
    are the unit's value. ``layer_input`` is the conv's input (C, H, W) or (1, C, H, W)."""
    x = layer_input[0] if layer_input.dim() == 4 else layer_input
    if conv.groups != 1 or isinstance(conv.padding, str):
        raise UserError("top input channels need an ordinary convolution (groups = 1, numeric padding)")
    (ph, pw) = conv.padding
    x = F.pad(x.to(conv.weight.dtype), (pw, pw, ph, ph))
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    patch = x[:, row * sh:row * sh + dh * (kh - 1) + 1:dh, col * sw:col * sw + dw * (kw - 1) + 1:dw]
    if patch.shape[1:] != (kh, kw):
        raise UserError(f"pixel ({row}, {col}) is outside this layer's output")
    with torch.no_grad():
        sums = (conv.weight[channel] * patch).sum((1, 2))
    order = torch.argsort(sums, descending=True)[:count]
    return [(int(i), float(sums[i])) for i in order]


def unit_input_box(handle, layer: str, row: int, col: int, image_size: tuple[int, int] | None = None):
    """The receptive field of ``layer``'s unit at (``row``, ``col``) as a box (x0, y0, x1, y1) of the
    model's input pixels, or of the original image (``image_size``: width, height) through the
    preprocessing's resize and crop."""
    from cnnexplorer.core.dataset.receptive import image_box, layer_field

    box = layer_field(handle, layer).input_box(row, col, tuple(handle.preprocessing.size))
    return box if image_size is None else image_box(box, handle.preprocessing, image_size)


def conv_recording_job(handle, image, layer: str) -> Job[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The model's input pixels for ``image`` and ``layer``'s input and output (one forward pass).

    Copies are taken when the layer runs (a ReLU(inplace=True) after it would change its output
    later), and only of this thread's pass: another worker may run the same model meanwhile."""
    yield Progress(0, None, f"recording {layer}")
    pixels = handle.pixels(image)
    module = find_layer(handle.module, layer)
    owner, inputs = threading.get_ident(), []

    def keep_input(_module, args) -> None:
        if threading.get_ident() == owner and not inputs:
            inputs.append(cpu_copy(args[0]))

    hook = module.register_forward_pre_hook(keep_input)
    try:
        with torch.no_grad(), eval_mode(handle.module), record_outputs(handle.module, [layer]) as records:
            handle.pixel_model()(pixels[None].to(handle.device))
    finally:
        hook.remove()
    return pixels, inputs[0], records[layer][0][0]
