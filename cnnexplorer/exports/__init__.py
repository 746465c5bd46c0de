"""The pictures ``cnnexplorer export VIEW`` can write, each made by a core render function.

Each module here adds its views' CLI options and turns (model, image, options) into pixels, the
settings that go into the sidecar and the keys of the ``--json`` report. The GUI's views call the
same core render functions, so both front ends write the same pixels.
"""

from __future__ import annotations

from cnnexplorer.exports import activations, adversarial, featurevis, heatmap, summary
from cnnexplorer.exports.base import ExportView, Picture, add_shared_options

EXPORT_VIEWS: dict[str, ExportView] = {
    view.name: view
    for module in (summary, activations, featurevis, heatmap, adversarial)
    for view in module.VIEWS
}

__all__ = ["EXPORT_VIEWS", "ExportView", "Picture", "add_shared_options"]
