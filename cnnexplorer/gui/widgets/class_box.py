"""A class chooser for models with many classes: type part of a name or number to find one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter, QWidget

from cnnexplorer.core.classes import find_class


class ClassBox(QComboBox):
    """Items ``"index: name"`` (after an optional first item meaning "no class"), editable, with
    completion on any part of the text; ``typed_class`` reads what the user typed the way the
    CLI's ``--target`` does."""

    def __init__(self, none_text: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.none_text = none_text
        self.names: list[str] = []
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setMinimumContentsLength(10)
        self.completer().setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer().setCompletionMode(QCompleter.CompletionMode.PopupCompletion)

    def set_classes(self, names: list[str]) -> None:
        self.names = list(names)
        self.blockSignals(True)
        try:
            self.clear()
            if self.none_text is not None:
                self.addItem(self.none_text, None)
            for index, label in enumerate(names):
                self.addItem(f"{index}: {label}", index)
        finally:
            self.blockSignals(False)

    def set_class(self, index: int | None) -> None:
        """Show class ``index`` (None: the "no class" item) without emitting signals."""
        found = self.findData(index)
        if found >= 0:
            self.blockSignals(True)
            try:
                self.setCurrentIndex(found)
            finally:
                self.blockSignals(False)

    def typed_class(self) -> int | None:
        """The class the text names: an item as shown, else an index, a name or a unique part of
        a name (``core.classes.find_class``; ``UserError`` for none or several)."""
        text = self.currentText().strip()
        found = self.findText(text)
        index = self.itemData(found) if found >= 0 else find_class(self.names, text)
        self.setCurrentIndex(self.findData(index))
        return index
