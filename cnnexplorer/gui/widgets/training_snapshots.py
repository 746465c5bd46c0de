"""A slider, on the Training tab's Snapshots page, that scrubs through the epochs' snapshots: first-layer filters and the probe heatmap.

The slider's values are the epoch numbers themselves (a resumed run's start at its checkpoint's next epoch),
so its position, its keyboard steps and its label all count the epochs run.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSlider, QWidget

from cnnexplorer.core.training.snapshots import Snapshot
from cnnexplorer.gui.widgets.canvas import ImageCanvas


class SnapshotScrubber(QWidget):
    """Shows one epoch's snapshot; follows the newest one unless the user has moved the slider back."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.snapshots: list[Snapshot] = []
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setToolTip("The epoch whose snapshot is shown")
        self.slider.valueChanged.connect(self.show_epoch)
        self.label = QLabel("Snapshots of each epoch appear here while training.")
        self.label.setWordWrap(True)
        self.filters = ImageCanvas()
        self.heatmap = ImageCanvas()
        self.filters_title, self.heatmap_title = QLabel("First-layer filters"), QLabel("Probe heatmap")
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 0, 0)
        layout.addWidget(self.slider, 0, 1)
        layout.addWidget(self.filters_title, 1, 0)
        layout.addWidget(self.heatmap_title, 1, 1)
        layout.addWidget(self.filters, 2, 0)
        layout.addWidget(self.heatmap, 2, 1)
        layout.setRowStretch(2, 1)

    def set_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = []
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        for snapshot in snapshots:
            self.append(snapshot)

    def append(self, snapshot: Snapshot) -> None:
        follow = not self.snapshots or self.slider.value() == self.snapshots[-1].epoch
        self.snapshots.append(snapshot)
        self.slider.setEnabled(True)
        with QSignalBlocker(self.slider):
            self.slider.setRange(self.snapshots[0].epoch, snapshot.epoch)
            if follow:
                self.slider.setValue(snapshot.epoch)
        self.show_epoch(self.slider.value())

    def show_epoch(self, epoch: int) -> None:
        """The snapshot of ``epoch`` (1-based), or of the last epoch before it that has one."""
        shown = [s for s in self.snapshots if s.epoch <= epoch]
        if not shown:
            return
        snap = shown[-1]
        self.label.setText(f"Epoch {snap.epoch} of {self.snapshots[-1].epoch} run")
        self.heatmap_title.setText("Probe: Grad-CAM" if snap.method == "gradcam" else "Probe: gradient saliency")
        if snap.filters is not None:
            self.filters.set_pixels(snap.filters)
        self.heatmap.set_pixels(snap.heatmap)
