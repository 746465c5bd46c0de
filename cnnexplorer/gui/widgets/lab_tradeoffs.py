"""The Lab's "Trade-offs" page: the course's five design calculators (one 7×7 or three 3×3, the
bottleneck, 1×3 + 3×1, depthwise-separable, inception's 1×1 reductions).

Each opens on the course's numbers; its whole-number arguments (C, the input size, …) are
editable, read from the calculator's signature so that a new argument shows up by itself. The
counts are ``core.lab.tradeoffs``'s. Where the loaded model has such a block, a link makes it the
current layer (the tree and every tab follow).
"""

from __future__ import annotations

import html
import inspect

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFormLayout, QHBoxLayout, QLabel, QListWidget, QScrollArea, QVBoxLayout, QWidget)

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.lab.blocks import Block, blocks_of_handle
from cnnexplorer.core.lab.tradeoffs import TRADEOFFS, Tradeoff
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.spin_boxes import SpinBox
from cnnexplorer.gui.workers import JobRunner

NAMES = {"seven_vs_three": "One 7×7 or three 3×3", "bottleneck": "Bottleneck", "factorised": "1×3 + 3×1",
         "depthwise_separable": "Depthwise-separable", "inception_reduction": "Inception's 1×1 reductions"}
FIELD_TIPS = {"channels": "C: the maps in and out", "size": "The input's width (and height)",
              "in_channels": "The input's depth", "out_channels": "The number of filters",
              "kernel": "The kernel's side"}
BLOCK_KIND = {"seven_vs_three": "stacked_3x3", "bottleneck": "bottleneck", "factorised": "factorised",
              "depthwise_separable": "depthwise_separable", "inception_reduction": "reduction_1x1"}
"""The kind of block (``core.lab.blocks``) each calculator is about."""
BLOCKS_SHOWN = 12
BAD = "color: #b3261e"


def blocks_job(handle) -> Job[list[Block]]:
    yield Progress(0, None, "finding the model's blocks")
    return blocks_of_handle(handle)


def whole_number_arguments(function) -> dict[str, int]:
    """The calculator's arguments that take one whole number, with their defaults (the course's numbers)."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if isinstance(p.default, int) and not isinstance(p.default, bool)}


def tradeoff_html(result: Tradeoff) -> str:
    """The two designs as tables of terms (formula and count), their totals and the saving."""
    def rows(terms) -> str:
        return "".join(f"<tr><td>{html.escape(t.label)}</td><td>{t.formula}</td><td align=right>{t.count:,}</td></tr>"
                       for t in terms)

    def per_c(index: int) -> str:
        return f" (≈ {result.coefficients[index]:g}C²)" if result.coefficients else ""

    facts = "".join(f"<li>{html.escape(key.replace('_', ' '))}: {html.escape(str(value))}</li>"
                    for key, value in result.facts.items() if value is not None)
    note = f"<p><i>Note: {html.escape(result.note)}.</i></p>" if result.note else ""
    return (f"<h3>{html.escape(result.title)}</h3>"
            f"<table cellspacing=0 cellpadding=4 border=1>"
            f"<tr><th colspan=3 align=left>{html.escape(result.before_label)}</th></tr>{rows(result.before)}"
            f"<tr><td colspan=2><b>total</b></td><td align=right><b>{result.before_total:,}</b></td></tr>"
            f"<tr><th colspan=3 align=left>{html.escape(result.after_label)}</th></tr>{rows(result.after)}"
            f"<tr><td colspan=2><b>total</b></td><td align=right><b>{result.after_total:,}</b></td></tr></table>"
            f"<p><b>{result.before_total:,}{per_c(0)} → {result.after_total:,}{per_c(1)} {result.unit}: "
            f"{100 * result.saving:.0f} % fewer</b></p>"
            f"<p>The course: {html.escape(result.course)}</p>{note}"
            + (f"<ul>{facts}</ul>" if facts else ""))


class TradeoffsPage(QWidget):
    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.found: tuple[object, list[Block]] | None = None  # (handle, its blocks)
        self.list = QListWidget()
        self.list.addItems([NAMES.get(name, name) for name in TRADEOFFS])
        self.list.setMaximumWidth(230)
        self.fields = QWidget()
        self.form = QFormLayout(self.fields)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        self.result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.blocks = QLabel()
        self.blocks.setWordWrap(True)
        self.blocks.linkActivated.connect(session.set_layer)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.addWidget(self.fields)
        detail_layout.addWidget(self.result)
        detail_layout.addWidget(self.blocks)
        detail_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(detail)
        layout = QHBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(scroll, 1)
        self.boxes: dict[str, SpinBox] = {}
        self.list.currentRowChanged.connect(self._choose)
        self.list.setCurrentRow(0)

    @property
    def name(self) -> str:
        return list(TRADEOFFS)[max(self.list.currentRow(), 0)]

    def _choose(self, *_) -> None:
        """The chosen calculator's fields, on the course's numbers."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.boxes = {}
        for argument, default in whole_number_arguments(TRADEOFFS[self.name]).items():
            box = SpinBox()
            box.setRange(1, 100_000)
            box.setMaximumWidth(140)
            box.setValue(default)
            box.setToolTip(FIELD_TIPS.get(argument, argument) + f" (the course: {default})")
            box.valueChanged.connect(self.refresh)
            self.boxes[argument] = box
            self.form.addRow("C channels" if argument == "channels" else argument.replace("_", " "), box)
        self.refresh()

    def refresh(self, *_) -> None:
        try:
            result = TRADEOFFS[self.name](**{key: box.value() for key, box in self.boxes.items()})
        except UserError as exc:
            self.result.setText(f'<p style="{BAD}">{html.escape(str(exc))}</p>')
            return
        self.result.setText(tradeoff_html(result))
        self.blocks.setText(self._blocks_text())

    def _blocks_text(self) -> str:
        """Links to the loaded model's blocks of this design, found once per model in a worker."""
        handle = self.session.model
        if handle is None:
            return ""
        if self.found is None or self.found[0] is not handle:
            self.found = (handle, [])
            self.jobs.start(lambda: blocks_job(handle), kind="lab-blocks", label="finding the model's blocks",
                            on_result=lambda blocks: self._found(handle, blocks))
            return "Looking for such blocks in the model …"
        kind = BLOCK_KIND.get(self.name)
        blocks = [b for b in self.found[1] if b.kind == kind]
        if not blocks:
            return f"{handle.spec} has no such block."
        links = ", ".join(f'<a href="{b.layer}">{" → ".join(b.layers)}</a>' for b in blocks[:BLOCKS_SHOWN])
        more = f" and {len(blocks) - BLOCKS_SHOWN} more" if len(blocks) > BLOCKS_SHOWN else ""
        return f"In {handle.spec} ({blocks[0].text}), click to select: {links}{more}"

    def _found(self, handle, blocks: list[Block]) -> None:
        if self.found is not None and self.found[0] is handle:
            self.found = (handle, blocks)
            self.blocks.setText(self._blocks_text())
