"""Windows the GUI tests start from."""

from __future__ import annotations

from cnnexplorer.gui.window_jobs import sample_images

WAIT_MS = 60_000


def shapes_window(make_window, images=None):
    """A window on the demo model with ``images`` open (default: the first sample), every job done."""
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(p) for p in images or sample_images()[:1]])
    assert window.wait_for_jobs(WAIT_MS)
    return window
