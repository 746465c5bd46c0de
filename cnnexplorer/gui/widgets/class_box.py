"""A class chooser for models with many classes: type part of a name or number to find one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter, QWidget

from cnnexplorer.core.errors import UserError


class ClassBox(QComboBox):
    """Items ``"index: name"`` (after an optional first item meaning "no class"), editable, with
    completion on any part of the text; ``typed_class`` reads what the user typed."""

    def __init__(self, none_text: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.none_text = none_text
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setMinimumContentsLength(10)
        self.completer().setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer().setCompletionMode(QCompleter.CompletionMode.PopupCompletion)

    def set_classes(self, names: list[str]) -> None:
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
        """The class the text names: the item it equals, or the one item containing it."""
        text = self.currentText().strip()
        found = self.findText(text)
        if found < 0:
            matches = [i for i in range(self.count()) if text.lower() in self.itemText(i).lower()]
            if len(matches) != 1:
                which = "no class matches" if not matches else f"{len(matches)} classes match"
                raise UserError(f"{which} '{text}': pick the class from the list")
            found = matches[0]
        self.setCurrentIndex(found)
        return self.itemData(found)
