"""The "Lab" tab: the course's experiments beside the loaded model, one page each.

Arithmetic (output sizes, parameters and MACs, with a stepper that slides a kernel), Kernels
(hand-set kernels on the current image; a real layer's receptive field), Trade-offs (the design
calculators), All layers (every layer's activations for the current image on one page) and
Batch norm (a BatchNorm layer's γ, β and running statistics). A page computes when it is shown
and the session changed, as the tabs do.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views import View
from cnnexplorer.gui.widgets.lab_arithmetic import ArithmeticPage
from cnnexplorer.gui.widgets.lab_batchnorm import BatchNormPage
from cnnexplorer.gui.widgets.lab_kernels import KernelsPage
from cnnexplorer.gui.widgets.lab_layers import LayersPage
from cnnexplorer.gui.widgets.lab_tradeoffs import TradeoffsPage
from cnnexplorer.gui.workers import JobRunner


class LabView(View):
    title = "Lab"
    waiting_for = "open the All layers page and wait for it to finish computing"

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(session, jobs, parent)
        self.arithmetic = ArithmeticPage(session, jobs)
        self.kernels = KernelsPage(session, jobs)
        self.tradeoffs = TradeoffsPage(session, jobs)
        self.layers = LayersPage(session, jobs)
        self.batchnorm = BatchNormPage(session)
        self.pages = QTabWidget()
        self.pages.setDocumentMode(True)
        for page, title, tip in (
                (self.arithmetic, "Arithmetic", "Output size, parameters and MACs of a convolution, pooling or "
                                                "transposed convolution, and a kernel sliding step by step"),
                (self.kernels, "Kernels", "Hand-set kernels on the current image, and a real layer's receptive field"),
                (self.tradeoffs, "Trade-offs", "The course's design calculators: stacked 3×3, bottleneck, "
                                               "factorised, depthwise-separable, inception's 1×1 reductions"),
                (self.layers, "All layers", "Every layer's activations for the current image, on one page"),
                (self.batchnorm, "Batch norm", "A BatchNorm layer's γ, β and running statistics per channel")):
            self.pages.setTabToolTip(self.pages.addTab(page, title), tip)
        self.pages.currentChanged.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.pages)
        for signal in (session.model_changed, session.image_changed, session.layer_changed, session.unit_changed):
            signal.connect(self.refresh)

    def show_page(self, page: QWidget) -> None:
        self.pages.setCurrentWidget(page)

    def compute(self) -> None:
        """Only the shown page computes; the others when they are next shown."""
        self.pages.currentWidget().refresh()

    @property
    def view_name(self) -> str:  # the export name of the shown page's picture
        return getattr(self.pages.currentWidget(), "view_name", "lab")

    @property
    def layer(self) -> str | None:
        return getattr(self.pages.currentWidget(), "layer", None)

    def empty_reason(self) -> str:
        page = self.pages.currentWidget()
        if not hasattr(page, "picture"):
            return f"the {self.pages.tabText(self.pages.currentIndex())} page has no picture to export; open All layers"
        return super().empty_reason()

    def picture(self) -> tuple[np.ndarray, dict] | None:
        page = self.pages.currentWidget()
        return page.picture() if hasattr(page, "picture") else None
