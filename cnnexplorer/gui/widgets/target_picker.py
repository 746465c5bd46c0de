"""The target class for every view, chosen among all the model's classes by typing.

The predictions panel sets the target with a click, but only among the top five; this box
reaches any class ("tiger cat" among ImageNet's 1000) and shows the target whichever way it
was set.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolTip, QWidget

from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.class_box import ClassBox

NO_TARGET = "top-1 prediction"


class TargetPicker(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.box = ClassBox(NO_TARGET)
        self.box.setToolTip("The class the views explain and target: type part of its name or number, "
                            "or click a prediction")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(QLabel("Target"))
        layout.addWidget(self.box, 1)
        self.box.activated.connect(self._commit)
        self.box.lineEdit().returnPressed.connect(self._commit)
        session.model_changed.connect(self._on_model)
        session.target_changed.connect(self.box.set_class)
        self._on_model(session.model)

    def _on_model(self, handle) -> None:
        self.box.set_classes(list(handle.class_names) if handle is not None else [])
        self.box.set_class(self.session.target)

    def _commit(self, *_) -> None:
        try:
            index = self.box.typed_class()
        except UserError as exc:
            QToolTip.showText(self.box.mapToGlobal(self.box.rect().bottomLeft()), str(exc), self.box)
            self.box.set_class(self.session.target)
            return
        self.session.set_target(index)
