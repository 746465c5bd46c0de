"""Windows the GUI tests start from, and a double click on a list row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from cnnexplorer.gui.window_jobs import sample_images

WAIT_MS = 60_000


def shapes_window(make_window, images=None):
    """A window on the demo model with ``images`` open (default: the first sample), every job done."""
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(p) for p in images or sample_images()[:1]])
    assert window.wait_for_jobs(WAIT_MS)
    return window


def ready(window, spec: str = "builtin:tinyvgg", images: list | None = None):
    """Load ``spec`` (and images) and wait until everything, predictions included, is done."""
    window.load_model(spec, "cpu")
    if images:
        window.open_files([str(p) for p in images])
    assert window.wait_for_jobs(WAIT_MS)
    return window


def write_image(path: Path, seed: int = 1, size=(30, 20)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def double_click(qtbot, listing, row: int) -> None:
    """A real press and double click on row ``row`` of a list view (``ImageList``)."""
    listing.scrollTo(listing.model().index(row))
    centre = listing.visualRect(listing.model().index(row)).center()
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseDClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=centre)
