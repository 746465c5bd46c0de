"""The "Summary" tab: the ``summary`` recipe's layer table picture (``pictures.summary``), the same
pixels as ``cnnexplorer export summary``.

The current layer's row is highlighted (and scrolled into view), and clicking a row makes its
layer current, as in the Model tree. A picture cannot be pasted into a spreadsheet or a report, so
the table is also copied as text (Ctrl+C: tab-separated; or Markdown), written by
``core.layer_text.summary_table_text``. Hovering the header row explains the RF / jump column.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QKeySequence, QPen, QShortcut
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnnexplorer.core.charts import ROW_HEIGHT, TABLE_TOP
from cnnexplorer.core.layer_text import RF_TIP, split_text, summary_table_text
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner
from cnnexplorer.pictures.base import Picture
from cnnexplorer.pictures.summary import table_job

HIGHLIGHT = QColor(70, 120, 180, 70)


class SummaryView(View):
    title = "Summary"
    view_name = "summary"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.canvas = ImageCanvas(fit="width")
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.highlight = QGraphicsRectItem()
        self.highlight.setBrush(QBrush(HIGHLIGHT))
        self.highlight.setPen(QPen(Qt.PenStyle.NoPen))
        self.highlight.hide()
        self.canvas.view_box.addItem(self.highlight)
        self.canvas.scene().sigMouseMoved.connect(self._on_hover)
        self.caption = QLabel("Load a model to see its layer table.")
        self.caption.setWordWrap(True)
        self.caption.setToolTip(RF_TIP)
        self.copy_buttons = {fmt: QPushButton(text) for fmt, text in (("tsv", "Copy as text"),
                                                                      ("markdown", "Copy as Markdown"))}
        self.copy_buttons["tsv"].setToolTip("Copy the layer table as tab-separated text, for a spreadsheet (Ctrl+C)")
        self.copy_buttons["markdown"].setToolTip("Copy the layer table as a Markdown table, for a report or an issue")
        footer = QHBoxLayout()
        footer.addWidget(self.caption, 1)
        for fmt, button in self.copy_buttons.items():
            button.setEnabled(False)
            button.clicked.connect(lambda _=False, fmt=fmt: self.copy_table(fmt))
            footer.addWidget(button)
        shortcut = QShortcut(QKeySequence.StandardKey.Copy, self)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(self.copy_table)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(footer)
        self._summary = None
        self._picture: Picture | None = None
        self._totals = ""
        self.rows: dict[str, int] = {}
        session.model_changed.connect(self.refresh)
        session.layer_changed.connect(self._highlight_layer)
        self.refresh()

    def compute(self) -> None:
        summary = self.session.summary
        if summary is None or summary is self._summary:
            return
        self._summary, self._picture, self.rows = summary, None, {}
        for button in self.copy_buttons.values():
            button.setEnabled(False)
        self.canvas.clear()
        self.highlight.hide()
        self.caption.setText("Drawing the layer table …")
        self.jobs.start(lambda: table_job(summary), kind="summary-view", label="drawing the layer table",
                        on_result=lambda drawn: self._show(summary, *drawn))

    def _show(self, summary, picture: Picture, rows: dict[str, int]) -> None:
        if summary is not self.session.summary:
            return
        self._picture, self.rows = picture, rows
        self.canvas.set_pixels(picture.pixels)
        self._highlight_layer()
        for button in self.copy_buttons.values():
            button.setEnabled(True)
        split = split_text(summary)
        self._totals = (f"{summary.total_params:,} parameters, {summary.macs / 1e6:,.1f} M MACs at "
                        f"{'×'.join(map(str, summary.input_size))}" + (f" · {split}" if split else "")
                        + " — scroll to zoom, drag to pan")
        self.caption.setText(self._totals)

    def _highlight_layer(self, *_) -> None:
        """Mark the current layer's row, scrolling the table to it when it is out of view."""
        top = self.rows.get(self.session.layer or "")
        if top is None or self._picture is None:
            self.highlight.hide()
            return
        self.highlight.setRect(QRectF(0, top, self._picture.pixels.shape[1], ROW_HEIGHT))
        self.highlight.show()
        shown_top, shown_bottom = self.canvas.view_box.viewRange()[1]
        if not shown_top <= top <= shown_bottom - ROW_HEIGHT:
            shift = top - (shown_top + shown_bottom) / 2
            self.canvas.view_box.setYRange(shown_top + shift, shown_bottom + shift, padding=0)

    def copy_table(self, fmt: str = "tsv") -> None:
        """Put the shown table on the clipboard as text (``tsv`` or ``markdown``)."""
        if self._picture is None:
            return
        QGuiApplication.clipboard().setText(summary_table_text(self._summary, fmt))
        kind = "tab-separated text" if fmt == "tsv" else "Markdown"
        self.caption.setText(f"{self._totals}\ncopied the table of {len(self.rows)} layers as {kind}")

    def _on_hover(self, scene_pos) -> None:
        """Over the header row, the tooltip says how the RF / jump column is worked out."""
        y = self.canvas.view_box.mapSceneToView(scene_pos).y()
        over_header = self._picture is not None and TABLE_TOP <= y < TABLE_TOP + ROW_HEIGHT
        self.canvas.setToolTip(RF_TIP if over_header else "")

    def _on_click(self, event) -> None:
        point = self.canvas.left_click_point(event)
        if point is None or self._picture is None:
            return
        y = point.y()
        hit = next((name for name, top in self.rows.items() if top <= y < top + ROW_HEIGHT), None)
        if hit is not None:
            event.accept()
            self.session.set_layer(hit)

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self._picture is None:
            return None
        return self._picture.pixels, self._picture.settings
