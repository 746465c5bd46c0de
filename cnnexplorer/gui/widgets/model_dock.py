"""The "Model" dock: which model on which device, and its architecture as a filterable tree.

A row is a module of ``named_modules()``; selecting it sets the session's current layer, and
a layer chosen elsewhere selects its row, so the tree is the map every view is read against.
With a job runner, the Zeros and Dead columns show each layer's sparsity for the current
image (measured in a worker from the shared activation cache): it grows with depth.
While the Training tab is shown, each row with parameters has a checkbox (in place of the
sparsity columns): unticking it freezes the module (``requires_grad`` off, the row greyed),
which training honours; the footer's counts follow. Elsewhere the boxes are hidden (the tree
is for finding layers there), and frozen rows stay grey.
Columns are sized to every row, collapsed ones included, so expanding a branch never clips a name.
A new model clears the filter (the old model's layer names would hide every row of the new one),
and a filter that matches nothing says so.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from cnnexplorer.core.architecture import parameter_counts
from cnnexplorer.core.devices import available_devices
from cnnexplorer.core.layer_text import RF_TIP, floored_mark, floored_tip, layer_text, totals_text
from cnnexplorer.core.models import known_specs
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.widgets.layer_stats import Sparsity, sparsity_job
from cnnexplorer.gui.workers import JobRunner

COLUMNS = ("Layer", "Type", "Output", "Zeros", "Dead", "Params", "MACs", "Kernel/stride/pad", "RF", "Calls")
STATS = slice(3, 5)
"""The sparsity columns, next to the output they describe."""
MAIN_COLUMNS = STATS.stop
"""Name, type, output and sparsity: the columns the dock is first made wide enough to show."""
NUMERIC = {"Output", "Params", "MACs", "Kernel/stride/pad", "RF", "Calls", "Zeros", "Dead"}
STAT_TIPS = ("Fraction of this layer's activations that are exactly 0 for the current image",
             "Channels that are 0 everywhere for the current image (after a ReLU; – for outputs with "
             "negative values, where a channel is not dead)")
FROZEN_COLOUR = QColor(150, 150, 150)
FLOORED_COLOUR = QColor(179, 89, 0)
"""The output size of a layer whose size PyTorch rounded (the course's "not possible")."""
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2
FROZEN_ROLE = Qt.ItemDataRole.UserRole + 3
HAS_PARAMS_ROLE = Qt.ItemDataRole.UserRole + 4


def row_texts(layer) -> list[str]:
    """The eight cells of one layer's row that do not depend on the image."""
    text = layer_text(layer)
    mark = floored_mark(layer)
    shape = f"{mark} {text.shape}" if mark else text.shape
    return [text.name, text.type, shape, text.params, text.macs, text.geometry, text.rf, text.calls]


class _LayerFilter(QSortFilterProxyModel):
    """Case-insensitive substring match on name and type; ancestors of matches stay visible."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterRole(SEARCH_ROLE)
        self.setFilterKeyColumn(0)


class ModelDock(QWidget):
    """Spec box, device box, filter box, the layer tree and a totals footer."""

    load_requested = Signal(str)
    zoo_requested = Signal()
    device_requested = Signal(str)

    def __init__(self, session: Session, jobs: JobRunner | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.sparsity: dict[str, Sparsity] = {}
        self._items: dict[str, QStandardItem] = {}
        self._stat_cells: dict[str, list[QStandardItem]] = {}
        self._shown_summary = None
        self._syncing = False
        self._freeze_boxes = True

        self.spec_edit = QLineEdit()
        self.spec_edit.setPlaceholderText("builtin:shapes, torchvision:resnet50 or a model file")
        self.spec_edit.setToolTip("Model spec: builtin:NAME, torchvision:ARCH[:WEIGHTS], "
                                  "timm:NAME[:pretrained|none|PATH-TO-WEIGHTS] or a file path; Enter loads it")
        completer = QCompleter(known_specs(), self.spec_edit)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.spec_edit.setCompleter(completer)
        self.spec_edit.returnPressed.connect(self._request_load)
        load_button = QPushButton("Load")
        load_button.setToolTip("Load the model named in the box")
        load_button.clicked.connect(self._request_load)
        zoo_button = QPushButton("Zoo…")
        zoo_button.setToolTip("Browse torchvision's classifiers and timm's CNNs (Ctrl+M)")
        zoo_button.clicked.connect(self.zoo_requested)

        self.device_box = QComboBox()
        self.device_box.addItems(["auto", *available_devices()])
        self.device_box.setToolTip("Where the model runs; changing it moves the loaded model")
        self.device_box.textActivated.connect(self.device_requested)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter layers by name or type, e.g. conv")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.filter_note = QLabel()
        self.filter_note.hide()

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.model.setHeaderData(COLUMNS.index("RF"), Qt.Orientation.Horizontal, RF_TIP, Qt.ItemDataRole.ToolTipRole)
        self.proxy = _LayerFilter(self)
        self.proxy.setSourceModel(self.model)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(14)
        self.tree.setAlternatingRowColors(True)
        self.tree.setEditTriggers(QTreeView.EditTrigger.NoEditTriggers)
        self.tree.header().setStretchLastSection(False)
        self.tree.selectionModel().currentRowChanged.connect(self._on_current_row)
        self.model.itemChanged.connect(self._on_item_changed)
        self.footer = QLabel("No model loaded.")
        self.footer.setWordWrap(True)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.about.setVisible(False)

        spec_row = QHBoxLayout()
        spec_row.addWidget(self.spec_edit, 1)
        spec_row.addWidget(load_button)
        spec_row.addWidget(zoo_button)
        device_row = QHBoxLayout()
        device_row.addWidget(QLabel("Device:"))
        device_row.addWidget(self.device_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(spec_row)
        layout.addLayout(device_row)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.filter_note)
        layout.addWidget(self.about)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.footer)

        session.model_changed.connect(self._on_model)
        session.layer_changed.connect(self._select_layer)
        session.image_changed.connect(self._measure)

    def set_device(self, name: str) -> None:
        """Show ``name`` in the device box without asking for a move."""
        if self.device_box.findText(name) < 0:
            self.device_box.addItem(name)
        self.device_box.setCurrentText(name)

    def item(self, name: str) -> QStandardItem | None:
        """The tree's row of layer ``name`` (its name cell), or None when the model has no such layer."""
        return self._items.get(name)

    def layer_names(self) -> list[str]:
        """Every layer in the tree, in tree order."""
        return list(self._items)

    def sparsity_cells(self, name: str) -> tuple[QStandardItem, QStandardItem]:
        """Layer ``name``'s "zeros" and "dead" cells (measured for the current image)."""
        zeros, dead = self._stat_cells[name]
        return zeros, dead

    def _request_load(self) -> None:
        spec = self.spec_edit.text().strip()
        if spec:
            self.load_requested.emit(spec)

    def _on_model(self, handle) -> None:
        self.spec_edit.setText(handle.spec)
        self.set_device(str(handle.device))
        self.about.setText(handle.about)
        self.about.setVisible(bool(handle.about))
        summary = self.session.summary
        if summary is not self._shown_summary:
            self._fill(summary)
        self._select_layer(self.session.layer)
        self._measure()

    def _fill(self, summary) -> None:
        self._shown_summary = summary
        self.filter_edit.clear()
        self._syncing = True
        try:
            self.model.removeRows(0, self.model.rowCount())
            self._items, self._stat_cells = {}, {}
            if summary is None:
                self.footer.setText("No layer summary for this model.")
                return
            for layer in summary.layers:
                if layer.name:
                    self._add_row(layer)
        finally:
            self._syncing = False
        self._show_frozen()
        self._expand_default()
        self._fit_columns(range(len(COLUMNS)))

    def _fit_columns(self, columns) -> None:
        """Size ``columns`` to all their rows: Qt measures only the expanded ones, so expanding a
        branch would clip its names. The expanded branches stay as they were."""
        expanded = [index for index in (self.proxy.mapFromSource(item.index()) for item in self._items.values())
                    if self.tree.isExpanded(index)]
        self.tree.expandAll()
        for column in columns:
            self.tree.resizeColumnToContents(column)
        self.tree.collapseAll()
        for index in expanded:
            self.tree.expand(index)

    def main_columns_width(self) -> int:
        """The width the dock needs to show the main columns whole, beside the tree's scroll bar."""
        header, tree = self.tree.header(), self.tree
        columns = sum(header.sectionSize(c) for c in range(MAIN_COLUMNS) if not header.isSectionHidden(c))
        margins = self.layout().contentsMargins()
        return (columns + 2 * tree.frameWidth() + tree.verticalScrollBar().sizeHint().width()
                + margins.left() + margins.right())

    def _add_row(self, layer) -> None:
        texts = row_texts(layer)
        texts[STATS.start:STATS.start] = [""] * len(STAT_TIPS)
        cells = [QStandardItem(text) for text in texts]
        for column, cell in zip(COLUMNS, cells):
            if column in NUMERIC:
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cell.setToolTip(layer.param_formula or layer.name)
        note = self.session.model.layer_notes.get(layer.name) if self.session.model else None
        rounded = floored_tip(layer)
        cells[0].setToolTip("\n".join(t for t in (layer.name, layer.param_formula, note, rounded) if t))
        if rounded:
            output = cells[COLUMNS.index("Output")]
            output.setToolTip(rounded)
            output.setForeground(FLOORED_COLOUR)
        cells[COLUMNS.index("RF")].setToolTip(RF_TIP)
        for cell, tip in zip(cells[STATS], STAT_TIPS):
            cell.setToolTip(tip)
        self._stat_cells[layer.name] = cells[STATS]
        cells[0].setData(layer.params > 0, HAS_PARAMS_ROLE)
        cells[0].setCheckable(layer.params > 0 and self._freeze_boxes)
        cells[0].setData(layer.name, NAME_ROLE)
        cells[0].setData(f"{layer.name} {layer.type}", SEARCH_ROLE)
        parent = self._items.get(layer.parent) if layer.parent else None
        (parent if parent is not None else self.model.invisibleRootItem()).appendRow(cells)
        self._items[layer.name] = cells[0]

    def _module(self, name: str):
        """The session model's submodule ``name``, or None when the tree shows another model."""
        handle = self.session.model
        try:
            return handle.module.get_submodule(name) if handle is not None else None
        except AttributeError:
            return None

    def show_freeze_boxes(self, visible: bool) -> None:
        """Show the rows' freeze checkboxes (while training is set up) or hide them; the sparsity
        columns, which describe the current image, make room for them meanwhile."""
        if visible == self._freeze_boxes:
            return
        self._freeze_boxes = visible
        for column in range(STATS.start, STATS.stop):
            self.tree.setColumnHidden(column, visible)
        self._syncing = True
        try:
            for item in self._items.values():
                checkable = visible and bool(item.data(HAS_PARAMS_ROLE))
                item.setCheckable(checkable)
                if not checkable:
                    item.setData(None, Qt.ItemDataRole.CheckStateRole)  # no box is drawn without a state
        finally:
            self._syncing = False
        self._show_frozen()
        self._fit_columns([0])

    def _on_item_changed(self, item: QStandardItem) -> None:
        """A ticked row trains its module's parameters, an unticked one freezes them."""
        name = item.data(NAME_ROLE)
        module = self._module(name) if name and item.isCheckable() and not self._syncing else None
        if module is None:
            return
        trainable = item.checkState() != Qt.CheckState.Unchecked
        for parameter in module.parameters():
            parameter.requires_grad_(trainable)
        self._show_frozen()

    def _show_frozen(self) -> None:
        """Tick states, grey frozen rows and the footer's trainable/frozen counts, from the model itself."""
        summary, handle = self._shown_summary, self.session.model
        if summary is None or handle is None:
            return
        counts: dict[str, list[int]] = {}  # module name → [trainable, all] parameter tensors, in one pass
        for name, parameter in handle.module.named_parameters():
            parts = name.split(".")[:-1]
            for depth in range(1, len(parts) + 1):
                count = counts.setdefault(".".join(parts[:depth]), [0, 0])
                count[0] += parameter.requires_grad
                count[1] += 1
        self._syncing = True
        try:
            for name, item in self._items.items():
                trainable, total = counts.get(name, (0, 0))
                if not total:
                    continue
                state = (Qt.CheckState.Checked if trainable == total else
                         Qt.CheckState.Unchecked if trainable == 0 else Qt.CheckState.PartiallyChecked)
                shown = item.data(Qt.ItemDataRole.CheckStateRole)
                if item.isCheckable() and (shown is None or state != item.checkState()):
                    item.setCheckState(state)
                frozen = state == Qt.CheckState.Unchecked
                if bool(item.data(FROZEN_ROLE)) == frozen:
                    continue  # unchanged: skip the cell updates (a ResNet-50 has 150 rows)
                item.setData(frozen, FROZEN_ROLE)
                brush = QBrush(FROZEN_COLOUR) if frozen else QBrush()
                parent = item.parent() or self.model.invisibleRootItem()
                for column in range(len(COLUMNS)):
                    cell = parent.child(item.row(), column)
                    if cell is not None:
                        cell.setForeground(brush)
        finally:
            self._syncing = False
        self.footer.setText(totals_text(*parameter_counts(handle.module), summary.macs, summary.input_size))

    def _measure(self, *_) -> None:
        """Start measuring every layer's sparsity for the current image (cells empty meanwhile)."""
        self._show_sparsity(self.session.model, self.session.image, {})
        handle, image, layers = self.session.model, self.session.image, list(self._stat_cells)
        if self.jobs is None or handle is None or image is None or not layers:
            return
        cache = self.session.activations
        self.jobs.start(lambda: sparsity_job(cache, handle, image, layers), kind="layer-sparsity",
                        label="measuring sparsity", on_result=lambda found: self._show_sparsity(handle, image, found))

    def _show_sparsity(self, handle, image, found: dict[str, Sparsity]) -> None:
        if handle is not self.session.model or image is not self.session.image:
            return
        self.sparsity = found
        for name, cells in self._stat_cells.items():
            texts = found[name].texts() if name in found else ("", "")
            for cell, text in zip(cells, texts):
                cell.setText(text)
        if found:
            self._fit_columns(range(STATS.start, STATS.stop))

    def _expand_default(self) -> None:
        self.tree.collapseAll()
        self.tree.expandToDepth(1)

    def _apply_filter(self, text: str) -> None:
        text = text.strip()
        self.proxy.setFilterFixedString(text)
        if text:
            self.tree.expandAll()
        else:
            self._expand_default()
        self.filter_note.setText(f"No layer's name or type contains “{text}”.")
        self.filter_note.setVisible(bool(text) and self.proxy.rowCount() == 0 and bool(self._items))
        self._select_layer(self.session.layer)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        name = self.proxy.index(current.row(), 0, current.parent()).data(NAME_ROLE)
        self.session.set_layer(name)

    def _select_layer(self, name: str | None) -> None:
        item = self._items.get(name) if name else None
        index = self.proxy.mapFromSource(item.index()) if item is not None else QModelIndex()
        self._syncing = True
        try:
            selection = self.tree.selectionModel()
            if index.isValid():
                flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
                selection.setCurrentIndex(index, flags)
                self.tree.scrollTo(index)
            else:
                selection.clear()
        finally:
            self._syncing = False
