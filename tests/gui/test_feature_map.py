"""The feature-space map: nearest point under the pointer, click to pick, Shift-drag to select a rectangle and
Ctrl-drag a lasso, 50,000 points."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from cnnexplorer.gui.widgets.feature_map import FeatureMap


def shown_map(qtbot, count=2000, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.normal(size=(count, 2))
    group = rng.integers(0, 3, count)
    plot = FeatureMap()
    qtbot.addWidget(plot)
    plot.resize(600, 500)
    plot.show()
    plot.show_points(xy, group, ["cat", "dog", "bird"], [f"img{i}" for i in range(count)],
                     rng.integers(0, 255, (count, 8, 8, 3), dtype=np.uint8))
    qtbot.waitExposed(plot)
    return plot, xy


def on_screen(plot, point):
    scene = plot.box.mapViewToScene(QPointF(*point))
    return plot.mapFromScene(scene)


def test_a_click_on_a_point_picks_it_and_hovering_shows_its_thumbnail(qtbot):
    plot, xy = shown_map(qtbot, 300)
    target = int(np.argmax(xy[:, 0]))  # the rightmost point has no neighbour on top of it
    with qtbot.waitSignal(plot.picked) as picked:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=on_screen(plot, xy[target]))
    assert picked.args == [target]
    plot._hover(plot.box.mapViewToScene(QPointF(*xy[target])))
    assert plot.hover_text.isVisible() and plot.hover_text.toPlainText() == f"img{target}"
    assert plot.hover_image.isVisible()
    far = plot.box.mapViewToScene(QPointF(xy[:, 0].max() + 100, 0))
    assert plot.nearest(far) is None


def test_shift_drag_selects_exactly_the_points_inside(qtbot):
    plot, xy = shown_map(qtbot)
    rect = QRectF(QPointF(-0.5, -0.25), QPointF(0.75, 1.0))
    with qtbot.waitSignal(plot.selected) as selected:
        plot._select(rect)
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= 0.75) & (xy[:, 1] >= -0.25) & (xy[:, 1] <= 1.0)
    assert selected.args[0] == np.flatnonzero(inside).tolist() and len(selected.args[0]) > 10
    start, end = on_screen(plot, (-0.5, -0.25)), on_screen(plot, (0.75, 1.0))
    with qtbot.waitSignal(plot.selected) as dragged:
        send(plot, QEvent.Type.MouseButtonPress, start)
        for step in range(1, 6):
            send(plot, QEvent.Type.MouseMove, start + (end - start) * step / 5)
        send(plot, QEvent.Type.MouseButtonRelease, end)
    band = plot.box.band.rect()  # the drag's rectangle, on whole screen pixels
    pixel = plot.box.viewPixelSize()
    for got, wanted, size in ((band.left(), -0.5, pixel[0]), (band.right(), 0.75, pixel[0]),
                              (band.top(), -0.25, pixel[1]), (band.bottom(), 1.0, pixel[1])):
        assert abs(got - wanted) <= 2 * size
    assert dragged.args[0] == plot.inside(band) and plot.box.band.isVisible()  # left drawn with its selection
    plot.point_out(dragged.args[0][0])
    assert (plot.pointed.data["x"][0], plot.pointed.data["y"][0]) == tuple(xy[dragged.args[0][0]])
    with qtbot.waitSignal(plot.selected) as emptied:
        plot._select(QRectF(QPointF(50, 50), QPointF(51, 51)))  # nothing there: no shape, no ring
    assert emptied.args[0] == [] and not plot.box.band.isVisible() and len(plot.pointed.data) == 0


def send(plot, kind, pos, modifiers=Qt.KeyboardModifier.ShiftModifier):
    """A left-button mouse event with ``modifiers`` held (QTest's moves carry no buttons, so a drag needs real
    events)."""
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
    event = QMouseEvent(kind, QPointF(pos), QPointF(plot.viewport().mapToGlobal(pos)), Qt.MouseButton.LeftButton
                        if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton, buttons,
                        modifiers)
    QApplication.sendEvent(plot.viewport(), event)


def test_fifty_thousand_points_draw_in_one_group_item_each(qtbot):
    plot, _ = shown_map(qtbot, 50_000)
    assert len(plot.groups) == 3 and sum(len(g.data) for g in plot.groups) == 50_000
    start = time.perf_counter()
    plot.grab()
    assert time.perf_counter() - start < 5  # a sanity bound: the benchmark measures the real figure


def test_the_legend_sits_beside_dense_points_and_stays_readable(qtbot):
    """Points fill the whole view, corners included; the legend is in a column of its own, on white."""
    plot = FeatureMap()
    qtbot.addWidget(plot)
    plot.resize(600, 500)
    plot.show()
    side = np.linspace(0, 1, 150)
    xy = np.stack(np.meshgrid(side, side), -1).reshape(-1, 2)  # a dense grid over the whole view
    plot.show_points(xy, np.zeros(len(xy), int), ["only"], [""] * len(xy))
    qtbot.waitExposed(plot)
    QApplication.processEvents()
    legend = plot.legend.mapRectToScene(plot.legend.boundingRect())
    view = plot.box.sceneBoundingRect()
    assert legend.width() > 20 and legend.left() >= view.right() - 1, "the legend covers points"
    assert legend.height() < view.height() / 2, "the legend is its own size, not the plot's height"
    image = plot.grab().toImage()
    box = plot.mapFromScene(legend).boundingRect()
    inside = box.adjusted(box.width() // 2, 4, -4, -4)  # the label's half, clear of the sample symbol and frame
    whites = [image.pixelColor(x, y).lightness() > 235 for x in range(inside.left(), inside.right())
              for y in range(inside.top(), inside.bottom())]
    assert len(whites) > 20 and np.mean(whites) > 0.5, "the legend's background is not white"


def test_the_legend_names_the_largest_groups_and_counts_the_rest(qtbot):
    """A model's many classes: the legend names the MAX_LEGEND largest with their counts, in class order, as the
    exported picture does, and counts the others in one line."""
    from cnnexplorer.pictures.map import MAX_LEGEND

    sizes = np.arange(1, MAX_LEGEND + 11)  # group g holds g + 1 points
    group = np.repeat(np.arange(len(sizes)), sizes)
    plot = FeatureMap()
    qtbot.addWidget(plot)
    plot.resize(600, 800)  # room for more rows than the picture's legend names
    plot.show_points(np.random.default_rng(0).normal(size=(len(group), 2)), group,
                     [f"class {g}" for g in range(len(sizes))], [""] * len(group))
    labels = [label.text for _, label in plot.legend.items]
    assert len(labels) == MAX_LEGEND + 1 and len(plot.groups) == len(sizes)
    assert labels[0] == "class 10 (11)" and labels[MAX_LEGEND - 1] == f"class {len(sizes) - 1} ({len(sizes)})"
    assert labels[-1] == "10 more groups (55 images)"


def test_a_short_map_names_only_the_groups_that_fit_and_cuts_long_names(qtbot):
    """100 classes in a short window: the legend stays within the plot's height (the axis below stays in view),
    and names more rows when the window grows."""
    group = np.arange(3000) % 100
    plot = FeatureMap()
    qtbot.addWidget(plot)
    plot.resize(560, 360)
    plot.show()
    names = [f"n{g:08d} a class with a very long name indeed" for g in range(100)]
    plot.show_points(np.random.default_rng(0).normal(size=(3000, 2)), group, names, [""] * 3000)
    qtbot.waitExposed(plot)
    QApplication.processEvents()
    legend = plot.legend.mapRectToScene(plot.legend.boundingRect())
    assert legend.bottom() <= plot.height() - 20, "the legend pushes the plot's axis out of view"
    labels = [label.text for _, label in plot.legend.items]
    assert labels[-1].endswith("more groups (" + f"{3000 - 30 * (len(labels) - 1):,} images)")
    assert all("…" in text and len(text) < 50 for text in labels[:-1])
    short = len(labels)
    plot.resize(560, 700)
    QApplication.processEvents()
    assert len(plot.legend.items) > short


def test_ctrl_drag_draws_a_lasso_that_selects_the_points_inside_not_its_bounding_box(qtbot):
    plot, _ = shown_map(qtbot, 10)
    xy = np.array([(0.0, 0.0), (4.0, 0.0), (2.0, 3.0),  # the lasso's corners, to frame the view
                   (2.0, 1.0), (1.6, 0.5), (2.4, 0.5), (2.0, 2.2),  # well inside the triangle
                   (0.4, 2.6), (3.6, 2.6), (2.0, -0.5)])  # in its bounding box (or just below), outside it
    plot.show_points(xy, np.zeros(len(xy), np.int64), ["all"], [f"img{i}" for i in range(len(xy))])
    corners = [on_screen(plot, point) for point in ((0.0, 0.0), (4.0, 0.0), (2.0, 3.0))]
    with qtbot.waitSignal(plot.selected) as lassoed:
        send(plot, QEvent.Type.MouseButtonPress, corners[0], Qt.KeyboardModifier.ControlModifier)
        for start, end in zip(corners, corners[1:]):
            for step in range(1, 11):
                qtbot.wait(12)  # pyqtgraph passes on at most 100 moves a second
                send(plot, QEvent.Type.MouseMove, start + (end - start) * step / 10, Qt.KeyboardModifier.ControlModifier)
        send(plot, QEvent.Type.MouseButtonRelease, corners[-1], Qt.KeyboardModifier.ControlModifier)
    assert lassoed.args[0] == [3, 4, 5, 6] and plot.box.lasso.isVisible()  # the outline stays drawn
    send(plot, QEvent.Type.MouseButtonPress, corners[0])  # a new selection (a rectangle) starts: the outline goes
    qtbot.wait(12)
    send(plot, QEvent.Type.MouseMove, corners[1])
    assert not plot.box.lasso.isVisible() and plot.box.band.isVisible()
    send(plot, QEvent.Type.MouseButtonRelease, corners[1])
    plot.show_points(xy, np.zeros(len(xy), np.int64), ["all"], [f"img{i}" for i in range(len(xy))])
    assert not plot.box.band.isVisible()  # new points: no selection
