"""The central tabs: one ``View`` per way of looking at the current model, image and layer.

A view listens to the shared ``Session``, computes in ``JobRunner`` workers, and can hand back
the picture it shows (rendered pixels at native resolution, not a screenshot) for Export and
Copy, with the settings that go into the sidecar.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QWidget

from cnnexplorer.gui.dialogs import ask_yes_no
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.workers import JobRunner


class View(QWidget):
    """Base of the tabs. ``view_name`` is the CLI export name; ``layer`` goes into sidecars."""

    title: str = ""
    view_name: str = ""

    def __init__(self, session: Session, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self._dirty = True

    def confirm(self, title: str, text: str) -> bool:
        """A yes/no question; the main window replaces this with its own ``confirm`` (tests inject answers)."""
        return ask_yes_no(self, title, text)

    def refresh(self, *_) -> None:
        """Recompute now if the tab is shown, else when it is next shown: hidden tabs cost nothing."""
        self._dirty = True
        if self.isVisible():
            self._compute_if_dirty()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._compute_if_dirty()

    def _compute_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self.compute()

    def compute(self) -> None:
        """Start the work that fills the view from the session's current state (``refresh`` calls it)."""

    @property
    def seed(self) -> int | None:
        """The random seed the picture was made with, for the sidecar (None: it used none)."""
        return None

    @property
    def layer(self) -> str | None:
        """The layer the picture shows, for the sidecar (None when it shows no single layer)."""
        return None

    def empty_reason(self) -> str:
        """What the user can do to make the view show something, for when ``picture()`` is None."""
        if self.session.model is None:
            return "load a model first"
        if self.session.image is None:
            return "open an image first"
        return self.waiting_for

    waiting_for = "wait for it to finish computing"
    """What the view waits for once a model and an image are there (a subclass names its own step)."""

    def picture(self) -> tuple[np.ndarray, dict] | None:
        """``(H×W×3 uint8 pixels, settings)`` of what the view shows, or None while empty."""
        return None
