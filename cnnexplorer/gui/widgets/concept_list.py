"""The concepts of the current image at a layer, most relevant first: each row a small conditional
heatmap (the image with where that channel found its evidence) and the channel's share of the
layer's relevance. A click on a row asks for that channel as the current unit. ``ReferenceStrip``
shows a channel's reference images from a dataset index (thumbnails by activation and by relevance)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QListView, QListWidget, QListWidgetItem, QWidget

from cnnexplorer.gui.widgets.pixmaps import scaled_pixmap

if TYPE_CHECKING:
    from cnnexplorer.core.attribution.concepts import Concepts, References
    from cnnexplorer.pictures.heatmap_panels import Panels

THUMBNAIL = 96
"""Pixels on a row's heatmap side."""


REFERENCE = 48
"""Pixels on a reference thumbnail's side (the index keeps 32)."""


def _icon(pixels: np.ndarray) -> QIcon:
    return QIcon(scaled_pixmap(pixels, THUMBNAIL))


class ConceptList(QListWidget):
    """Ranked concepts as rows of icon and text; ``channel_clicked`` carries the channel clicked."""

    channel_clicked = Signal(int)
    menu_requested = Signal(int, QPoint)  # a right-click on a concept: its channel, where (global)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.setGridSize(QSize(THUMBNAIL + 56, THUMBNAIL + 44))
        self.setWordWrap(True)
        self.setToolTip("the channels this prediction rests on at the layer, most relevant first: click one to make it "
                        "the current unit; right-click to switch it off, scale it or keep only it")
        self.itemClicked.connect(lambda item: self.channel_clicked.emit(int(item.data(Qt.ItemDataRole.UserRole))))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_menu)

    def _on_menu(self, pos: QPoint) -> None:
        item = self.itemAt(pos)
        if item is not None:
            self.menu_requested.emit(int(item.data(Qt.ItemDataRole.UserRole)), self.viewport().mapToGlobal(pos))

    def set_concepts(self, concepts: Concepts, tiles: list[np.ndarray]) -> None:
        """Show ``concepts`` with ``tiles[i]`` (``H×W×3`` uint8) as concept ``i``'s heatmap."""
        self.clear()
        for concept, pixels in zip(concepts.concepts, tiles):
            item = QListWidgetItem(_icon(pixels), f"ch {concept.channel}\n{100 * concept.share:.1f} %")
            item.setData(Qt.ItemDataRole.UserRole, concept.channel)
            item.setToolTip(f"channel {concept.channel} of {concepts.layer}: relevance {concept.relevance:.4g}, "
                            f"{100 * concept.share:.1f} % of the layer's {concepts.total:.4g}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.addItem(item)

    def channels(self) -> list[int]:
        return [int(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def select_channel(self, channel: int | None) -> None:
        """Mark ``channel``'s row (the current unit), or none."""
        rows = [i for i, c in enumerate(self.channels()) if c == channel]
        self.setCurrentRow(rows[0] if rows else -1)


class ReferenceStrip(QWidget):
    """A channel's reference images: the index's top images by activation, and the same by relevance."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        self.rows = {kind: QLabel() for kind in ("activation", "relevance")}
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title, 0, 0, 1, 2)
        for row, (kind, label) in enumerate(self.rows.items(), start=1):
            layout.addWidget(QLabel(f"by {kind}"), 2 * row - 1, 0)
            layout.addWidget(label, 2 * row, 0, Qt.AlignmentFlag.AlignLeft)
        layout.setRowStretch(5, 1)
        self.shown: References | None = None

    def set_references(self, layer: str, references: References, thumbnails: np.ndarray) -> None:
        """Show ``references`` with the index's ``thumbnails`` (``[count, h, w, 3]`` uint8)."""
        self.shown = references
        self.title.setText(f"<b>channel {references.channel}</b> in the index")
        self.title.setToolTip(f"the dataset images channel {references.channel} of {layer} responds to most")
        for kind, images in (("activation", references.by_activation),
                             ("relevance", tuple(i for i, _ in references.by_relevance))):
            strip = [np.pad(thumbnails[i], ((0, 0), (0, 2), (0, 0)), constant_values=255) for i in images]
            label = self.rows[kind]
            label.setPixmap(scaled_pixmap(np.concatenate(strip, axis=1), REFERENCE * len(strip)) if strip else QPixmap())
            label.setToolTip("images " + ", ".join(map(str, images)))


def concept_tiles(panels: Panels, alpha: float, cmap: str | None, clip: float) -> list[np.ndarray]:
    """Each concept's conditional heatmap over the model input, as the rows show it."""
    from cnnexplorer.core.attribution import default_cmap, render_heatmap

    return [render_heatmap(panels.pixels, heatmap, alpha, cmap or default_cmap(heatmap), clip)
            for _, heatmap in panels.maps]
