"""The Lab's "Arithmetic" page: how big a layer's output is, what it costs, and a kernel sliding.

The fields are the course's W (input size), F (kernel), P (padding), S (stride), the dilation, the
number of filters and the input depth; the result says the output size by (W − F + 2P)/S + 1,
the exact value, whether the course would call it possible (and what PyTorch does instead: floor,
or ceil_mode for pooling), the parameters C × (F·F·D + 1) and the MACs. Pooling and transposed
convolution (the course's drawing beside ConvTranspose2d's arithmetic) are other modes. The
numbers come from ``core.lab.arithmetic``, the same as ``cnnexplorer arithmetic``.

The stepper slides the kernel over a small input: the course's example, or the fields' W, F, P
and S when the input is small enough to draw. *From the current layer* fills the fields from the
layer selected in the tree (a convolution or pooling layer of the loaded model), its input size
measured by one forward pass of a blank image in a worker.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.hooks import find_layer
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.lab import arithmetic
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.gui.widgets.conv_stepper import COURSE_INPUT, COURSE_KERNEL, ConvStepper
from cnnexplorer.gui.widgets.spin_boxes import SpinBox

MODES = ("Convolution", "Pooling", "Transposed convolution")
STEPPER_MAX = 9
"""The largest input side the stepper draws from the fields (larger ones use the course's example)."""
GOOD = "color: #1a7f37"
BAD = "color: #b3261e"


SIZED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.ConvTranspose2d)
"""The layers whose fields the page can take."""


def input_shape_job(handle, layer: str) -> Job[tuple[int, ...]]:
    """The shape of ``layer``'s input (C, H, W) for a blank image at the model's input size."""
    yield Progress(0, None, f"measuring the input of {layer}")
    module, owner, shapes = find_layer(handle.module, layer), threading.get_ident(), []

    def keep(_module, args) -> None:
        if threading.get_ident() == owner and not shapes:
            shapes.append(tuple(args[0].shape[1:]))

    hook = module.register_forward_pre_hook(keep)
    try:
        with torch.no_grad(), eval_mode(handle.module):
            handle.pixel_model()(torch.zeros((1, *handle.input_size), device=handle.device))
    finally:
        hook.remove()
    return shapes[0]


def _first(value) -> int:
    return value[0] if isinstance(value, tuple) else value


def _spin(low: int, high: int, value: int, tip: str) -> SpinBox:
    box = SpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class ArithmeticPage(QWidget):
    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.size = _spin(1, 4096, 10, "W: the input's width (or height), in pixels")
        self.kernel = _spin(1, 64, 3, "F: the kernel's (receptive field's) side")
        self.padding = _spin(0, 64, 0, "P: zeros added on each side")
        self.stride = _spin(1, 64, 2, "S: how far the kernel moves per step")
        self.dilation = _spin(1, 16, 1, "Spacing of the kernel's taps (1: none); the effective kernel is "
                                        "dilation·(F − 1) + 1")
        self.filters = _spin(1, 4096, 1, "C: the number of filters, the output's depth")
        self.depth = _spin(1, 4096, 3, "D: the input's depth (channels)")
        self.ceil_mode = QCheckBox("ceil_mode")
        self.ceil_mode.setToolTip("Pooling: round the output size up instead of down (PyTorch's ceil_mode=True)")
        self.same = QPushButton("Same padding")
        self.same.setToolTip("Set P = (F − 1)/2 (times the dilation), which keeps the size at stride 1 for odd F")
        form = QFormLayout()
        form.addRow("Layer", self.mode)
        for label, box in (("W input size", self.size), ("F kernel", self.kernel), ("P padding", self.padding),
                           ("S stride", self.stride), ("dilation", self.dilation), ("C filters", self.filters),
                           ("D input depth", self.depth)):
            form.addRow(label, box)
        form.addRow(self.ceil_mode, self.same)
        self.from_layer = QPushButton("From the current layer")
        self.from_layer.setToolTip("Take W, F, P, S, the dilation, C and D from the convolution or pooling layer "
                                   "selected in the Model tree")
        self.from_layer.clicked.connect(self.take_layer)
        form.addRow(self.from_layer)
        fields = QGroupBox("The layer")
        fields.setLayout(form)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        results = QGroupBox("What comes out")
        QVBoxLayout(results).addWidget(self.result)
        left = QVBoxLayout()
        left.addWidget(fields)
        left.addWidget(results, 1)
        self.stepper = ConvStepper()
        self.course_example = QPushButton("The course's example")
        self.course_example.setToolTip("A 2×2 filter over a 3×4 input gives 2×3")
        self.from_fields = QPushButton("Use the fields")
        self.from_fields.setToolTip(f"Slide the kernel of the fields over a W×W input (W ≤ {STEPPER_MAX})")
        stepper_buttons = QHBoxLayout()
        stepper_buttons.addWidget(self.course_example)
        stepper_buttons.addWidget(self.from_fields)
        stepper_buttons.addStretch(1)
        stepper_box = QGroupBox("The kernel, step by step")
        stepper_layout = QVBoxLayout(stepper_box)
        stepper_layout.addLayout(stepper_buttons)
        stepper_layout.addWidget(self.stepper, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 2)
        layout.addWidget(stepper_box, 3)
        for box in (self.size, self.kernel, self.padding, self.stride, self.dilation, self.filters, self.depth):
            box.valueChanged.connect(self.refresh)
        self.mode.currentIndexChanged.connect(self.refresh)
        self.ceil_mode.toggled.connect(self.refresh)
        self.same.clicked.connect(self.same_padding)
        self.course_example.clicked.connect(lambda: self.stepper.set_problem(COURSE_INPUT, COURSE_KERNEL))
        self.from_fields.clicked.connect(self.step_fields)
        self.refresh()

    def take_layer(self) -> None:
        """Fill the fields from the tree's layer, once a worker has measured its input size."""
        handle, layer = self.session.model, self.session.layer
        module = find_layer(handle.module, layer) if handle is not None and layer else None
        if not isinstance(module, SIZED):
            self.result.setText(f'<span style="{BAD}">Select a Conv2d, ConvTranspose2d, MaxPool2d or AvgPool2d layer '
                                "in the Model tree first.</span>")
            return
        self.jobs.start(lambda: input_shape_job(handle, layer), kind="lab-arithmetic",
                        label=f"measuring the input of {layer}",
                        on_result=lambda shape: self.set_layer(layer, module, shape))

    def set_layer(self, name: str, module: nn.Module, shape: tuple[int, ...]) -> None:
        """The fields of ``module`` (``name``), whose input has ``shape`` (C, H, W): the width is W."""
        mode = ("Transposed convolution" if isinstance(module, nn.ConvTranspose2d) else
                "Convolution" if isinstance(module, nn.Conv2d) else "Pooling")
        self.mode.setCurrentText(mode)
        padding = module.padding
        if isinstance(padding, str):  # "same" or "valid"
            padding = 0 if padding == "valid" else arithmetic.same_padding(_first(module.kernel_size),
                                                                           _first(module.dilation)) or 0
        values = ((self.size, shape[-1]), (self.kernel, _first(module.kernel_size)), (self.padding, _first(padding)),
                  (self.stride, _first(module.stride or module.kernel_size)),
                  (self.dilation, _first(getattr(module, "dilation", 1))))
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            values += ((self.filters, module.out_channels), (self.depth, module.in_channels // module.groups))
        for box, value in values:
            box.setValue(value)
        self.ceil_mode.setChecked(bool(getattr(module, "ceil_mode", False)))
        self.refresh()
        size = "×".join(map(str, shape))
        self.result.setText(f"<p><i>{name} ({type(module).__name__}) of {self.session.model.spec}, its input "
                            f"{size}</i></p>{self.result.text()}")

    def same_padding(self) -> None:
        """P = (F − 1)/2; an even kernel has no such P, which the result line says."""
        padding = arithmetic.same_padding(self.kernel.value(), self.dilation.value())
        if padding is None:
            self.result.setText(f'<span style="{BAD}">An even kernel ({self.kernel.value()}) has no "same" padding: '
                                "(F − 1)/2 is not a whole number. Use an odd F.</span>")
            return
        self.padding.setValue(padding)

    def step_fields(self) -> None:
        """The stepper on a W×W input numbered 1, 2, … and an all-ones F×F kernel (dilation not drawn)."""
        side = self.size.value()
        if side > STEPPER_MAX or self.kernel.value() > side + 2 * self.padding.value():
            self.stepper.formula.setText(f"The stepper draws inputs up to {STEPPER_MAX}×{STEPPER_MAX} with a kernel "
                                         "that fits; make W smaller or F smaller.")
            return
        values = np.arange(1, side * side + 1, dtype=float).reshape(side, side)
        self.stepper.set_problem(values, np.ones((self.kernel.value(),) * 2), self.stride.value(),
                                 self.padding.value())

    def refresh(self, *_) -> None:
        mode = self.mode.currentText()
        self.from_layer.setEnabled(self.session.model is not None and self.session.layer is not None)
        self.ceil_mode.setEnabled(mode == "Pooling")
        for box in (self.filters, self.depth):
            box.setEnabled(mode == "Convolution")
        try:
            self.result.setText(self._text(mode))
        except UserError as exc:
            self.result.setText(f'<span style="{BAD}">{exc}</span>')

    def _text(self, mode: str) -> str:
        size, kernel, padding, stride, dilation = (self.size.value(), self.kernel.value(), self.padding.value(),
                                                   self.stride.value(), self.dilation.value())
        if mode == "Transposed convolution":
            shape = arithmetic.transposed_arithmetic(size, kernel, stride, padding, dilation)
            same = ("" if shape.torch_padding is None else
                    f"<br>ConvTranspose2d draws the course's picture with padding={shape.torch_padding}")
            return (f"<p><b>As the course draws it</b>: the input with {padding} zero(s) around it"
                    + (f", {stride - 1} between its pixels" if stride > 1 else "")
                    + f", convolved at stride 1: <b>{shape.course_output}×{shape.course_output}</b></p>"
                    f"<p><b>PyTorch's ConvTranspose2d</b>(padding={padding}): (W − 1)·S − 2P + d·(F − 1) + 1 = "
                    f"({size} − 1)·{stride} − 2·{padding} + {dilation}·{kernel - 1} + 1 = "
                    f"<b>{shape.torch_output}×{shape.torch_output}</b>{same}</p>")
        if mode == "Pooling":
            result = arithmetic.pool_arithmetic(size, kernel, stride, padding, dilation)
        else:
            result = arithmetic.conv_arithmetic(size, kernel, stride, padding, dilation, self.filters.value(),
                                                self.depth.value())
        if result.valid:
            verdict = f'<p style="{GOOD}"><b>{result.formula()}: a whole number, the kernel fits exactly</b></p>'
        else:
            verdict = f'<p style="{BAD}"><b>{result.formula()}: not possible, as the course says</b></p>'
        ceil = mode == "Pooling" and self.ceil_mode.isChecked()
        output = result.ceil_output if ceil else result.output
        depth = f"×{self.filters.value()}" if mode == "Convolution" else ""
        text = (f"{verdict}<p>PyTorch's output: <b>{output}×{output}{depth}</b>{' (ceil_mode)' if ceil else ''}</p>"
                f"<p>{result.message()}</p>")
        if result.params is not None:
            text += (f"<p>Parameters C × (F·F·D + 1) = <b>{result.params:,}</b><br>MACs (one per weight per output "
                     f"position) = <b>{result.macs:,}</b></p>")
        return text
