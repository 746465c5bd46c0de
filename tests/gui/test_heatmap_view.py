"""The Heatmaps tab driven through the real window: the map follows the session's target, the
extra jobs fill the panel and the plot, and Export writes the core renderer's pixels at the
original image's resolution, with the title and colour bar below."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from cnnexplorer.core.attribution import METHODS, compute_heatmap, render_heatmap
from cnnexplorer.core.attribution.overlay import heatmap_scale
from cnnexplorer.core.colour_bar import colour_bar
from cnnexplorer.core.interventions import Edit
from cnnexplorer.core.picture_style import PAPER
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.views.heatmap_view import HeatmapView
from cnnexplorer.pictures.heatmap import model_box, title
from cnnexplorer.pictures.heatmap_panels import COLUMNS, LABEL_HEIGHT, SPACER, TILE
from tests.gui.gui_helpers import ready, shapes_window

WAIT_MS = 60_000


@pytest.fixture
def tab(make_window):
    window = shapes_window(make_window)
    view = window.show_view(HeatmapView)
    assert window.wait_for_jobs(WAIT_MS)
    return window, view


def expected(window, method="gradcam", target=None, **kwargs):
    session = window.session
    pixels = session.model.pixels(session.image)
    return pixels, compute_heatmap(session.model, pixels, method, target, **kwargs)


def original(window) -> tuple[np.ndarray, tuple]:
    image = window.session.image.image
    return np.asarray(image.convert("RGB")), model_box(window.session.model.preprocessing, image.size)


def exported_map(window, path) -> np.ndarray:
    """The exported picture above its title and colour bar (the original image's size)."""
    height, width = original(window)[0].shape[:2]
    return np.asarray(Image.open(path))[:height, :width]


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
    image, box = original(window)
    assert image.shape[0] > pixels.shape[-1]  # drawn at the image's resolution, not the model input's
    np.testing.assert_array_equal(exported_map(window, path),
                                  render_heatmap(pixels, against, 0.7, "viridis", background=image, box=box))
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
    view.show_tile(1)  # a click on the second class's tile makes it the target
    assert window.session.target == ranked[1]
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.target == ranked[1]

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


def test_gradient_maps_saturate_their_top_percent_and_export_their_colour_bar(tab, tmp_path):
    window, view = tab
    view.method.setCurrentIndex(view.method.findData("saliency"))
    assert window.wait_for_jobs(WAIT_MS)
    heatmap, label = view.shown.heatmap, view.shown.label
    assert view.clip.value() == 1.0 and view.cmap.currentText() == "auto"
    path, sidecar = window.export_current_view(tmp_path / "saliency.png")
    assert json.loads(sidecar.read_text())["settings"]["clip"] == 1.0
    exported = np.asarray(Image.open(path))
    scale = heatmap_scale(heatmap, "jet", 1.0)
    assert scale.high == pytest.approx(heatmap.scale(1.0)) and scale.high < 0.8 * float(heatmap.map.max())
    assert "gradient" in scale.unit and "1 % saturate" in scale.unit
    height = original(window)[0].shape[0]
    np.testing.assert_array_equal(exported[height:], colour_bar(title(heatmap, label), scale, exported.shape[1]))

    view.clip.setValue(0.0)
    unclipped = exported_map(window, window.export_current_view(tmp_path / "unclipped.png")[0])
    image = original(window)[0].astype(int)
    clipped = exported_map(window, path)
    assert np.abs(clipped - image).mean() > 1.5 * np.abs(unclipped - image).mean()  # more of the map is seen


def test_map_only_draws_the_map_alone_on_paper(make_window, tmp_path):
    window = ready(make_window(), "torchvision:resnet18:none", sample_images()[:1])
    view = window.show_view(HeatmapView)
    view.map_only.setChecked(True)
    view.cmap.setCurrentText("jet")
    assert window.wait_for_jobs(WAIT_MS)
    pixels, (image, box) = view.shown.pixels, original(window)
    drawn = exported_map(window, window.export_current_view(tmp_path / "map.png")[0])
    np.testing.assert_array_equal(drawn, render_heatmap(pixels, view.shown.heatmap, 0.7, "jet", background=image,
                                                        box=box, overlay=False))
    left, top = int(box[0]), int(box[1])
    assert left > 0 and (drawn[top:, :left - 1] == PAPER).all()  # outside what the model saw: no map, no image


def tile_centre(view, index: int):
    width, height = view.tiles.cell
    x = (index % COLUMNS) * (width + SPACER) + width / 2
    y = (index // COLUMNS) * (height + SPACER) + height / 2
    return view.panel_canvas.mapFromScene(view.panel_canvas.view_box.mapViewToScene(QPointF(x, y)))


def test_compared_methods_are_large_labelled_tiles_and_a_click_shows_one(tab, qtbot):
    window, view = tab
    window.resize(1400, 1000)
    view.compare_methods()
    assert window.wait_for_jobs(WAIT_MS)
    tiles = view.tiles
    assert tiles.count == len(METHODS) and tiles.cell[0] >= TILE and tiles.cell[1] >= TILE + LABEL_HEIGHT
    rows = -(-len(METHODS) // COLUMNS)
    assert tiles.pixels.shape[:2] == (rows * tiles.cell[1] + (rows - 1) * SPACER,
                                      COLUMNS * tiles.cell[0] + (COLUMNS - 1) * SPACER)
    for index in range(len(METHODS)):  # every tile has its label: ink above the picture
        left, top = (index % COLUMNS) * (tiles.cell[0] + SPACER), (index // COLUMNS) * (tiles.cell[1] + SPACER)
        assert (tiles.pixels[top:top + LABEL_HEIGHT, left:left + tiles.cell[0]] < 128).any()
    assert tiles.tile_at(tiles.cell[0] + SPACER / 2, 5) is None  # the spacer between tiles
    occlusion = list(METHODS).index("occlusion")
    qtbot.mouseClick(view.panel_canvas.viewport(), Qt.MouseButton.LeftButton, pos=tile_centre(view, occlusion))
    assert view.method_name == "occlusion"
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.method == "occlusion"


def test_extras_made_for_other_choices_are_not_left_up(tab):
    """Deletion/insertion curves belong to the map they measured; the top-3 grid to its method, the
    method comparison to its class: each goes when what it was made for changes, and only then."""
    window, view = tab
    view.deletion_insertion()
    assert window.wait_for_jobs(WAIT_MS) and view.curves is not None
    window.session.set_target(3)  # another class: the curves measured the old class's map
    assert window.wait_for_jobs(WAIT_MS)
    assert view.curves is None and not view.plot.isVisible() and view.panel_caption.text().strip() == ""

    view.top_classes()
    assert window.wait_for_jobs(WAIT_MS) and view.lower_panels is not None
    view.show_tile(1)  # a class from the grid: the grid of classes is still true for the method
    assert window.wait_for_jobs(WAIT_MS) and view.lower_panels is not None
    view.method.setCurrentIndex(view.method.findData("saliency"))  # another method: the grid goes
    assert window.wait_for_jobs(WAIT_MS) and view.lower_panels is None


class ImageSet:
    """The part of a probe set the reference images read: image ``i`` as a PIL image."""

    def __init__(self, paths):
        self.paths = paths

    def image(self, i: int):
        return Image.open(self.paths[i]).convert("RGB")


def small_index(channel: int):
    """A dataset index of three sample images on the demo model whose top images of ``channel`` at
    features.7 are 2, 0, 1 (by activation)."""
    from cnnexplorer.core.dataset.index_types import DatasetIndex, LayerIndex

    top = np.full((96, 3), -1)
    top[channel] = [2, 0, 1]
    zeros = np.zeros((96, 3), np.float32)
    record = LayerIndex("features.7", (8, 8), zeros, top, zeros.astype(np.int32), zeros.astype(np.int32), np.zeros(96),
                        np.zeros(96, np.float32), np.zeros(96), np.linspace(0, 1, 3), np.zeros((96, 2), np.int64))
    thumbnails = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    index = DatasetIndex("k", "builtin:shapes", "samples", 3, 3, {"features.7": record}, {}, np.zeros(3, np.int64),
                         np.zeros((3, 5), np.int64), np.zeros((3, 5), np.float32), thumbnails)
    return index, ImageSet(sample_images()[:3])


def test_lrp_composite_reduce_and_the_concept_list_make_the_current_unit(tab):
    from cnnexplorer.core.attribution.concepts import concepts_job
    from cnnexplorer.core.jobs import drive

    window, view = tab
    view.method.setCurrentIndex(view.method.findData("saliency"))
    assert view.reduce.isEnabled() and not view.composite.isEnabled()
    view.reduce.setCurrentText("rgb")
    assert window.wait_for_jobs(WAIT_MS)
    assert view.shown.heatmap.map.shape == (64, 64, 3)
    view.method.setCurrentIndex(view.method.findData("lrp"))
    view.composite.setCurrentText("alpha2-beta1")
    assert window.wait_for_jobs(WAIT_MS)
    assert view.composite.isEnabled() and not view.reduce.isEnabled()
    pixels, heatmap = expected(window, "lrp", composite="alpha2-beta1")
    np.testing.assert_allclose(view.shown.heatmap.map, heatmap.map, rtol=1e-4, atol=1e-7)
    assert f"relevance {heatmap.info['relevance_sum']:.3g} of logit {heatmap.info['logit']:.3g}" in view.message.text()

    window.session.set_layer("features.7")
    view.show_concepts()
    assert window.wait_for_jobs(WAIT_MS)
    found = drive(concepts_job(window.session.model, pixels, "features.7", top=8, composite="alpha2-beta1"))
    assert view.concept_list.isVisible() and view.concept_list.channels() == [c.channel for c in found.concepts]
    index, probe = small_index(found.concepts[1].channel)
    view.reference_source = lambda: (index, probe)
    second = view.concept_list.item(1)
    view.concept_list.itemClicked.emit(second)
    assert window.session.unit.layer == "features.7" and window.session.unit.channel == found.concepts[1].channel
    assert view.concept_list.currentRow() == 1
    assert window.wait_for_jobs(WAIT_MS)
    shown = view.references.shown
    assert view.references.isVisible() and shown.by_activation == (2, 0, 1)
    assert sorted(i for i, _ in shown.by_relevance) == [0, 1, 2]
    assert [v for _, v in shown.by_relevance] == sorted((v for _, v in shown.by_relevance), reverse=True)

    first = found.concepts[0].channel  # right-click a concept: the activation grid's edits
    view.concept_list.customContextMenuRequested.emit(view.concept_list.visualItemRect(view.concept_list.item(0)).center())
    switch_off = next(a for a in view.context_menu.actions() if a.text() == f"Switch off channel {first}")
    switch_off.trigger()
    view.context_menu.close()
    assert window.wait_for_jobs(WAIT_MS)
    assert window.session.interventions == (Edit("features.7", (first,)),)
    window.session.clear_interventions()
    window.session.set_layer("features.5")
    assert not view.concept_list.isVisible()
