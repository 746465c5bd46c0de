"""The methods × metrics faithfulness table: one row per heatmap method and the random map's row
(the baseline), one column per metric, the best value of each column in bold."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from cnnexplorer.core.faithfulness import BETTER, METRICS, RANDOM

HEADERS = {"deletion_auc": "Deletion AUC ↓", "insertion_auc": "Insertion AUC ↑", "road_morf": "ROAD MoRF ↓",
           "road_lerf": "ROAD LeRF ↑", "pointing": "Pointing ↑"}
TIPS = {"deletion_auc": "Area under the target's probability as the most relevant pixels go to the mean colour first "
                        "(lower: the map found what the model needs)",
        "insertion_auc": "Area under the probability as the most relevant pixels come back first into a blurred "
                         "image (higher is better)",
        "road_morf": "ROAD: mean probability with the most relevant 10–90 % of pixels imputed from their neighbours "
                     "(lower is better)",
        "road_lerf": "ROAD: the same with the least relevant pixels removed first (higher is better)",
        "pointing": "Share of images whose map peaks inside a user box (higher is better)"}


class FaithfulnessTable(QTableWidget):
    def __init__(self, parent=None):
        super().__init__(0, 0, parent)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.report: dict | None = None

    def forget(self) -> None:
        """Show no report (its model is gone)."""
        self.report = None
        self.clear()
        self.setRowCount(0)
        self.setColumnCount(0)

    def show_report(self, report: dict) -> None:
        """A ``Table.to_json()`` report."""
        self.report = report
        rows = report["methods"]
        metrics = [m for m in METRICS if any(m in row for row in rows.values())]
        self.clear()
        self.setRowCount(len(rows))
        self.setColumnCount(len(metrics))
        self.setHorizontalHeaderLabels([HEADERS[m] for m in metrics])
        self.setVerticalHeaderLabels([f"{name} (baseline)" if name == RANDOM else name for name in rows])
        for column, metric in enumerate(metrics):
            self.horizontalHeaderItem(column).setToolTip(TIPS[metric])
            values = [row[metric] for row in rows.values() if metric in row]
            best = (min if BETTER[metric] == "lower" else max)(values)
            for row_number, row in enumerate(rows.values()):
                if metric not in row:
                    continue
                item = QTableWidgetItem(f"{row[metric]:.3f}")
                if row[metric] == best:
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(row_number, column, item)
        if RANDOM in rows:
            for column in range(len(metrics)):
                item = self.item(list(rows).index(RANDOM), column)
                if item is not None:
                    item.setForeground(QColor(110, 110, 110))

    def value(self, method: str, metric: str) -> float | None:
        return None if self.report is None else self.report["methods"].get(method, {}).get(metric)
