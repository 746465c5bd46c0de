"""Convolution arithmetic: the course's figures, checked against real PyTorch layers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.lab.arithmetic import (conv_arithmetic, kernel_steps, pool_arithmetic, same_padding,
                                             step_output, transposed_arithmetic)


def test_course_example_w10_f3_s2_is_not_possible_and_pytorch_floors():
    result = conv_arithmetic(10, 3, stride=2, padding=0)
    assert result.exact == 4.5 and not result.valid and result.output == 4 and result.unused == 1
    assert "4.5: not possible" in result.message() and "floors it to 4×4" in result.message()
    assert nn.Conv2d(1, 1, 3, stride=2)(torch.zeros(1, 1, 10, 10)).shape[-1] == 4


def test_valid_sizes_params_and_macs():
    result = conv_arithmetic(227, 11, stride=4, filters=96, depth=3)  # AlexNet's first layer
    assert result.valid and result.exact == 55 and result.output == 55
    assert result.params == 96 * (11 * 11 * 3 + 1) == 34_944
    assert result.macs == 55 * 55 * 96 * 11 * 11 * 3
    conv = nn.Conv2d(3, 96, 11, stride=4)
    assert sum(p.numel() for p in conv.parameters()) == result.params


def test_every_small_case_matches_conv2d_and_maxpool2d():
    x = torch.zeros(1, 1, 12, 12)
    for size, kernel, stride, padding, dilation in itertools.product((5, 7, 12), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2),
                                                                     (1, 2)):
        conv = conv_arithmetic(size, kernel, stride, padding, dilation)
        if conv.output >= 1:
            got = nn.Conv2d(1, 1, kernel, stride, padding, dilation)(x[..., :size, :size]).shape[-1]
            assert got == conv.output, (size, kernel, stride, padding, dilation)
        if padding <= kernel // 2:
            pool = pool_arithmetic(size, kernel, stride, padding, dilation)
            for ceil, expected in ((False, pool.output), (True, pool.ceil_output)):
                if expected >= 1:
                    layer = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
                    assert layer(x[..., :size, :size]).shape[-1] == expected, (size, kernel, stride, padding, ceil)


def test_pool_ceil_mode_message():
    result = pool_arithmetic(10, 3, stride=2)
    assert result.output == 4 and result.ceil_output == 5
    assert "ceil_mode=True gives 5×5" in result.message()


def test_same_padding_and_dilation():
    assert [same_padding(k) for k in (1, 3, 5, 7, 4)] == [0, 1, 2, 3, None]
    assert same_padding(3, dilation=2) == 2
    for kernel in (3, 5, 7):
        assert conv_arithmetic(32, kernel, padding=same_padding(kernel)).output == 32
    assert conv_arithmetic(32, 3, dilation=2).effective_kernel == 5


def test_transposed_convolution_as_the_course_draws_it_and_as_pytorch_computes_it():
    cases = ((5, 0, 3), (5, 1, 5), (3, 2, 5))  # (input, the course's padding, output) for a 3×3 kernel
    for size, padding, expected in cases:
        result = transposed_arithmetic(size, 3, padding=padding)
        assert result.course_output == expected
        x = torch.zeros(1, 1, size, size)
        drawn = nn.Conv2d(1, 1, 3, padding=padding)(x).shape[-1]
        same = nn.ConvTranspose2d(1, 1, 3, padding=result.torch_padding)(x).shape[-1]
        assert drawn == same == expected
        assert nn.ConvTranspose2d(1, 1, 3, padding=padding)(x).shape[-1] == result.torch_output
    for size, kernel, stride, padding, out_pad, dilation in itertools.product((3, 4), (2, 3, 4), (1, 2, 3), (0, 1),
                                                                              (0, 1), (1, 2)):
        if out_pad < max(stride, dilation):
            result = transposed_arithmetic(size, kernel, stride, padding, dilation, out_pad)
            layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding, out_pad, dilation=dilation)
            assert layer(torch.zeros(1, 1, size, size)).shape[-1] == result.torch_output
    assert "padding=0" in transposed_arithmetic(3, 3, padding=2).message()


def test_stepper_2x2_over_3x4_gives_2x3_dot_products():
    matrix = np.arange(12).reshape(3, 4)
    kernel = np.array([[1, 0], [0, -1]])
    steps = list(kernel_steps(matrix, kernel))
    assert [(s.row, s.col) for s in steps] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert steps[0].patch.tolist() == [[0, 1], [4, 5]] and steps[0].value == 0 - 5
    out = step_output(steps)
    conv = torch.nn.functional.conv2d(torch.tensor(matrix, dtype=torch.float64)[None, None],
                                      torch.tensor(kernel, dtype=torch.float64)[None, None])
    np.testing.assert_allclose(out, conv[0, 0].numpy(), atol=1e-12)


def test_bad_numbers_are_user_errors():
    with pytest.raises(UserError, match="stride"):
        conv_arithmetic(10, 3, stride=0)
    with pytest.raises(UserError, match="output padding"):
        transposed_arithmetic(3, 3, stride=1, output_padding=1)
    assert "does not fit" in conv_arithmetic(2, 5).message()
