"""The "Summary" tab: the layer table picture, the same pixels as ``cnnexplorer export summary``."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnnexplorer.core.jobs import Progress
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.views.canvas import ImageCanvas
from cnnexplorer.gui.workers import JobRunner


def _render_job(summary):
    from cnnexplorer.core.charts import render_summary_table

    yield Progress(0, None, "drawing the layer table")
    return render_summary_table(summary)


class SummaryView(View):
    title = "Summary"
    view_name = "summary"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.canvas = ImageCanvas(fit="width")
        self.caption = QLabel("Load a model to see its layer table.")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        self._summary = None
        self._pixels: np.ndarray | None = None
        session.model_changed.connect(self.refresh)
        self.refresh()

    def compute(self) -> None:
        summary = self.session.summary
        if summary is None or summary is self._summary:
            return
        self._summary, self._pixels = summary, None
        self.canvas.clear()
        self.caption.setText("Drawing the layer table …")
        self.jobs.start(lambda: _render_job(summary), kind="summary-view", label="drawing the layer table",
                        on_result=lambda pixels: self._show(summary, pixels))

    def _show(self, summary, pixels: np.ndarray) -> None:
        if summary is not self.session.summary:
            return
        self._pixels = pixels
        self.canvas.set_pixels(pixels)
        self.caption.setText(
            f"{summary.total_params:,} parameters, {summary.macs / 1e6:,.1f} M MACs at "
            f"{'×'.join(map(str, summary.input_size))} — scroll to zoom, drag to pan"
        )

    def picture(self) -> tuple[np.ndarray, dict] | None:
        if self._pixels is None:
            return None
        return self._pixels, {"input_size": list(self._summary.input_size)}
