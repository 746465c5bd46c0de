"""A long session on the real window: switching layer and image five hundred times leaves no
finished job, input or result behind, and the process stops growing after the first hundred.

The leak this guards against grew the process by 127 MB over 900 switches (0.14 MB a switch): over the
400 switches measured here that is 56 MB, well above the 20 MB allowed; the checks of live jobs and
stale results are exact at any length."""

from __future__ import annotations

import gc
import os
import weakref

from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.views.heatmap_view import TREE_LAYER, HeatmapView
from cnnexplorer.gui.workers import JobHandle

SWITCHES = 500
WARM_UP = 100
MAX_GROWTH_MB = 20
WAIT_MS = 60_000


def rss_mb() -> float:
    """The process's resident memory, after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_handles() -> int:
    gc.collect()
    return sum(type(o) is JobHandle for o in gc.get_objects())


def demo_window(make_window):
    """The window on the demo model with the sample images, and the model's convolutions."""
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(p) for p in sample_images()])
    assert window.wait_for_jobs(WAIT_MS)
    layers = [layer.name for layer in window.session.summary.layers if layer.type == "Conv2d"]
    assert len(layers) > 2 and len(window.session.images) > 2
    return window, layers


def switch(window, i: int, layers: list[str]) -> None:
    """Switch the layer (even ``i``) or the image (odd ``i``) and wait for what that starts."""
    session = window.session
    if i % 2:
        session.set_image(session.images[i // 2 % len(session.images)])
    else:
        session.set_layer(layers[i // 2 % len(layers)])
    assert window.wait_for_jobs(WAIT_MS)


def stale(refs: list[weakref.ref], *current) -> list:
    """What the references still reach, apart from the ``current`` objects."""
    gc.collect()
    return [ref() for ref in refs if ref() is not None and not any(ref() is c for c in current)]


def test_five_hundred_switches_on_the_heatmaps_tab_release_every_job(make_window):
    before = live_handles()  # earlier tests' windows may still keep their views' last handles
    window, layers = demo_window(make_window)
    view = window.show_view(HeatmapView)
    view.layer_choice.setCurrentText(TREE_LAYER)  # the map follows the tree's layer
    shown: list[weakref.ref] = []  # each map shown: its input and the result it was drawn from
    for i in range(SWITCHES):
        switch(window, i, layers)
        assert view.shown.heatmap.layer == window.session.layer
        shown += [weakref.ref(view.shown.pixels), weakref.ref(view.shown.heatmap)]
        if i + 1 == WARM_UP:
            handles, warm = live_handles(), rss_mb()
    assert max(handles, live_handles()) - before <= len(window.views)  # at most the last job a view keeps
    growth = rss_mb() - warm
    assert stale(shown, view.shown.pixels, view.shown.heatmap) == []
    assert growth < MAX_GROWTH_MB, f"grew {growth:.1f} MB in {SWITCHES - WARM_UP} switches"


def test_switches_on_the_activations_tab_keep_only_the_grid_shown(make_window):
    before = live_handles()
    window, layers = demo_window(make_window)
    view = window.show_view(ActivationsView)
    shown: list[weakref.ref] = []
    for i in range(WARM_UP):
        switch(window, i, layers)
        assert view.result.layer == window.session.layer and view.result.image is window.session.image
        shown.append(weakref.ref(view.result))
    assert live_handles() - before <= len(window.views)
    assert stale(shown, view.result) == []
