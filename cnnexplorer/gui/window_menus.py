"""The main window's menus, toolbar and help. A mixin of ``MainWindow``, which provides the views,
docks, tabs and the slots the actions call."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from cnnexplorer import __version__


class WindowMenus:
    def _action(self, menu, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.setToolTipsVisible(True)
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        open_image = self._action(menu, "Open image…", self._open_images_dialog, "Ctrl+O", "Open image files")
        open_model = self._action(menu, "Open model file…", self._open_model_dialog, "Ctrl+Shift+O",
                                  "Open a checkpoint, state_dict or safetensors file")
        zoo = self._action(menu, "Model zoo…", self.open_zoo, "Ctrl+M", "Browse torchvision's classifiers")
        self._action(menu, "Open dataset…", self._open_dataset_dialog, "Ctrl+D",
                     "Index a folder of images for the Dataset tab (sub-folders are labels)")
        self._action(menu, "Paste image", self.paste, "Ctrl+V", "Open the image (or image files) on the clipboard")
        self.recent_menu = menu.addMenu("Recent files")
        self._fill_recent_menu()
        menu.addSeparator()
        export = self._action(menu, "Export view as PNG…", self._export_dialog, "Ctrl+E",
                              "Save the current view's picture at native resolution, with a JSON sidecar")
        copy = self._action(menu, "Copy picture", self.copy_picture, "Ctrl+Shift+C",
                            "Copy the current view's picture to the clipboard")
        for action in (open_image, open_model, zoo, None, export, copy):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        menu.addSeparator()
        self._action(menu, "Quit", self.close, "Ctrl+Q", "Close cnnexplorer")
        view_menu = self.menuBar().addMenu("&View")
        view_menu.setToolTipsVisible(True)
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        for number, view in enumerate(self.views, start=1):  # the tenth tab on Ctrl+0, as on the keyboard's row
            self._action(view_menu, f"{view.title} tab", lambda view=view: self.tabs.setCurrentWidget(view),
                         f"Ctrl+{number % 10}", f"Show the {view.title} tab")
        view_menu.addSeparator()
        self._action(view_menu, "Previous image", lambda: self.step_image(-1), "Alt+Left",
                     "Make the previous open image current")
        self._action(view_menu, "Next image", lambda: self.step_image(1), "Alt+Right", "Make the next open image current")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self._show_shortcuts, None, "List the keyboard shortcuts")
        self._action(help_menu, "About cnnexplorer", self._show_about, None, "Version and purpose")

    def step_image(self, step: int) -> None:
        """Make the open image ``step`` places after the current one current (wrapping around)."""
        images = self.session.images
        if images:
            here = images.index(self.session.image) if self.session.image in images else -1
            self.session.set_image(images[(here + step) % len(images)])

    def _show_shortcuts(self) -> None:
        rows = [f"<tr><td>{a.text().replace('&', '')}</td><td><b>{a.shortcut().toString()}</b></td></tr>"
                for menu in self.menuBar().findChildren(QMenu) for a in menu.actions()
                if not a.shortcut().isEmpty()]
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellpadding=4>{''.join(rows)}</table>")

    def _show_about(self) -> None:
        QMessageBox.about(self, "About cnnexplorer",
                          f"<b>cnnexplorer {__version__}</b><p>See what a convolutional network has learned: "
                          "its layers, activations, filters, feature visualisations, heatmaps and "
                          "adversarial examples, linked by one current model, image, layer and class.</p>")
