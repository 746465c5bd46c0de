"""Convolution arithmetic as the course teaches it, beside what PyTorch does.

The course sizes a layer by (W − F + 2P)/S + 1 and calls a non-integer result "not possible";
PyTorch floors it instead (pooling may also round up with ``ceil_mode``), silently ignoring the
last rows and columns. Each function returns both views, so a student sees the formula, the
exact value and the size a real layer will have. Dilation enters as the effective kernel
d(F − 1) + 1. Sizes are per axis (square inputs and kernels, as in the course's drawings).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from cnnexplorer.core.checks import check_number


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """The span of a dilated kernel: d(F − 1) + 1."""
    return dilation * (kernel - 1) + 1


def _check(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    check_number("size", size, 1, whole=True)
    check_number("kernel", kernel, 1, whole=True)
    check_number("stride", stride, 1, whole=True)
    check_number("padding", padding, 0, whole=True)
    check_number("dilation", dilation, 1, whole=True)


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


@dataclass(frozen=True)
class ConvArithmetic:
    """One convolution (or pooling) layer's size by the course's formula and by PyTorch.

    ``exact`` is (W − F_eff + 2P)/S + 1 unfloored; ``valid`` says it is a whole number ≥ 1 (the
    course's "possible"); ``output`` is PyTorch's size (floor; 0 when no window fits);
    ``ceil_output`` is MaxPool2d's size with ``ceil_mode=True`` (pooling only, else None);
    ``unused`` counts the input rows (columns) no window reaches, the padding aside. ``params`` C×(F·F·D + 1) and
    ``macs`` output²×C×F·F·D need ``filters`` C and ``depth`` D (None without them).
    """

    kind: str  # "conv" or "pool"
    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    effective_kernel: int
    exact: int | float
    valid: bool
    output: int
    ceil_output: int | None
    unused: int
    filters: int | None
    depth: int | None
    params: int | None
    macs: int | None

    def formula(self) -> str:
        """``(10 − 3 + 2·0)/2 + 1 = 4.5``."""
        exact = f"{self.exact:g}" if isinstance(self.exact, float) else str(self.exact)
        return f"({self.size} − {self.effective_kernel} + 2·{self.padding})/{self.stride} + 1 = {exact}"

    def message(self) -> str:
        """The course's verdict and what PyTorch does instead, in one or two sentences."""
        if self.valid:
            text = f"{self.formula()}: {self.output}×{self.output}"
        else:
            verdict = f"{self.formula()}: not possible"
            layer = "Conv2d" if self.kind == "conv" else "MaxPool2d"
            if self.output < 1:
                text = f"{verdict}; the kernel does not fit, PyTorch's {layer} raises an error"
            else:
                text = f"{verdict}; PyTorch's {layer} floors it to {self.output}×{self.output}"
                if self.unused:
                    text += f" (the last {self.unused} input row(s) and column(s) are never used)"
                if self.ceil_output is not None and self.ceil_output != self.output:
                    text += f", or with ceil_mode=True gives {self.ceil_output}×{self.ceil_output}"
        if self.params is not None:
            text += (f"; {self.filters} filters of {self.kernel}×{self.kernel}×{self.depth}: "
                     f"{self.filters} × ({self.kernel}·{self.kernel}·{self.depth} + 1) = {self.params:,} parameters, "
                     f"{self.macs:,} MACs")
        return text

    def to_json(self) -> dict:
        return asdict(self)


def _sizes(size: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple[int, Fraction, int, int]:
    span = effective_kernel(kernel, dilation)
    exact = Fraction(size - span + 2 * padding, stride) + 1
    output = max(0, math.floor(exact))
    last = (output - 1) * stride + span  # padded rows the last window reaches
    unused = max(0, size + padding - last) if output else 0  # input rows after it (the padding aside)
    return span, exact, output, min(unused, size)


def conv_arithmetic(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                    filters: int | None = None, depth: int | None = None, bias: bool = True) -> ConvArithmetic:
    """A W×W×D input, C filters of F×F: the course's size, PyTorch's Conv2d size, parameters and MACs."""
    _check(size, kernel, stride, padding, dilation)
    if filters is not None:
        check_number("filters", filters, 1, whole=True)
    if depth is not None:
        check_number("depth", depth, 1, whole=True)
    span, exact, output, unused = _sizes(size, kernel, stride, padding, dilation)
    params = macs = None
    if filters is not None and depth is not None:
        params = filters * (kernel * kernel * depth + int(bias))
        macs = output * output * filters * kernel * kernel * depth
    return ConvArithmetic("conv", size, kernel, stride, padding, dilation, span, _number(exact),
                          exact.denominator == 1 and exact >= 1, output, None, unused, filters, depth, params, macs)


def pool_arithmetic(size: int, kernel: int, stride: int | None = None, padding: int = 0,
                    dilation: int = 1) -> ConvArithmetic:
    """Pooling: the course's size, PyTorch's MaxPool2d size with floor and with ``ceil_mode``.

    ``ceil_mode`` rounds up but drops a last window that would start in the right padding
    (PyTorch's rule), and PyTorch allows a padding of at most half the kernel.
    """
    stride = kernel if stride is None else stride
    _check(size, kernel, stride, padding, dilation)
    span, exact, output, unused = _sizes(size, kernel, stride, padding, dilation)
    ceil = max(0, math.ceil(exact))
    if ceil > 0 and (ceil - 1) * stride >= size + padding:
        ceil -= 1
    return ConvArithmetic("pool", size, kernel, stride, padding, dilation, span, _number(exact),
                          exact.denominator == 1 and exact >= 1, output, ceil, unused, None, None, None, None)


def same_padding(kernel: int, dilation: int = 1) -> int | None:
    """P = (F_eff − 1)/2, the padding that keeps the size at stride 1; None for an even kernel (no such P)."""
    check_number("kernel", kernel, 1, whole=True)
    span = effective_kernel(kernel, dilation)
    return (span - 1) // 2 if span % 2 else None


@dataclass(frozen=True)
class TransposedArithmetic:
    """A transposed convolution two ways.

    The course draws it as a direct convolution (stride 1) over the input with ``padding`` zeros
    around it (and ``stride − 1`` zeros between its pixels): ``course_output`` =
    (W − 1)·S + 1 + 2P − F_eff + 1. PyTorch's ``ConvTranspose2d(padding=P)`` gives
    ``torch_output`` = (W − 1)S − 2P + d(F − 1) + output_padding + 1; its padding that draws the
    same picture as the course's is ``torch_padding`` = F_eff − 1 − P (None when negative).
    """

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output_padding: int
    course_output: int
    torch_output: int
    torch_padding: int | None

    def message(self) -> str:
        span = effective_kernel(self.kernel, self.dilation)
        spread = (self.size - 1) * self.stride + 1
        course = (f"the course's drawing: a {self.size}×{self.size} input"
                  + (f" spread to {spread}×{spread}" if self.stride > 1 else "")
                  + f" with {self.padding} zero(s) around it, convolved with a {span}×{span} kernel, gives "
                  f"{self.course_output}×{self.course_output}")
        torch = (f"PyTorch's ConvTranspose2d(kernel_size={self.kernel}, stride={self.stride}, padding={self.padding}"
                 + (f", output_padding={self.output_padding}" if self.output_padding else "")
                 + (f", dilation={self.dilation}" if self.dilation > 1 else "")
                 + f") gives ({self.size} − 1)·{self.stride} − 2·{self.padding} + {span - 1} + {self.output_padding}"
                 f" + 1 = {self.torch_output}")
        same = (f"; ConvTranspose2d draws the course's picture with padding={self.torch_padding}"
                if self.torch_padding is not None else "")
        return f"{course}; {torch}{same}"

    def to_json(self) -> dict:
        return asdict(self)


def transposed_arithmetic(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                          output_padding: int = 0) -> TransposedArithmetic:
    """The course's drawing of a transposed convolution and PyTorch's ConvTranspose2d arithmetic."""
    _check(size, kernel, stride, padding, dilation)
    check_number("output padding", output_padding, 0, max(stride, dilation) - 1, whole=True,
                 why="PyTorch needs it smaller than the stride or the dilation")
    span = effective_kernel(kernel, dilation)
    course = (size - 1) * stride + 1 + 2 * padding - span + 1
    torch_out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    torch_padding = span - 1 - padding
    return TransposedArithmetic(size, kernel, stride, padding, dilation, output_padding, max(course, 0), torch_out,
                                torch_padding if torch_padding >= 0 else None)


@dataclass(frozen=True)
class KernelStep:
    """One position of the kernel: output ``(row, col)``, the input ``patch`` under it (padding
    included), the elementwise ``products`` and their sum ``value``."""

    row: int
    col: int
    patch: np.ndarray
    products: np.ndarray
    value: float


def kernel_step(padded: np.ndarray, kernel: np.ndarray, row: int, col: int, stride: int = 1) -> KernelStep:
    """The kernel at output position (``row``, ``col``) of an already padded matrix."""
    kh, kw = kernel.shape
    patch = padded[row * stride:row * stride + kh, col * stride:col * stride + kw]
    products = patch * kernel
    return KernelStep(row, col, patch, products, float(products.sum()))


def kernel_steps(matrix, kernel, stride: int = 1, padding: int = 0) -> Iterator[KernelStep]:
    """Slide ``kernel`` over ``matrix`` (zero-padded by ``padding``) row by row, as the course animates it;
    the values are cross-correlations, as a CNN's "convolution" computes them."""
    matrix = np.asarray(matrix, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    check_number("stride", stride, 1, whole=True)
    check_number("padding", padding, 0, whole=True)
    padded = np.pad(matrix, padding)
    kh, kw = kernel.shape
    rows = (padded.shape[0] - kh) // stride + 1
    cols = (padded.shape[1] - kw) // stride + 1
    for r in range(max(rows, 0)):
        for c in range(max(cols, 0)):
            yield kernel_step(padded, kernel, r, c, stride)


def step_output(steps) -> np.ndarray:
    """The output matrix the steps fill, in order."""
    steps = list(steps)
    if not steps:
        return np.zeros((0, 0))
    out = np.zeros((steps[-1].row + 1, steps[-1].col + 1))
    for step in steps:
        out[step.row, step.col] = step.value
    return out
