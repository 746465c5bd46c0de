"""The Heatmaps tab driven through the real window: the map follows the session's target, the
extra jobs fill the panel and the plot, and Export writes the core renderer's pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.attribution import METHODS, compute_heatmap, render_heatmap
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.heatmap_view import HeatmapView
from cnnexplorer.pictures.heatmap_panels import SPACER

WAIT_MS = 60_000


@pytest.fixture
def tab(make_window):
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    window.open_files([str(p) for p in sample_images()[:1]])
    assert window.wait_for_jobs(WAIT_MS)
    view = window.show_view(HeatmapView)
    assert window.wait_for_jobs(WAIT_MS)
    return window, view


def expected(window, method="gradcam", target=None, **kwargs):
    session = window.session
    pixels = session.model.pixels(session.image)
    return pixels, compute_heatmap(session.model, pixels, method, target, **kwargs)


def test_the_map_follows_the_target_and_export_writes_its_pixels(tab, tmp_path):
    window, view = tab
    top = window.session.effective_target
    assert view.shown is not None and view.shown.heatmap.target == top
    pixels, heatmap = expected(window)
    np.testing.assert_allclose(view.shown.heatmap.map, heatmap.map, rtol=1e-5, atol=1e-7)
    other = (top + 1) % window.session.model.num_classes
    window.session.set_target(other)
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.target == other and str(window.session.model.label(other)) in view.message.text()
    view.why_not.setChecked(True)
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.negative
    view.opacity.setValue(70)
    view.cmap.setCurrentText("viridis")
    path, sidecar = window.export_current_view(tmp_path / "heat.png")
    _, against = expected(window, target=other, negative=True)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), render_heatmap(pixels, against, 0.7, "viridis"))
    settings = json.loads(sidecar.read_text())["settings"]
    assert settings["why_not"] and settings["target"] == other and settings["alpha"] == 0.7


def test_the_method_and_tree_layer_choices_are_used(tab):
    window, view = tab
    view.method.setCurrentIndex(view.method.findData("saliency"))
    assert not view.layer_choice.isEnabled()  # gradient methods explain the input
    view.method.setCurrentIndex(view.method.findData("layercam"))
    assert view.layer_choice.isEnabled()
    view.layer_choice.setCurrentIndex(1)
    window.session.set_layer("features.5")
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.method == "layercam" and view.shown.heatmap.layer == "features.5"


def test_comparison_grid_top3_and_sanity_check_fill_the_panel(tab):
    window, view = tab
    progress = []
    window.jobs.progress.connect(lambda message, fraction: progress.append(fraction))
    view.compare_methods()
    assert window.wait_for_jobs(WAIT_MS)
    assert [name for name, _ in view.panels] == list(METHODS)
    size = view.shown.pixels.shape[-1]
    assert view.panel_canvas.image_item.image.shape[1] == len(METHODS) * size + (len(METHODS) - 1) * SPACER
    assert len({round(f, 2) for f in progress if f >= 0}) > 3  # one job, progress across the methods

    chosen = ["gradcam", "saliency", "occlusion"]
    for action in view.compare_menu.actions():
        action.setChecked(action.data() in chosen)
    view.compare_methods()
    assert window.wait_for_jobs(WAIT_MS)
    assert [name for name, _ in view.panels] == chosen

    view.top_classes()
    assert window.wait_for_jobs(WAIT_MS)
    ranked = [p.index for p in window.session.predictions[:3]]
    assert [h.target for _, h in view.panels] == ranked

    view.sanity_check()
    assert window.wait_for_jobs(WAIT_MS)
    stages = view.sanity.stages
    assert len(view.panels) == len(stages) + 1 and "ρ = " in view.panel_caption.text()
    assert stages[-1].correlation < 0.9


def test_deletion_and_insertion_curves_are_plotted_with_their_auc(tab):
    window, view = tab
    view.deletion_insertion()
    assert window.wait_for_jobs(WAIT_MS)
    deletion, insertion = view.curves
    assert view.plot.isVisible() and len(view.plot.listDataItems()) == 2
    assert f"{deletion.auc:.3f}" in view.panel_caption.text() and f"{insertion.auc:.3f}" in view.panel_caption.text()
    assert deletion.scores[0] == pytest.approx(view.shown.heatmap.score, rel=1e-4)
    assert insertion.scores[-1] == pytest.approx(view.shown.heatmap.score, rel=1e-4)
    assert deletion.auc < insertion.auc  # Grad-CAM of the trained shapes net is faithful on a sample image


def test_an_image_switch_computes_one_map(tab, monkeypatch):
    window, view = tab
    window.open_files([str(sample_images()[1])])
    assert window.wait_for_jobs(WAIT_MS)
    kinds = []
    start = window.jobs.start
    monkeypatch.setattr(window.jobs, "start", lambda make_job, **kw: kinds.append(kw.get("kind")) or start(make_job, **kw))
    window.session.set_image(window.session.images[0])
    assert window.wait_for_jobs(WAIT_MS)
    assert kinds.count("heatmap-view") == 1 and "predict" in kinds  # the map does not wait for the predictions
    assert view.shown.heatmap.target == window.session.effective_target
