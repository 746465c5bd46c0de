"""The "edited" badge: shown while any intervention is on the model, so no one reads an edited
model's predictions as the model's own. It names the edits (all of them in its tooltip) and its
button, or a click on it, takes them all off."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from cnnexplorer.gui.session import Session

STYLE = "QWidget#editedBadge { background: #fff1d6; border: 1px solid #d08a00; border-radius: 4px; }"
MOST_SHOWN = 2
"""Edits named on the badge itself; the tooltip lists every one."""


def badge_text(edits) -> str:
    shown = "; ".join(edit.words() for edit in edits[:MOST_SHOWN])
    more = f" and {len(edits) - MOST_SHOWN} more" if len(edits) > MOST_SHOWN else ""
    return f"Edited: {shown}{more}"


class EditedBadge(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setObjectName("editedBadge")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(STYLE)
        self.label = QLabel()
        self.label.setStyleSheet("color: #7a4a00;")
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear edits")
        self.clear_button.setToolTip("Take every intervention off: the model as it was")
        self.clear_button.clicked.connect(session.clear_interventions)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 2, 2)
        layout.addWidget(self.label)
        layout.addWidget(self.clear_button)
        session.interventions_changed.connect(self.show_edits)
        self.show_edits(session.interventions)

    def show_edits(self, edits) -> None:
        edits = tuple(edits)
        self.label.setText(badge_text(edits) if edits else "")
        self.setToolTip("\n".join(["The model runs with these edits (click to clear them):",
                                   *(edit.words() for edit in edits)]) if edits else "")
        self.setVisible(bool(edits))

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.session.clear_interventions()
        super().mouseReleaseEvent(event)
