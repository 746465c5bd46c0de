"""The Dataset tab: a folder dropped or opened is indexed under the current model; its atlas, neighbours, map
and evaluation pages show, open the set's images, and export pictures that the CLI makes again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from cnnexplorer.cli import main
from cnnexplorer.core.errors import UserError
from cnnexplorer.gui.session import Unit
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.views.dataset_view import PAGES, DatasetView
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.pictures.neighbours import model_tile
from tests.gui.gui_helpers import double_click, shapes_window

WAIT_MS = 60_000


@pytest.fixture
def folder(tmp_path):
    """Two labelled classes of the shapes samples, shifted and tinted, plus one file that is not an image."""
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    for name, sample in (("circle", "circle.png"), ("square", "square.png")):
        (root / name).mkdir(parents=True)
        base = np.asarray(Image.open(next(p for p in sample_images() if p.name == sample)).convert("RGB"))
        for i in range(6):
            moved = np.roll(base, rng.integers(-6, 6, 2), axis=(0, 1)).astype(np.int16) + rng.integers(-20, 20, 3)
            Image.fromarray(np.clip(moved, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    (root / "circle" / "notes.png").write_bytes(b"not an image")
    return root


@pytest.fixture
def window(make_window, folder):
    window = shapes_window(make_window)
    window.open_files([str(folder)])  # a dropped folder opens as the dataset
    assert window.wait_for_jobs(WAIT_MS)
    return window


def page(window, name):
    view = window.view(DatasetView)
    view.pages.setCurrentIndex(PAGES.index(name))
    assert window.wait_for_jobs(WAIT_MS)
    return view


def assert_remade(window, tmp_path) -> dict:
    png, sidecar = window.export_current_view(tmp_path / "gui.png")
    out = tmp_path / "cli.png"
    assert main(["export", "--from-sidecar", str(sidecar), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(png)))
    return json.loads(sidecar.read_text())


def test_a_dropped_folder_is_indexed_and_its_unreadable_file_named(window, folder):
    view = window.view(DatasetView)
    assert window.tabs.currentWidget() is view and view.data.text() == str(folder)
    assert view.index is not None and view.index.count == 12 and view.probe.label_names == ["circle", "square"]
    assert "Indexed 12 images" in view.status.text() and "skipped 1 unreadable" in view.status.text()
    assert "cache" not in view.status.text()
    view.start_index()  # the same model, set and layers: read back, each note a sentence of its own
    assert window.wait_for_jobs(WAIT_MS)
    assert view.status.text().endswith("skipped 1 unreadable file. Read from the cache.") and view.index.count == 12
    assert "notes.png" in view.status.toolTip()  # the skipped file named


def test_the_atlas_follows_the_current_unit_and_a_patch_opens_its_image(window, tmp_path, qtbot):
    view = page(window, "Atlas")
    layer = next(iter(view.index.layers))
    window.session.set_unit(Unit(layer, 3))
    assert window.wait_for_jobs(WAIT_MS)
    assert [u.channel for u in view._atlas.units] == [3]
    recorded = assert_remade(window, tmp_path)
    assert recorded["view"] == "atlas" and recorded["layer"] == layer and recorded["settings"]["channels"] == [3]
    cell = view._atlas.cells[0]
    patch = view._atlas.hit(cell.box[0] + 1, cell.box[1] + 1)
    with qtbot.waitSignal(view.open_image_requested) as opened:
        view._open_image_number(patch.image)
    assert opened.args == [view.probe.source(patch.image)]


def test_a_new_units_patches_show_before_its_reconstructions(window, monkeypatch):
    from cnnexplorer.pictures.atlas import AtlasDraft

    view = page(window, "Atlas")
    layer = list(view.index.layers)[1]
    shown = []
    draft = view._show_atlas_draft
    monkeypatch.setattr(view, "_show_atlas_draft", lambda item: (draft(item), shown.append(
        (item, view.atlas_canvas.image_item.image.copy(), view.atlas_caption.text(), view.picture()))))
    window.session.set_unit(Unit(layer, 4))
    assert window.wait_for_jobs(WAIT_MS)
    (item, pixels, caption, exported), = shown
    assert isinstance(item, AtlasDraft) and "making the reconstructions" in caption
    assert exported is None  # Export waits for the whole atlas
    final = view._atlas
    assert [u.channel for u in final.units] == [4] and view.picture() is not None
    patches = [cell for cell in final.cells if cell.kind == "patch"]
    assert patches and [cell.box for cell in item.cells] == [cell.box for cell in final.cells]
    for cell in patches:
        x0, y0, x1, y1 = cell.box
        np.testing.assert_array_equal(pixels[y0:y1, x0:x1], final.picture.pixels[y0:y1, x0:x1])
    shown.clear()
    window.session.set_unit(Unit(layer, 5))
    window.session.set_unit(Unit(layer, 4))  # made before: shown whole, no draft
    assert window.wait_for_jobs(WAIT_MS)
    assert shown == [] and view._atlas.units[0].channel == 4


def test_a_click_on_a_neighbour_opens_its_image(window, qtbot):
    view = page(window, "Neighbours")
    made = view._neighbours
    report = made.picture.report
    number = {view.probe.source(i): i for i in range(len(view.probe))}  # the report names folder images by path
    listed = report["feature"] + report["pixel"]
    assert [image for _, image in made.tiles] == [number[entry["image"]] for entry in listed]
    (x0, y0, x1, y1), image = made.tiles[-1]  # the last pixel-space neighbour
    np.testing.assert_array_equal(made.picture.pixels[y0:y1, x0:x1],
                                  model_tile(window.session.model, view.probe.image(image)))
    assert made.hit(x0 - 1, y0) is None and made.hit(x0, y0) == image  # the gap before it, and its corner
    centre = view.neighbours_canvas.view_box.mapViewToScene(QPointF((x0 + x1) / 2, (y0 + y1) / 2))
    with qtbot.waitSignal(view.open_image_requested) as opened:
        qtbot.mouseClick(view.neighbours_canvas.viewport(), Qt.MouseButton.LeftButton,
                         pos=view.neighbours_canvas.mapFromScene(centre))
    assert opened.args == [view.probe.source(image)]


def test_neighbours_map_and_evaluation_pages(window, tmp_path, qtbot):
    view = page(window, "Neighbours")
    assert "8-NN accuracy over the set" in view.neighbours_caption.text()
    view.k.setValue(20)  # more than the set's 12 images
    assert window.wait_for_jobs(WAIT_MS)
    assert view.neighbours_caption.text().startswith("The set holds 12 images, all shown. 11-NN accuracy")
    assert len(view._neighbours.tiles) == 24
    view.k.setValue(8)
    assert window.wait_for_jobs(WAIT_MS)
    assert assert_remade(window, tmp_path)["view"] == "neighbours"
    view = page(window, "Map")
    assert sum(len(g.data) for g in view.map.groups) == 12 and "principal components" in view.map_caption.text()
    assert assert_remade(window, tmp_path)["view"] == "map"
    view.colour_by.setCurrentText("right or wrong")
    assert window.wait_for_jobs(WAIT_MS)  # the map is projected in a worker
    names = {g.name(): len(g.data) for g in view.map.groups}
    assert set(names) <= {"right", "wrong", "no label"} and sum(names.values()) == 12
    view.projection.setCurrentText("t-SNE")
    assert window.wait_for_jobs(WAIT_MS)
    assert "t-SNE" in view.map_caption.text() and sum(len(g.data) for g in view.map.groups) == 12
    made = view._projections[(view.index.key, view.feature_layer.currentText(), "tsne")]
    _, sidecar = window.export_current_view(tmp_path / "tsne.png")
    assert json.loads(sidecar.read_text())["settings"]["projection"] == "tsne"
    view.colour_by.setCurrentText("label")  # another colouring: the same t-SNE, not a second run
    assert window.wait_for_jobs(WAIT_MS)
    assert view._projections[(view.index.key, view.feature_layer.currentText(), "tsne")] is made
    assert "t-SNE" in view.map_caption.text()
    view = page(window, "Evaluation")
    assert "12 labelled images" in view.evaluation_caption.text()
    assert assert_remade(window, tmp_path)["view"] == "confusion"
    if view.mistakes.count():
        with qtbot.waitSignal(view.open_image_requested):
            double_click(qtbot, view.mistakes, 0)


def test_an_unlabelled_set_has_neighbours_and_says_why_no_accuracy(window, folder):
    for number, file in enumerate(sorted(folder.glob("*/*.png"))[:6]):
        file.rename(folder / f"{number}.png")  # out of the class folders: unlabelled
    for sub in ("circle", "square"):
        for file in (folder / sub).iterdir():
            file.unlink()
        (folder / sub).rmdir()
    window.open_files([str(folder)])
    assert window.wait_for_jobs(WAIT_MS)
    view = page(window, "Neighbours")
    assert view.probe.label_names is None and len(view._neighbours.tiles) == 12
    assert view.neighbours_caption.text() == ("The set holds 6 images, all shown. With fewer than two labelled images "
                                              "there is no k-NN accuracy. Click a neighbour to open it.")


def test_a_new_model_forgets_the_index(window):
    view = page(window, "Map")
    view.map.selected.emit([0, 5])
    assert view.selection.isVisibleTo(view) and view.map_caption.text()
    window.load_model("builtin:tinyvgg", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    assert view.index is None and view.picture() is None and "index it" in view.empty_reason()
    assert view.selection.isHidden() and view.selection.count() == 0  # nothing left of the old model's pages
    assert not any(c.text() for c in (view.atlas_caption, view.neighbours_caption, view.map_caption,
                                      view.evaluation_caption))
    assert "Not indexed under this model" in view.status.text() and not view.map.legend.isVisible()


def test_a_rectangle_on_the_map_lists_its_images_which_open(window, qtbot):
    view = page(window, "Map")
    assert view.selection.isHidden()
    view.map.selected.emit([0, 5])
    assert view.selection.isVisibleTo(view) and view.selection.count() == 2
    assert view.selection.row_data(1) == "circle/5.png"  # its place in the set: names repeat across classes
    view.selection.setCurrentIndex(view.selection.model().index(1))  # the row chosen: its point ringed on the map
    assert (view.map.pointed.data["x"][0], view.map.pointed.data["y"][0]) == tuple(view.map.xy[5])
    with qtbot.waitSignal(view.open_image_requested) as opened:
        double_click(qtbot, view.selection, 1)
    assert opened.args == [view.probe.source(5)]
    assert "2 selected" in view.map_caption.text()
    view.map.selected.emit([])
    assert view.selection.isHidden() and view.selection.count() == 0 and "selected" not in view.map_caption.text()
    view.map.selected.emit([1])
    view.colour_by.setCurrentText("prediction")  # the map drawn again: the selection goes with the old points
    assert window.wait_for_jobs(WAIT_MS)
    assert view.selection.isHidden() and "selected" not in view.map_caption.text()


def test_a_confusion_cell_lists_its_images_and_the_activation_grid_asks_for_an_atlas(window):
    view = page(window, "Evaluation")
    grid, evaluation = view._grid, view._evaluation
    true = grid.shown[0]
    x, y = grid.left + grid.cell / 2, grid.top + grid.cell / 2  # the first row's diagonal cell
    assert grid.cell_at(x, y) == (true, true) and grid.cell_at(grid.left - 1, y) is None
    view.list_cell(true, true)
    listed = [view.mistakes.number(k) for k in range(view.mistakes.count())]
    assert listed == evaluation.cell(true, true).tolist() and listed
    first = view.mistakes.row_data(0)
    assert view.mistakes.row_data(0, Qt.ItemDataRole.ToolTipRole).startswith(first + "\n")  # however narrow the list
    thumbnail = view.mistakes.row_data(0, Qt.ItemDataRole.DecorationRole)
    assert (thumbnail.width(), thumbnail.height()) == view.index.thumbnails.shape[1:3][::-1]
    layer = next(iter(view.index.layers))
    window.view(ActivationsView).atlas_requested.emit(Unit(layer, 2))
    assert window.wait_for_jobs(WAIT_MS)
    assert window.tabs.currentWidget() is view and PAGES[view.pages.currentIndex()] == "Atlas"
    assert window.session.unit == Unit(layer, 2) and [u.channel for u in view._atlas.units] == [2]


def test_the_faithfulness_page_measures_the_image_and_the_set(window, tmp_path):
    view = page(window, "Faithfulness")
    assert set(window.session.dataset_means) == set(view.index.layers)  # the grid's "set to the mean" uses them
    view.faith_methods.setText("gradcam")
    view.faith_steps.setValue(3)
    view.measure_image()
    assert window.wait_for_jobs(WAIT_MS)
    table = view.faith_table
    assert table.rowCount() == 2 and table.verticalHeaderItem(1).text() == "random (baseline)"
    assert table.value("gradcam", "road_morf") < table.value("gradcam", "road_lerf")
    assert "sanity check of gradcam" in view.faith_caption.text() and view.sanity_canvas.image_item.image is not None
    assert view.faith_caption.text().startswith(f"Measured on {window.session.image.name}. Below:")
    stages = re.search(r"down to (.*) \(each with", view.faith_caption.text())[1].split(", ")  # named, for small screens
    assert stages[0].startswith("features.7.conv2 ") and stages[-1].startswith("features.0.0 ") and len(stages) > 3
    assert all(re.fullmatch(r"[\w.]+ -?\d\.\d\d", stage) for stage in stages)
    recorded = assert_remade(window, tmp_path)
    assert recorded["view"] == "faithfulness" and recorded["settings"]["methods"] == ["gradcam"]
    view.faith_limit.setValue(2)
    view.measure_set()
    assert window.wait_for_jobs(WAIT_MS)
    assert table.report["count"] == 2 and view.picture() is None  # a set's table is not one image's picture
    assert view.faith_caption.text() == f"Measured on 2 images of {view.probe.spec}."
    with pytest.raises(UserError, match="measure the current image"):
        window.export_current_view(tmp_path / "set.png")
    window.load_model("builtin:tinyvgg", "cpu")  # a new model: the measurements were of the old one
    assert window.wait_for_jobs(WAIT_MS)
    assert table.rowCount() == 0 and table.report is None and view.sanity_canvas.image_item.image is None
    assert view.faith_caption.text().startswith("Measure how faithful") and view.picture() is None


def test_a_unit_chosen_on_another_tab_shows_on_coming_back(window, tmp_path):
    view = page(window, "Atlas")
    layer = next(iter(view.index.layers))
    window.session.set_unit(Unit(layer, 3))
    assert window.wait_for_jobs(WAIT_MS) and [u.channel for u in view._atlas.units] == [3]
    window.tabs.setCurrentWidget(window.view(ActivationsView))
    window.session.set_unit(Unit(layer, 7))  # a tile clicked in the activation grid
    assert window.wait_for_jobs(WAIT_MS) and [u.channel for u in view._atlas.units] == [3], "hidden: not made yet"
    window.tabs.setCurrentWidget(view)
    assert window.wait_for_jobs(WAIT_MS)
    assert [u.channel for u in view._atlas.units] == [7] and "channel 7" in view.atlas_caption.text()
    assert assert_remade(window, tmp_path)["settings"]["channels"] == [7]
    window.session.set_layer("features.0.1")  # a layer the index has no record of: no atlas, and none to export
    assert window.wait_for_jobs(WAIT_MS)
    assert view.picture() is None and "no record of features.0.1" in view.atlas_caption.text()
    with pytest.raises(UserError, match="shows nothing yet; the index has no record of features.0.1"):
        window.export_current_view(tmp_path / "none.png")


def test_a_picture_that_arrives_after_a_new_model_is_dropped(window):
    view = page(window, "Atlas")
    layer = list(view.index.layers)[-2]
    window.session.set_unit(Unit(layer, 1))  # its atlas starts in a worker …
    window.load_model("builtin:tinyvgg", "cpu")  # … and the model changes before it is done
    assert window.wait_for_jobs(WAIT_MS)
    assert view._atlas is None and view.picture() is None and view.index is None
    assert view.atlas_canvas.image_item.image is None
    view._open_image_number(0)  # a click on what was there: nothing to open, no error


def test_opening_an_image_from_a_list_keeps_the_list(window):
    view = page(window, "Map")
    view.map.selected.emit([0, 5])
    opened = view.probe.source(5)
    window.open_files([opened])  # what double-clicking the second row does
    assert window.wait_for_jobs(WAIT_MS)
    assert window.session.image.path == Path(opened)
    view.pages.setCurrentIndex(PAGES.index("Map"))
    assert window.wait_for_jobs(WAIT_MS)
    assert view.selection.count() == 2 and "2 selected" in view.map_caption.text()
    view = page(window, "Evaluation")
    view.list_cell(0, 0)
    listed = view.mistakes.count()
    window.session.set_layer("features.0.0")
    assert window.wait_for_jobs(WAIT_MS)
    assert view.mistakes.count() == listed and "called circle" in view.evaluation_caption.text()


def test_a_second_pass_a_bad_set_and_the_feature_layer(window, folder):
    view = page(window, "Neighbours")
    view.feature_layer.setCurrentText("classifier")
    view.top_k.setValue(4)  # another index: a pass, not the cache
    view.start_index()
    first = view._running
    view.start_index()  # started again before the first is done: the first is dropped
    second = view._running
    assert second is not first and view.cancel_button.isEnabled() and not view.index_button.isEnabled()
    while first in view.jobs.active:  # the dropped pass ends first …
        QApplication.processEvents()
    running = second in view.jobs.active
    assert not running or (view.cancel_button.isEnabled() and view.progress.isVisibleTo(view)), "… and leaves the "\
        "controls to the pass still running"
    assert "cancelled" not in view.status.text()
    assert window.wait_for_jobs(WAIT_MS)
    assert view._running is None and view.index_button.isEnabled() and not view.cancel_button.isEnabled()
    assert view.progress.isHidden() and view.index.top_k == 4 and "cancelled" not in view.status.text()
    assert view.feature_layer.currentText() == "classifier", "the chosen feature layer stays"
    shown = view.index
    view.data.setText(str(folder / "nowhere"))
    view.start_index()
    assert window.wait_for_jobs(WAIT_MS)
    assert "not found" in view.status.text() and view.index is shown and view.probe is not None


def test_quick_changes_end_with_the_last_one_drawn_and_other_pages_do_not_stop_a_page(window):
    view = page(window, "Map")
    for colour in ("prediction", "label", "prediction"):  # each before the last was drawn
        view.colour_by.setCurrentText(colour)
    assert window.wait_for_jobs(WAIT_MS)
    assert view.picture()[1]["colour_by"] == "prediction" and "Stopped" not in view.map_caption.text()
    view.projection.setCurrentText("t-SNE")  # a slow picture …
    view.pages.setCurrentIndex(PAGES.index("Neighbours"))  # … and another page looked at meanwhile
    assert window.wait_for_jobs(WAIT_MS)
    view.pages.setCurrentIndex(PAGES.index("Map"))
    assert window.wait_for_jobs(WAIT_MS)
    assert "t-SNE" in view.map_caption.text() and view.picture()[1]["projection"] == "tsne"


def test_a_stopped_page_shows_nothing_stale_and_is_made_again_when_shown(window):
    view = page(window, "Atlas")
    layer = next(iter(view.index.layers))
    window.session.set_unit(Unit(layer, 4))
    view._page_jobs["Atlas"].cancel()  # the status bar's Cancel
    assert window.wait_for_jobs(WAIT_MS)
    assert view.picture() is None and view.atlas_caption.text().startswith("Stopped before it was done")
    window.tabs.setCurrentWidget(window.view(ActivationsView))
    window.tabs.setCurrentWidget(view)  # back: made again
    assert window.wait_for_jobs(WAIT_MS)
    assert [u.channel for u in view._atlas.units] == [4] and view.picture() is not None


def test_a_new_set_replaces_the_old_sets_points_and_lists(window, tmp_path):
    view = page(window, "Map")
    view.map.selected.emit([0, 5])
    assert view.selection.count() == 2
    small = tmp_path / "three"
    small.mkdir()
    for image in sample_images()[:3]:
        (small / image.name).write_bytes(image.read_bytes())
    view.open_dataset(str(small))
    assert window.wait_for_jobs(WAIT_MS)
    assert view.index.count == 3 and view.selection.isHidden() and view.selection.count() == 0
    assert sum(len(g.data) for g in view.map.groups) == 3 and view.status.toolTip() == ""
    window.load_model("builtin:tinyvgg", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    view.map.selected.emit([0])  # a drag on the emptied map: nothing to list, no error
    assert view.selection.isHidden()


def test_an_image_of_a_generated_set_opens_by_its_number_and_its_pictures_are_made_again(make_window, tmp_path):
    window = make_window()
    window.load_model("builtin:lenet5", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    window.open_dataset("builtin:digits")
    assert window.wait_for_jobs(WAIT_MS)
    view = page(window, "Map")
    view.map.picked.emit(7)  # a click on a point of the map
    assert window.wait_for_jobs(WAIT_MS)
    image = window.session.image
    assert image.name == "builtin:digits#7" and image in window.session.images
    grey = np.asarray(view.probe.image(7))
    np.testing.assert_array_equal(np.asarray(image.image), np.repeat(grey[..., None], 3, axis=2))
    view = page(window, "Neighbours")
    assert view.neighbours_caption.text().startswith("The image is one of the set's, left out of its own neighbours.")
    assert view._neighbours.picture.report["query_in_set"] == 7 and 7 not in [i for _, i in view._neighbours.tiles]
    window.show_view(ActivationsView)
    window.session.set_layer(next(iter(view.index.layers)))
    assert window.wait_for_jobs(WAIT_MS)
    assert assert_remade(window, tmp_path)["image"]["path"] == "builtin:digits#7"
    window.open_files(["builtin:digits#8"])  # as the app's command line passes it
    assert window.wait_for_jobs(WAIT_MS)
    assert window.session.image.name == "builtin:digits#8" and "builtin:digits#8" not in window.recent


def test_cancel_stops_a_pass_that_index_then_resumes(make_window, qtbot):
    window = make_window()
    window.load_model("builtin:shapes", "cpu")
    assert window.wait_for_jobs(WAIT_MS)
    view = window.view(DatasetView)
    view.batch.setValue(16)  # 1,000 images: 63 batches
    window.open_dataset("builtin:shapes")
    qtbot.waitUntil(lambda: view.progress.maximum() == 1000 and view.progress.value() >= 32, timeout=WAIT_MS)
    view.cancel_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    assert view.status.text() == "Indexing cancelled; Index resumes it." and view.index is None
    assert view.index_button.isEnabled() and not view.cancel_button.isEnabled() and view.progress.isHidden()
    view.index_button.click()
    assert window.wait_for_jobs(WAIT_MS)
    assert view.index is not None and view.index.count == 1000
    resumed = re.search(r"Resumed at image ([\d,]+) of 1,000", view.status.text())
    assert resumed and 32 <= int(resumed[1].replace(",", "")) < 1000, view.status.text()


def test_any_indexed_layer_can_be_the_feature_space(window, tmp_path):
    view = page(window, "Neighbours")
    listed = [view.feature_layer.itemText(i) for i in range(view.feature_layer.count())]
    layer = next(name for name in view.index.layers if name not in view.index.features)  # not pooled by the index
    assert listed == list(dict.fromkeys([*view.index.features, *view.index.layers])) and layer in listed
    view.feature_layer.setCurrentText(layer)
    assert window.wait_for_jobs(WAIT_MS)
    assert view._neighbours.picture.layer == layer and layer in view.index.features
    assert view.index.features[layer].shape == (12, view.index.layers[layer].channels)
    recorded = assert_remade(window, tmp_path)  # the CLI pools the layer the same way
    assert recorded["view"] == "neighbours" and recorded["layer"] == layer
    view = page(window, "Map")  # the same features, no second pass
    assert view._pictures["Map"].layer == layer and "principal components of " + layer in view.map_caption.text()
    made = sorted((tmp_path / "cnnexplorer-cache" / "index").glob("*.npz"))
    assert len(made) == 2, made  # the set's index, and one pass that pooled the layer
