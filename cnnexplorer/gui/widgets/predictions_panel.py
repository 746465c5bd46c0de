"""The top-5 predictions as clickable bars: clicking a class makes it the views' target.

Painted by hand (not a chart widget) so each row is a hit target with hover feedback and the
current target stands out; the exported picture is the ``predictions`` recipe's chart
(``pictures.predictions``), so the GUI and the CLI's ``export predictions`` write the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PIL.ImageQt import ImageQt
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QMouseEvent, QPainter, QPalette
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolTip, QWidget

from cnnexplorer.core.charts import BAR
from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.dialogs import save_as
from cnnexplorer.gui.session import Session
from cnnexplorer.pictures.base import Picture, save_picture
from cnnexplorer.pictures.predictions import RECIPE, PredictionsOptions, picture_of

TITLE = "Predictions (top-5)"
MARGIN = 10
BAR_HEIGHT = 10
ROW_GAP = 8
BAR_COLOUR = QColor(*BAR)  # the exported chart's bar colour
TARGET_COLOUR = QColor("#e8590c")


def format_prob(prob: float) -> str:
    """``0.7123`` → ``71.2 %``; tiny but non-zero probabilities do not read as zero."""
    return "<0.1 %" if 0 < prob < 0.0005 else f"{prob * 100:.1f} %"


class PredictionsPanel(QWidget):
    """Shows ``session.predictions``; a click on a row toggles ``session.target``."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self._hover: int | None = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_menu)
        for signal in (session.predictions_changed, session.target_changed, session.image_changed,
                       session.model_changed):
            signal.connect(self._changed)

    # geometry -------------------------------------------------------------------------
    def _line(self) -> int:
        return self.fontMetrics().height()

    def _header_height(self) -> int:
        return MARGIN + 2 * self._line() + 4 + ROW_GAP

    def _row_height(self) -> int:
        return self._line() + 3 + BAR_HEIGHT + ROW_GAP

    def row_rect(self, row: int) -> QRect:
        """The clickable area of prediction ``row`` (label line and bar)."""
        top = self._header_height() + row * self._row_height()
        return QRect(0, top - ROW_GAP // 2, self.width(), self._row_height())

    def bar_rect(self, row: int) -> QRect:
        """The full-length track of prediction ``row``'s bar (the filled part starts at its left)."""
        top = self.row_rect(row).top() + ROW_GAP // 2 + self._line() + 3
        return QRect(MARGIN, top, self.width() - 2 * MARGIN, BAR_HEIGHT)

    def row_at(self, y: int) -> int | None:
        """The prediction row under widget y-coordinate ``y``, or None."""
        offset = y - self.row_rect(0).top()
        row = offset // self._row_height() if offset >= 0 else -1
        return row if 0 <= row < len(self.session.predictions) else None

    def sizeHint(self):  # noqa: N802 - Qt override
        size = self.minimumSizeHint()
        size.setWidth(280)
        return size

    def minimumSizeHint(self):  # noqa: N802 - Qt override
        rows = max(5, len(self.session.predictions))
        return QSize(160, self._header_height() + rows * self._row_height() + MARGIN)

    # state ------------------------------------------------------------------------------
    def _changed(self, *_) -> None:
        self._hover = None
        self.unsetCursor()
        self.updateGeometry()
        self.update()

    def subtitle(self) -> str:
        """The line under the title: which class the views target, and how to change it."""
        target = self.session.target
        if target is None:
            return "Click a class to make it the target"
        for score in self.session.predictions:
            if score.index == target:
                return f"Target: {score.label} · click again to clear"
        model = self.session.model
        return f"Target: {model.label(target) if model is not None else f'class {target}'} (not in the top-5)"

    # painting ---------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.Text)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        width = self.width() - 2 * MARGIN
        line = self._line()
        bold = QFont(self.font())
        bold.setBold(True)

        painter.setFont(bold)
        painter.setPen(text)
        painter.drawText(QRect(MARGIN, MARGIN, width, line), Qt.AlignmentFlag.AlignLeft, TITLE)
        scores = self.session.predictions
        if not scores:
            self._paint_empty(painter, MARGIN + line + 6, width, muted)
            return
        painter.setFont(self.font())
        painter.setPen(muted if self.session.target is None else TARGET_COLOUR)
        painter.drawText(QRect(MARGIN, MARGIN + line + 2, width, line), Qt.AlignmentFlag.AlignLeft,
                         self.fontMetrics().elidedText(self.subtitle(), Qt.TextElideMode.ElideRight, width))
        for row, score in enumerate(scores):
            self._paint_row(painter, row, score, width, palette)

    def _paint_empty(self, painter: QPainter, top: int, width: int, muted: QColor) -> None:
        session = self.session
        if session.image is None:
            hint = "Load an image to see predictions"
        elif session.model is None:
            hint = "Open a model to see predictions"
        else:
            hint = "They appear here when the model has run"
        painter.setFont(self.font())
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        left = Qt.AlignmentFlag.AlignLeft
        painter.drawText(QRect(MARGIN, top + 6, width, self._line()), left, "No predictions yet")
        painter.setPen(muted)
        painter.drawText(QRect(MARGIN, top + 8 + self._line(), width, 2 * self._line()),
                         left | Qt.TextFlag.TextWordWrap, hint)

    def _paint_row(self, painter: QPainter, row: int, score, width: int, palette: QPalette) -> None:
        is_target = score.index == self.session.target
        area = self.row_rect(row)
        if row == self._hover:
            hover = QColor(palette.color(QPalette.ColorRole.Highlight))
            hover.setAlpha(28)
            painter.fillRect(area.adjusted(MARGIN // 2, 0, -MARGIN // 2, 0), hover)
        font = QFont(self.font())
        font.setBold(is_target)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        top = area.top() + ROW_GAP // 2
        percent = format_prob(score.prob)
        percent_width = metrics.horizontalAdvance("100.0 %") + 4
        label = metrics.elidedText(score.label, Qt.TextElideMode.ElideRight, width - percent_width - 6)
        painter.setPen(TARGET_COLOUR if is_target else palette.color(QPalette.ColorRole.Text))
        painter.drawText(QRect(MARGIN, top, width - percent_width, self._line()),
                         Qt.AlignmentFlag.AlignLeft, label)
        painter.drawText(QRect(MARGIN + width - percent_width, top, percent_width, self._line()),
                         Qt.AlignmentFlag.AlignRight, percent)
        bar = self.bar_rect(row)
        track = QColor(palette.color(QPalette.ColorRole.Mid))
        track.setAlpha(70)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(track)
        painter.drawRoundedRect(bar, 3, 3)
        if score.prob > 0:
            bar.setWidth(max(3, round(bar.width() * min(1.0, score.prob))))
            painter.setBrush(TARGET_COLOUR if is_target else BAR_COLOUR)
            painter.drawRoundedRect(bar, 3, 3)

    # interaction ------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        row = self.row_at(round(event.position().y()))
        if event.button() != Qt.MouseButton.LeftButton or row is None:
            super().mousePressEvent(event)
            return
        index = self.session.predictions[row].index
        self.session.set_target(None if index == self.session.target else index)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        row = self.row_at(round(event.position().y()))
        if row != self._hover:
            self._hover = row
            if row is None:
                self.unsetCursor()
            else:
                self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._hover = None
        self.unsetCursor()
        self.update()
        super().leaveEvent(event)

    def tooltip_at(self, y: int) -> str:
        """What a click on the row at ``y`` would do ("" outside the rows)."""
        row = self.row_at(y)
        if row is None:
            return ""
        score = self.session.predictions[row]
        if score.index == self.session.target:
            return f"Click to stop targeting '{score.label}' (the views then use the top-1 class)"
        return f"Click to make '{score.label}' the target class for the views"

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            row = self.row_at(event.pos().y())
            if row is None:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip_at(event.pos().y()), self, self.row_rect(row))
            return True
        return super().event(event)

    # export -----------------------------------------------------------------------------
    def chart(self) -> Picture | None:
        """The recipe's chart of the session's predictions (None while there are none)."""
        scores, image = self.session.predictions, self.session.image
        if not scores:
            return None
        options = PredictionsOptions(top=len(scores), target=self.session.target)
        return picture_of(scores, image.name if image is not None else "", options)

    def picture(self) -> tuple[np.ndarray, dict] | None:
        """The chart's pixels (the CLI's ``export predictions`` pixels) and its settings."""
        chart = self.chart()
        return None if chart is None else (chart.pixels, chart.settings)

    def export_png(self, path: str | Path) -> tuple[Path, Path]:
        """Write the chart and its sidecar beside it; return both paths."""
        chart = self.chart()
        if chart is None:
            raise UserError("there are no predictions to export; open an image and a model first")
        return save_picture(path, RECIPE.name, chart, self.session.model, self.session.image,
                            edits=self.session.interventions)

    def copy_chart(self) -> None:
        """Put the exported chart (not a screenshot) on the clipboard."""
        chart = self.chart()
        if chart is not None:
            QGuiApplication.clipboard().setImage(ImageQt(Image.fromarray(chart.pixels)).copy())

    def _show_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        has_chart = bool(self.session.predictions)
        menu.addAction("Copy chart", self.copy_chart).setEnabled(has_chart)
        menu.addAction("Export chart as PNG…", self._export_dialog).setEnabled(has_chart)
        menu.exec(self.mapToGlobal(pos))

    def _export_dialog(self) -> None:
        image = self.session.image
        default = Path("predictions.png") if image is None else image.beside("-predictions.png")
        save_as(self, "Export chart as PNG", str(default), "PNG images (*.png)", self.export_png)
