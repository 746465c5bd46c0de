"""The feature-space map: a probe set's images as points of a 2-D projection, coloured by group.

One ``ScatterPlotItem`` per group (label, prediction or correctness) with one brush each keeps
50,000 points cheap to pan and zoom: pyqtgraph draws a group's points from one cached symbol. Colours
and legend follow the exported picture (``pictures/map.py``): larger groups drawn first, so small ones
stay visible, and the legend beside the plot names the largest (``legend_groups``) with their counts
and counts the rest (a model's 1,000 classes would otherwise fill the window).
Hovering shows the nearest point's thumbnail and name beside it; a click emits ``picked``; with
Shift held, a drag draws a rectangle, with Ctrl held a free outline (a lasso), and ``selected``
carries the points inside it. The rectangle or outline stays drawn until the next selection (ringing
each selected point instead cost 110 ms for 50,000 and slowed every repaint), and ``point_out`` rings
one point (the image chosen in the selection's list).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal

from cnnexplorer.core.dataset.projection import in_polygon, in_rectangle
from cnnexplorer.gui.widgets.legend import legend_beside
from cnnexplorer.pictures.map import MAX_LEGEND, PALETTE, legend_groups

HOVER_PIXELS = 12  # a point farther than this from the pointer (on screen) shows nothing
LEGEND_ROW, LEGEND_FRAME = 22, 18  # pixels: a row of pyqtgraph's legend, and its frame's padding
LEGEND_BELOW = 30  # pixels under the legend's column: the bottom axis
LABEL_CHARACTERS = 32  # a longer group name is cut short with an ellipsis
LASSO_STEP = 4  # pixels: the lasso's outline takes a pointer position this far from its last corner


class _SelectBox(pg.ViewBox):
    """A view box whose Shift-drag draws a selection rectangle, and Ctrl-drag a lasso, instead of panning."""

    def __init__(self, on_select, on_lasso):
        super().__init__()
        self.on_select, self.on_lasso = on_select, on_lasso
        self.band = pg.QtWidgets.QGraphicsRectItem()
        self.lasso = pg.QtWidgets.QGraphicsPathItem()
        for shape in (self.band, self.lasso):
            shape.setPen(pg.mkPen((60, 60, 60), width=1, style=Qt.PenStyle.DashLine))
            shape.setBrush(pg.mkBrush(60, 120, 220, 40))
            shape.setZValue(1e9)
            shape.hide()
            self.addItem(shape, ignoreBounds=True)
        self._corners: list[QPointF] = []  # the lasso's outline so far, on screen

    def clear_selection(self) -> None:
        """Hide the last selection's rectangle or outline."""
        self.band.hide()
        self.lasso.hide()

    def mouseDragEvent(self, event, axis=None):
        if event.button() != Qt.MouseButton.LeftButton or not event.modifiers() & (
                Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier):
            super().mouseDragEvent(event, axis)
            return
        event.accept()
        if event.isStart():
            self.clear_selection()
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            rect = QRectF(self.mapToView(event.buttonDownPos()), self.mapToView(event.pos())).normalized()
            self.band.setRect(rect)
            self.band.show()  # drawn while dragging, and left drawn with the selection it made
            if event.isFinish():
                self.on_select(rect)
            return
        if event.isStart() or not self._corners:
            self._corners = [event.buttonDownPos()]
        if (event.pos() - self._corners[-1]).manhattanLength() >= LASSO_STEP:
            self._corners.append(event.pos())
        outline = [self.mapToView(corner) for corner in self._corners]
        self.lasso.setPath(pg.arrayToQPath(np.array([p.x() for p in outline] + [outline[0].x()]),
                                           np.array([p.y() for p in outline] + [outline[0].y()])))
        self.lasso.show()
        if event.isFinish():
            self._corners = []
            self.on_lasso(np.array([(p.x(), p.y()) for p in outline]))


class FeatureMap(pg.PlotWidget):
    """Points at ``xy``, one colour per group; hover, click, rectangle and lasso selection report point numbers."""

    picked = Signal(int)
    selected = Signal(object)  # a list of point numbers: as an object, not converted item by item

    def __init__(self, parent=None):
        self.box = _SelectBox(self._select, self._lasso)
        super().__init__(parent, viewBox=self.box, background="w")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.legend = legend_beside(self)
        self.xy = np.zeros((0, 2))
        self.names: list[str] = []
        self.thumbnails: np.ndarray | None = None
        self.groups: list[pg.ScatterPlotItem] = []
        self._present: list[tuple[int, str, int]] = []  # (group, name, count) of the groups drawn
        self._items: dict[int, pg.ScatterPlotItem] = {}
        self._legend_rows = 0  # rows the legend was filled for
        self.hover_image = pg.ImageItem()
        self.hover_text = pg.TextItem(color=(20, 20, 20), fill=pg.mkBrush(255, 255, 255, 220), anchor=(0, 1))
        for item in (self.hover_image, self.hover_text):
            item.setZValue(1e8)
            item.hide()
            self.addItem(item, ignoreBounds=True)
        self.pointed = pg.ScatterPlotItem(size=18, pen=pg.mkPen((200, 30, 30), width=2.5), brush=None)
        self.pointed.setZValue(1e7)  # above every group, beneath the hover's thumbnail
        self.addItem(self.pointed, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._hover)
        self.scene().sigMouseClicked.connect(self._click)

    def show_points(self, xy: np.ndarray, group: np.ndarray, group_names: list[str], names: list[str],
                    thumbnails: np.ndarray | None = None) -> None:
        """Draw ``xy`` [N, 2]; ``group`` [N] indexes ``group_names``; ``names`` and ``thumbnails`` [N, h, w, 3]
        are what hovering shows."""
        for item in self.groups:
            self.removeItem(item)
        self.legend.clear()
        self.box.clear_selection()
        self.pointed.clear()
        self.xy, self.names, self.thumbnails = np.asarray(xy, dtype=np.float64), list(names), thumbnails
        self.groups = []
        counts = np.bincount(np.asarray(group, dtype=np.int64), minlength=len(group_names))
        self._present = [(number, name, int(counts[number])) for number, name in enumerate(group_names) if counts[number]]
        self._items = {}
        for number, name, _ in sorted(self._present, key=lambda entry: -entry[2]):  # the larger first, beneath
            members = np.flatnonzero(group == number)
            self._items[number] = pg.ScatterPlotItem(self.xy[members, 0], self.xy[members, 1], size=6, pen=None,
                                                     antialias=False, name=name,
                                                     brush=pg.mkBrush(*PALETTE[number % len(PALETTE)], 170))
            self.addItem(self._items[number])
            self.groups.append(self._items[number])
        self._fill_legend()
        self.autoRange()

    def _rows(self) -> int:
        """Legend rows that fit beside the plot at its present height (at least two)."""
        return max(2, (self.height() - LEGEND_BELOW - LEGEND_FRAME) // LEGEND_ROW)

    def _fill_legend(self) -> None:
        """The legend for the groups drawn: the largest that fit beside the plot (``legend_groups``, at most the
        exported map's 20), in class order with their counts, and one line counting the rest."""
        self.legend.clear()
        self.legend.setVisible(bool(self._present))  # no points: no empty frame
        self._legend_rows = rows = self._rows()
        everyone = len(self._present) <= min(rows, MAX_LEGEND)
        named = legend_groups(self._present, len(self._present) if everyone else min(rows - 1, MAX_LEGEND))
        for number, name, count in named:
            short = name if len(name) <= LABEL_CHARACTERS else name[: LABEL_CHARACTERS - 1] + "…"
            self.legend.addItem(self._items[number], f"{short} ({count:,})")
        if len(self._present) > len(named):
            rest = sum(count for _, _, count in self._present) - sum(count for _, _, count in named)
            self.legend.addItem(pg.PlotDataItem(pen=None), f"{len(self._present) - len(named)} more groups ({rest:,} images)")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if getattr(self, "_present", None) and self._rows() != self._legend_rows:  # pyqtgraph resizes during __init__
            self._fill_legend()

    def nearest(self, scene_pos: QPointF) -> int | None:
        """The point nearest ``scene_pos`` within ``HOVER_PIXELS`` on screen, or None."""
        if not len(self.xy):
            return None
        view = self.box.mapSceneToView(scene_pos)
        per_pixel = self.box.viewPixelSize()
        dx = (self.xy[:, 0] - view.x()) / per_pixel[0]
        dy = (self.xy[:, 1] - view.y()) / per_pixel[1]
        distance = dx * dx + dy * dy
        best = int(np.argmin(distance))
        return best if distance[best] <= HOVER_PIXELS ** 2 else None

    def inside(self, rect: QRectF) -> list[int]:
        """Numbers of the points inside ``rect`` (view coordinates)."""
        return in_rectangle(self.xy, (rect.left(), rect.top()), (rect.right(), rect.bottom())).tolist()

    def _select(self, rect: QRectF) -> None:
        self._selected(self.inside(rect))

    def _lasso(self, outline: np.ndarray) -> None:
        """``outline`` [M, 2] (view coordinates): the lasso's corners, closed from the last to the first."""
        self._selected(in_polygon(self.xy, outline).tolist())

    def _selected(self, numbers: list[int]) -> None:
        if not numbers:
            self.box.clear_selection()  # nothing inside: no shape left to show
        self.point_out(None)
        self.selected.emit(numbers)

    def point_out(self, number: int | None) -> None:
        """Ring point ``number`` boldly, or none."""
        if number is None:
            self.pointed.clear()
        else:
            self.pointed.setData([self.xy[number, 0]], [self.xy[number, 1]])

    def _hover(self, scene_pos: QPointF) -> None:
        point = self.nearest(scene_pos)
        for item in (self.hover_image, self.hover_text):
            item.setVisible(point is not None)
        if point is None:
            return
        x, y = self.xy[point]
        self.hover_text.setText(self.names[point] if point < len(self.names) else str(point))
        self.hover_text.setPos(x, y)
        if self.thumbnails is not None:
            side = 48 * self.box.viewPixelSize()[0], 48 * self.box.viewPixelSize()[1]
            self.hover_image.setImage(self.thumbnails[point][::-1])  # row 0 on top: the plot's y points up
            self.hover_image.setRect(QRectF(x, y, side[0], side[1]))
        self.hover_image.setVisible(self.thumbnails is not None)

    def _click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return
        point = self.nearest(event.scenePos())
        if point is not None:
            self.picked.emit(point)
