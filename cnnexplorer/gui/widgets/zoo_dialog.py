"""The model-zoo browser: every torchvision classifier and timm's listed CNNs with size, cost and accuracy.

Picking a model by accuracy per GMAC, or by what is already downloaded, needs a sortable
table; numbers sort as numbers (by a raw-value sort role) and missing values sort last. The
Chart page draws the same (filtered) models as accuracy against GMACs (``lab_zoo_chart``); a
model chosen on either page is current on both.
"""

from __future__ import annotations

import re

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnexplorer.core.zoo import ZooEntry, zoo_entries
from cnnexplorer.gui.widgets.lab_zoo_chart import ZooChart

COLUMNS = ("Model", "Library", "Weights", "Depth", "Params (M)", "GMACs", "Acc@1", "Acc@5", "Size (MB)", "Cached")
MODEL, LIBRARY, WEIGHTS, DEPTH, PARAMS, GMACS, ACC1, ACC5, SIZE, CACHED = range(len(COLUMNS))
DEPTH_TIP = ("Weight layers (convolutions and fully connected) on the longest path, as the course counts them: "
             "VGG-16 16, ResNet-50 50, GoogLeNet 22")
DISPLAY = Qt.ItemDataRole.DisplayRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
SPEC_ROLE = Qt.ItemDataRole.UserRole + 2
MISSING = "—"
NOTE = ("Weights that are not cached are downloaded when opened (needs a network); timm's go into its own cache. "
        "timm records no accuracy or cost for its models (—).")


def natural_key(name: str) -> list:
    """``resnet18`` before ``resnet101``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def _number(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


class ZooModel(QAbstractTableModel):
    """The entries as rows; ``SORT_ROLE`` gives raw values (None where missing)."""

    def __init__(self, entries: list[ZooEntry], parent: QWidget | None = None):
        super().__init__(parent)
        self.entries = list(entries)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == DISPLAY:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == DEPTH:
            return DEPTH_TIP
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = DISPLAY):
        entry, column = self.entries[index.row()], index.column()
        if role == DISPLAY:
            return self._text(entry, column)
        if role == SORT_ROLE:
            return self._raw(entry, column)
        if role == SPEC_ROLE:
            return entry.spec
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= DEPTH:
            horizontal = Qt.AlignmentFlag.AlignHCenter if column == CACHED else Qt.AlignmentFlag.AlignRight
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and entry.cached:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            where = "cached" if entry.cached else "not cached: downloaded when opened"
            return f"{entry.spec} ({entry.weights}, {where})\nDouble-click or press Enter to open"
        return None

    @staticmethod
    def _raw(entry: ZooEntry, column: int):
        """Raw values; a name ties break torchvision first."""
        return ((natural_key(entry.arch), entry.library != "torchvision"), entry.library, entry.weights, entry.depth,
                entry.params, entry.gmacs, entry.acc1, entry.acc5, entry.file_size_mb, entry.cached)[column]

    @staticmethod
    def _text(entry: ZooEntry, column: int) -> str:
        return (entry.arch, entry.library, entry.weights, MISSING if entry.depth is None else str(entry.depth),
                _number(entry.params / 1e6, 1), _number(entry.gmacs, 2),
                _number(entry.acc1, 2), _number(entry.acc5, 2), _number(entry.file_size_mb, 1),
                "✓" if entry.cached else "")[column]


class ZooProxy(QSortFilterProxyModel):
    """Sorts by ``SORT_ROLE`` with missing values last in both orders; filters on the spec (``timm`` finds timm's)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(MODEL)
        self.setFilterRole(SPEC_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802 - Qt override
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
            return (a is None) == descending and (a is None) != (b is None)
        return a < b


class ZooDialog(QDialog):
    """Choose a classifier; ``model_chosen`` carries its spec (``torchvision:ARCH`` or ``timm:NAME``)."""

    model_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, entries: list[ZooEntry] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model zoo — torchvision and timm classifiers")
        self.model = ZooModel(zoo_entries() if entries is None else entries, self)
        self.proxy = ZooProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name, e.g. resnet, vit, mobilenet, timm")
        self.filter.setClearButtonEnabled(True)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(MODEL, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(WEIGHTS, QHeaderView.ResizeMode.Stretch)  # the names show whole

        self.chart = ZooChart()
        self.pages = QTabWidget()
        self.pages.addTab(self.table, "Table")
        self.pages.addTab(self.chart, "Chart: accuracy against GMACs")
        self.count = QLabel()
        self.note = QLabel(NOTE)
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Open | buttons.Cancel)
        self.open_button = self.buttons.button(buttons.Open)
        self.open_button.setDefault(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.count)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)

        self.filter.textChanged.connect(self._filter)
        self.table.doubleClicked.connect(self._choose)
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.chart.chosen.connect(self.select_spec)
        self.chart.opened.connect(self._open_spec)
        self.buttons.accepted.connect(lambda: self._choose(self.table.currentIndex()))
        self.buttons.rejected.connect(self.reject)
        self.resize(980, 620)
        self._filter("")

    def selected_spec(self) -> str | None:
        """The spec of the current row, or None when no row is current."""
        index = self.table.currentIndex()
        return index.data(SPEC_ROLE) if index.isValid() else None

    def select_spec(self, spec: str) -> None:
        """Make ``spec``'s row current (clearing a filter that hides it)."""
        rows = [row for row in range(self.model.rowCount()) if self.model.entries[row].spec == spec]
        if not rows:
            return
        index = self.proxy.mapFromSource(self.model.index(rows[0], MODEL))
        if not index.isValid():
            self.filter.clear()
            index = self.proxy.mapFromSource(self.model.index(rows[0], MODEL))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)

    def _open_spec(self, spec: str) -> None:
        self.select_spec(spec)
        self._choose(self.table.currentIndex())

    def _filter(self, text: str) -> None:
        """Filter by name and keep a row current, so Enter opens the best match."""
        self.proxy.setFilterFixedString(text.strip())
        shown = self.proxy.rowCount()
        total, cached = len(self.model.entries), sum(e.cached for e in self.model.entries)
        self.count.setText(f"{shown} of {total} models shown · {cached} with cached weights (✓, bold)")
        if shown and not self.table.currentIndex().isValid():
            self.table.selectRow(0)
        self.chart.set_entries([self.model.entries[self.proxy.mapToSource(self.proxy.index(row, MODEL)).row()]
                                for row in range(shown)])
        self._update_buttons()

    def _update_buttons(self, *_) -> None:
        self.open_button.setEnabled(self.table.currentIndex().isValid())
        self.chart.choose(self.selected_spec())

    def _choose(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        self.model_chosen.emit(index.data(SPEC_ROLE))
        self.accept()
