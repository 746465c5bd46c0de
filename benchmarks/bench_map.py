"""Benchmark: the feature-space map at 50,000 points — one repaint after each pan and zoom step, a
rectangle over every point listed (the selection's list of images, as the Dataset tab shows it), a
lasso of 200 corners around most of them, and pan and zoom again with all 50,000 selected (the rectangle left drawn).

Goal (issue 16): no stall over 50 ms while panning and zooming 50,000 points. Offscreen Qt, so
the figure is the painting work itself: ``*_repaint_ms`` is the event loop's turn after each step (which
repaints the view: what a user waits for), ``*_with_grab_ms`` that turn plus a second render of the widget
into an image (``grab``; the figure this benchmark gave before 2026-12-01). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from PySide6.QtCore import QRectF  # noqa: E402

from cnnexplorer.gui.widgets.feature_map import FeatureMap  # noqa: E402
from cnnexplorer.gui.widgets.image_list import ImageList  # noqa: E402


def main() -> None:
    app = QApplication([])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    rng = np.random.default_rng(0)
    count = 50_000
    xy = np.concatenate([rng.normal(c, 1.0, (count // 10, 2)) for c in range(10)])
    thumbnails = rng.integers(0, 255, (count, 32, 32, 3), dtype=np.uint8)
    plot = FeatureMap()
    plot.resize(900, 700)
    plot.show()
    start = time.perf_counter()
    plot.show_points(xy, np.repeat(np.arange(10), count // 10), [f"class {c}" for c in range(10)],
                     [str(i) for i in range(count)], thumbnails)
    plot.grab()
    first = time.perf_counter() - start

    def pan_and_zoom() -> tuple[list[float], list[float]]:
        turns, with_grab = [], []
        for step in range(40):
            start = time.perf_counter()
            if step % 2:
                plot.box.translateBy(x=0.3, y=-0.2)
            else:
                plot.box.scaleBy((0.9, 0.9) if step % 4 == 0 else (1.1, 1.1))
            app.processEvents()
            turns.append(time.perf_counter() - start)
            plot.grab()
            with_grab.append(time.perf_counter() - start)
        return turns, with_grab

    steps, grabbed = pan_and_zoom()
    hover = []
    for _ in range(200):
        start = time.perf_counter()
        plot._hover(plot.box.mapViewToScene(pg.Point(*xy[rng.integers(count)])))
        hover.append(time.perf_counter() - start)
    listing = ImageList()
    listing.resize(240, 700)
    listing.show()
    plot.selected.connect(lambda numbers: listing.show_images(numbers, str, thumbnails))
    everything = QRectF(float(xy[:, 0].min()) - 1, float(xy[:, 1].min()) - 1, float(np.ptp(xy[:, 0])) + 2,
                        float(np.ptp(xy[:, 1])) + 2)
    select = []
    for _ in range(5):  # each: the rectangle's points found and listed, then one turn of the event loop
        start = time.perf_counter()
        plot._select(everything)
        app.processEvents()
        select.append(time.perf_counter() - start)
    assert listing.count() == count
    turns = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    radius = 4 * (1 + 0.3 * np.sin(5 * turns))
    outline = np.c_[4.5 + radius * np.cos(turns), 4.5 + radius * np.sin(turns)]  # a wavy ring around the clusters
    lasso = []
    for _ in range(5):
        start = time.perf_counter()
        plot._lasso(outline)
        app.processEvents()
        lasso.append(time.perf_counter() - start)
    lassoed = listing.count()
    plot._select(everything)
    app.processEvents()
    selected_steps, selected_grabbed = pan_and_zoom()  # with every point selected, its rectangle drawn
    print(json.dumps({"points": count, "first_draw_ms": round(first * 1000, 1),
                      "pan_zoom_repaint_ms": {"median": round(statistics.median(steps) * 1000, 1),
                                              "max": round(max(steps) * 1000, 1)},
                      "pan_zoom_with_grab_ms": {"median": round(statistics.median(grabbed) * 1000, 1),
                                                "max": round(max(grabbed) * 1000, 1)},
                      "hover_ms": {"median": round(statistics.median(hover) * 1000, 2),
                                   "max": round(max(hover) * 1000, 2)},
                      "select_all_and_list_ms": {"median": round(statistics.median(select) * 1000, 1),
                                                 "max": round(max(select) * 1000, 1)},
                      "pan_zoom_all_selected_ms": {"median": round(statistics.median(selected_steps) * 1000, 1),
                                                   "max": round(max(selected_steps) * 1000, 1)},
                      "pan_zoom_all_selected_with_grab_ms": {
                          "median": round(statistics.median(selected_grabbed) * 1000, 1),
                          "max": round(max(selected_grabbed) * 1000, 1)},
                      "lasso_200_corners_and_list_ms": {"median": round(statistics.median(lasso) * 1000, 1),
                                                        "max": round(max(lasso) * 1000, 1), "points_inside": lassoed},
                      "goal_max_stall_ms": 50}))


if __name__ == "__main__":
    main()
