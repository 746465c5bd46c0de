"""Live curves: the true class's and the target's probability over an attack's iterations.

For an untargeted attack the second curve is the most likely wrong class. The attack's
generator yields one ``AttackStep`` per iteration and each is appended as it comes.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from cnnexplorer.core.adversarial import AttackStep
from cnnexplorer.gui.widgets.legend import readable_legend

TRUE_COLOUR = (31, 119, 180)
TARGET_COLOUR = (232, 89, 12)


class ProbabilityCurve(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMinimumSize(260, 200)
        self.setLabel("bottom", "iteration")
        self.setLabel("left", "probability")
        self.setYRange(0, 1, padding=0.02)
        self.getPlotItem().enableAutoRange(y=False)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.getPlotItem().setMenuEnabled(False)
        self.legend = readable_legend(self, (-10, 10))
        self.true_curve = self.plot([], [], pen=pg.mkPen(TRUE_COLOUR, width=2), symbol="o", symbolSize=4,
                                    symbolBrush=TRUE_COLOUR, symbolPen=None, name="true class")
        self.target_curve = self.plot([], [], pen=pg.mkPen(TARGET_COLOUR, width=2), symbol="o", symbolSize=4,
                                      symbolBrush=TARGET_COLOUR, symbolPen=None, name="target")
        for curve in (self.true_curve, self.target_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.iterations: list[int] = []
        self.true_probs: list[float] = []
        self.target_probs: list[float] = []

    def reset(self, true_label: str, target_label: str) -> None:
        """Empty curves, named after the classes they follow."""
        self.iterations, self.true_probs, self.target_probs = [], [], []
        self.legend.clear()
        self.legend.addItem(self.true_curve, f"true: {true_label}")
        self.legend.addItem(self.target_curve, target_label)
        self._redraw()

    def empty(self) -> None:
        """No curve: the attack it showed was on another image or model. (Not ``clear``: pyqtgraph's
        PlotWidget sets that name on each instance, to its plot's ``clear``, which removes the items.)"""
        self.reset("—", "—")

    def add(self, step: AttackStep) -> None:
        self.iterations.append(step.iteration)
        self.true_probs.append(step.true_prob)
        self.target_probs.append(step.target_prob)
        self._redraw()

    def _redraw(self) -> None:
        self.true_curve.setData(self.iterations, self.true_probs)
        self.target_curve.setData(self.iterations, self.target_probs)
        self.setXRange(0, max(1, len(self.iterations) - 1), padding=0.02)
