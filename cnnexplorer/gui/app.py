"""Starting the desktop app: QApplication, settings, the error hook and the main window.

The settings object is made here and passed in, so tests use a file of their own and
``--fresh`` can clear it. An unexpected error shows a dialog with its traceback and the app
keeps running, instead of Qt aborting on an exception raised in a slot.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping

import pyqtgraph as pg
from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from cnnexplorer.core.devices import available_devices
from cnnexplorer.core.errors import OUT_OF_MEMORY_HINT, UserError, is_out_of_memory
from cnnexplorer.core.models import DEFAULT_SPEC
from cnnexplorer.gui.remembered import setting
from cnnexplorer.resource_files import resource_path

_configured = False
_error_boxes: list[QMessageBox] = []  # open error dialogs; a parentless dialog needs a reference


def configure_process() -> None:
    """Process-wide settings the GUI relies on, applied once.

    pyqtgraph images are row-major arrays. A 1 ms GIL switch interval (Python's default is
    5 ms) keeps the event loop responsive while a worker thread runs Python-heavy code: every
    time the GUI thread re-takes the GIL after a C call it may otherwise wait the full interval.
    """
    global _configured
    if not _configured:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
        sys.setswitchinterval(0.001)
        _configured = True


def window_icon() -> QIcon:
    path = resource_path("icons", "cnnexplorer.png")
    return QIcon(str(path)) if path.is_file() else QIcon()


def show_exception(exc: BaseException) -> None:
    """The dialog for an exception that reached the event loop; the app stays usable."""
    traceback.print_exception(type(exc), exc, exc.__traceback__)
    if isinstance(exc, UserError):
        text, details = str(exc), ""
    elif is_out_of_memory(exc):
        text, details = OUT_OF_MEMORY_HINT, ""
    else:
        text = (f"An unexpected error happened ({type(exc).__name__}: {exc}). cnnexplorer keeps "
                "running, but the last action may not have finished. Please report this with the details.")
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    box = QMessageBox(QMessageBox.Icon.Critical, "cnnexplorer — error", text, QMessageBox.StandardButton.Ok,
                      QApplication.activeWindow())
    box.setDetailedText(details)
    _error_boxes.append(box)
    box.finished.connect(lambda *_: _error_boxes.remove(box))
    box.show()


def _excepthook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        QApplication.quit()
        return
    show_exception(exc.with_traceback(tb))


def initial_model(settings: QSettings, spec: str | None, device: str | None) -> tuple[str, str]:
    """The model and device to open: the command line's, else the last used, else the defaults.

    A remembered device this machine lacks (a laptop after the GPU workstation) becomes auto;
    a remembered value that is no text (a hand-edited settings file) counts as none.
    """
    saved_device = setting(settings, "model/device", str, "auto")
    if saved_device not in ("auto", *available_devices()):
        saved_device = "auto"
    return spec or setting(settings, "model/spec", str, "") or DEFAULT_SPEC, device or saved_device


NO_DISPLAY = ("no display to show the window on; run it on a desktop, or set QT_QPA_PLATFORM=offscreen "
              "for a headless run")


def check_display(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> None:
    """Refuse, in one line, to open a window where there is no screen (a Linux shell over ssh, a
    container): Qt would print pages of xcb plugin advice and abort instead."""
    if platform.startswith("linux") and not any(environ.get(name) for name in
                                                ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise UserError(NO_DISPLAY)


def run_gui(spec: str | None, device: str | None, images: list[str], fresh: bool) -> int:
    """Open the main window on ``spec`` (default: the last model, else builtin:shapes)."""
    app = QApplication.instance()
    if app is None:
        check_display()
        app = QApplication(sys.argv[:1])
    app.setApplicationName("cnnexplorer")
    app.setOrganizationName("cnnexplorer")
    app.setWindowIcon(window_icon())
    configure_process()
    settings = QSettings("cnnexplorer", "cnnexplorer")
    if fresh:
        settings.clear()
    sys.excepthook = _excepthook
    from cnnexplorer.gui.main_window import MainWindow

    window = MainWindow(settings)
    window.show()
    window.start(*initial_model(settings, spec, device), images)
    return app.exec()
