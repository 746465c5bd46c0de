"""The interventions a channel's context menu offers, wherever a channel is shown (the activation
grid, the concept list): switch it off, set it to its dataset mean, scale it, keep it alone, clear."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QMenu

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.interventions import Edit

SCALES = (0.5, 2.0, -1.0)
"""The factors "Scale" offers."""


def add_edit_actions(menu: QMenu, session, layer: str, channel: int, report: Callable[[str], None]) -> None:
    """Append the edit actions for ``channel`` of ``layer`` to ``menu``; a refused edit goes to ``report``."""

    def edit(change: Edit) -> None:
        apply_edit(session, change, report)

    menu.addSeparator()
    menu.addAction(f"Switch off channel {channel}", lambda: edit(Edit(layer, (channel,), "zero")))
    means = session.dataset_means.get(layer)
    mean = menu.addAction(f"Set channel {channel} to its dataset mean",
                          lambda: edit(Edit(layer, (channel,), "mean", values=(means[channel],))))
    mean.setEnabled(means is not None and channel < len(means))
    if not mean.isEnabled():
        mean.setToolTip("index a dataset with this layer in the Dataset tab first")
    scale = menu.addMenu(f"Scale channel {channel}")
    for factor in SCALES:
        scale.addAction(f"× {factor:g}", lambda f=factor: edit(Edit(layer, (channel,), "scale", f)))
    menu.addAction(f"Keep only channel {channel} of {layer}", lambda: edit(Edit(layer, (channel,), "keep")))
    if session.interventions:
        menu.addAction("Clear edits", session.clear_interventions)


def apply_edit(session, edit: Edit, report: Callable[[str], None]) -> None:
    """Add ``edit`` to the session's edits ("keep only" replaces the layer's other edits)."""
    edits = session.interventions
    if edit.mode == "keep":
        edits = tuple(e for e in edits if e.layer != edit.layer)
    try:
        session.set_interventions((*edits, edit))
    except UserError as exc:
        report(str(exc))
