"""How soon a clicked unit's atlas is on screen in the Dataset tab.

The main window (offscreen, set up as the app is) indexes ``builtin:shapes`` under the shapes model (a fresh
cache), shows the Atlas page, and then makes ``--units`` channels of one layer the current unit in turn, as a
click on an activation tile does. For each: ``draft_ms``, from the click to its patches drawn on the canvas
(the reconstructions and feature visualisation still being made; goal ≤ 100 ms); ``whole_ms``, to the whole
atlas; and ``again_ms``, a unit clicked a second time (remembered). Medians and worsts. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cnnexplorer  # noqa: E402,F401 - sets the OpenMP wait policy before torch loads
from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cnnexplorer.gui.app import configure_process  # noqa: E402
from cnnexplorer.gui.session import Unit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--layer", default="features.4.conv2")
    args = parser.parse_args()
    os.environ["CNNEXPLORER_CACHE"] = tempfile.mkdtemp(prefix="bench-atlas-")
    app = QApplication.instance() or QApplication([])
    configure_process()
    from cnnexplorer.gui.main_window import MainWindow
    from cnnexplorer.gui.views.dataset_view import PAGES, DatasetView

    settings = QSettings(os.path.join(os.environ["CNNEXPLORER_CACHE"], "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1600, 1000)
    window.show()
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(300_000)
    window.open_dataset("builtin:shapes")
    assert window.wait_for_jobs(600_000)
    view = window.view(DatasetView)
    view.pages.setCurrentIndex(PAGES.index("Atlas"))
    window.session.set_layer(args.layer)
    assert window.wait_for_jobs(300_000)
    seen: dict[str, float] = {}
    draft, whole = view._show_atlas_draft, view._show_atlas

    def on_draft(item) -> None:
        draft(item)
        seen.setdefault("draft", time.perf_counter())

    def on_whole(atlas) -> None:
        whole(atlas)
        seen.setdefault("whole", time.perf_counter())

    view._show_atlas_draft, view._show_atlas = on_draft, on_whole

    def click(channel: int) -> dict[str, float]:
        seen.clear()
        started = time.perf_counter()
        window.session.set_unit(Unit(args.layer, channel))
        while "whole" not in seen:
            loop = QEventLoop()
            QTimer.singleShot(1, loop.quit)
            loop.exec()
        return {name: (at - started) * 1000 for name, at in seen.items()}

    first = [click(channel) for channel in range(args.units)]
    again = [click(channel)["whole"] for channel in range(args.units)]
    drafts, wholes = [t["draft"] for t in first], [t["whole"] for t in first]
    result = {"layer": args.layer, "units": args.units,
              "draft_ms_median": round(statistics.median(drafts), 1), "draft_ms_worst": round(max(drafts), 1),
              "whole_ms_median": round(statistics.median(wholes), 1), "whole_ms_worst": round(max(wholes), 1),
              "again_ms_median": round(statistics.median(again), 1), "again_ms_worst": round(max(again), 1)}
    window.jobs.shutdown()
    app.processEvents()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
