"""The ranked channels of a layer sweep: each channel switched off alone, sorted by how much the
target's probability drops, as a small table under the activation grid (no dialog). A click
on a row makes that channel the current unit."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from cnnexplorer.core.interventions import SweepResult

SHOWN = 20
"""Rows of the table: the channels that matter most."""
MAX_HEIGHT = 190
"""The panel's height at most: the grid above keeps the room."""


class SweepPanel(QWidget):
    channel_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: SweepResult | None = None
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["channel", "probability off", "drop"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.cellClicked.connect(lambda row, _: self.channel_clicked.emit(self.result.channels[row]))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        self.setMaximumHeight(MAX_HEIGHT)
        self.setVisible(False)

    def show_message(self, text: str) -> None:
        self.result = None
        self.title.setText(text)
        self.table.setRowCount(0)
        self.setVisible(True)

    def show_result(self, result: SweepResult, label: str) -> None:
        self.result = result
        self.title.setText(f"Sweep of {result.layer}: each channel off alone, '{label}' at p = {result.base:.3f} "
                           f"with every channel on; the {min(SHOWN, len(result.channels))} largest drops")
        rows = min(SHOWN, len(result.channels))
        self.table.setRowCount(rows)
        for row, (channel, prob, drop) in enumerate(zip(result.channels, result.probs, result.drops)):
            if row >= rows:
                break
            for column, text in enumerate((str(channel), f"{prob:.3f}", f"{drop:+.3f}")):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.setVisible(True)
