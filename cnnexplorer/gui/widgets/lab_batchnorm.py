"""The Lab's "Batch norm" page: for a BatchNorm layer, its learned scale γ and shift β and the
running mean and variance it normalises with, one value per channel, as four plots.

A channel whose γ is near zero is switched off by the layer; a large running variance marks a
channel whose input swings widely. On any other layer the page names the model's BatchNorm layers
as links that make one current (in the tree and every tab).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget
from torch import nn

from cnnexplorer.core.hooks import find_layer
from cnnexplorer.core.lab.batchnorm import batchnorm_layers, batchnorm_stats
from cnnexplorer.gui.session import Session

PLOTS = (("gamma", "γ (scale, weight)"), ("beta", "β (shift, bias)"), ("running_mean", "running mean"),
         ("running_var", "running variance"))
LINKS_SHOWN = 40
BAR_COLOUR = (70, 120, 180)


class BatchNormPage(QWidget):
    """The four per-channel plots of the current BatchNorm layer, or links to the model's ones."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setOpenExternalLinks(False)
        self.message.linkActivated.connect(session.set_layer)
        self.plots: dict[str, pg.PlotWidget] = {}
        grid = QGridLayout()
        for index, (key, title) in enumerate(PLOTS):
            plot = pg.PlotWidget(background="w")
            plot.setTitle(title, color="k")
            plot.setLabel("bottom", "channel")
            plot.showGrid(y=True, alpha=0.3)
            plot.setMenuEnabled(False)
            self.plots[key] = plot
            grid.addWidget(plot, index // 2, index % 2)
        self.plot_area = QWidget()
        self.plot_area.setLayout(grid)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.plot_area, 1)
        layout.addStretch(0)
        self.shown_layer: str | None = None

    def refresh(self) -> None:
        handle, name = self.session.model, self.session.layer
        if handle is None:
            return self._hint("Load a model to see its batch-norm layers.")
        layer = find_layer(handle.module, name) if name else None
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            return self._hint_links(handle.module, name)
        self.shown_layer = name
        stats = batchnorm_stats(layer, name)
        self.plot_area.show()
        self.layout().setStretch(2, 0)
        for key, plot in self.plots.items():
            plot.clear()
            values = getattr(stats, key)
            if values is not None:
                plot.addItem(pg.BarGraphItem(x=np.arange(len(values)), height=values, width=0.8, brush=BAR_COLOUR,
                                             pen=None))
        off = int((np.abs(stats.gamma) < 1e-3).sum())
        running = ("no running statistics (it normalises with each batch's, in evaluation too)"
                   if stats.running_var is None else f"eps {stats.eps:g}")
        switched_off = f" · {off} channel(s) with |γ| < 0.001, switched off" if off else ""
        self.message.setText(f"<b>{name}</b> ({type(layer).__name__}, {stats.channels} channels): "
                             "y = γ·(x − mean)/√(var + eps) + β per channel, with the running mean and "
                             f"variance in evaluation · {running}{switched_off}")

    def _hint(self, text: str) -> None:
        self.shown_layer = None
        self.plot_area.hide()
        self.layout().setStretch(2, 1)  # the hint at the top
        self.message.setText(text)

    def _hint_links(self, module: nn.Module, current: str | None) -> None:
        names = batchnorm_layers(module)
        if not names:
            return self._hint(f"{'The current layer is no BatchNorm layer, and t' if current else 'T'}his model has "
                              "no BatchNorm layers.")
        links = ", ".join(f'<a href="{name}">{name}</a>' for name in names[:LINKS_SHOWN])
        more = f" and {len(names) - LINKS_SHOWN} more" if len(names) > LINKS_SHOWN else ""
        what = f"{current} is no BatchNorm layer" if current else "No layer is selected"
        self._hint(f"{what}. Pick one of the model's {len(names)} BatchNorm layers to see its γ, β and running "
                   f"statistics per channel: {links}{more}.")
