"""The Activations tab and the tree's sparsity columns, driven through the real window."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QGuiApplication
from torch import nn

from cnnexplorer.cli import main
from cnnexplorer.core.activations import activation_grid, capture, channel_stats
from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.colormaps import colormap_table
from cnnexplorer.core.images import load_image
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.session import Unit
from cnnexplorer.gui.views.activations_view import ActivationsView
from cnnexplorer.gui.widgets.model_dock import COLUMNS
from cnnexplorer.pictures.activations import SPACER
from tests.gui.gui_helpers import shapes_window

WAIT_MS = 30_000



def show_layer(window, layer: str) -> None:
    window.session.set_layer(layer)
    assert window.wait_for_jobs(WAIT_MS)


def viewport_point(canvas, x: float, y: float):
    """Where picture pixel ``(x, y)`` is on the canvas's viewport."""
    scene = canvas.view_box.mapViewToScene(QPointF(x, y))
    return canvas.mapFromScene(scene)


def test_clicking_a_tile_in_the_grid_makes_it_the_current_unit(make_window, qtbot):
    window = shapes_window(make_window)
    view = window.show_view(ActivationsView)
    dock = window.model_dock
    index = dock.proxy.mapFromSource(dock.item("features.4").index())
    qtbot.mouseClick(dock.tree.viewport(), Qt.MouseButton.LeftButton, pos=dock.tree.visualRect(index).center())
    assert window.session.layer == "features.4"
    assert window.wait_for_jobs(WAIT_MS)
    assert view.result is not None and view.result.layer == "features.4"

    layout = view.result.panels[0].layout
    x, y = layout.tile_origin(13)
    centre = viewport_point(view.canvas, x + layout.tile_w / 2, y + layout.tile_h / 2)
    qtbot.mouseMove(view.canvas.viewport(), centre)
    assert view.hover.text().startswith("channel 13 ·")
    qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert window.session.unit == Unit("features.4", 13)
    assert window.wait_for_jobs(WAIT_MS)
    (outline,) = view.highlights
    assert outline.rect().topLeft() == QPointF(x, y)
    heat = view.unit_panel.heat_item.image
    assert heat.shape == (64, 64, 3), "the channel is enlarged to the model's input size"
    assert "channel 13" in view.unit_panel.title.text()

    window.session.set_unit(Unit("features.4", 2))  # chosen elsewhere: the outline follows
    assert view.highlights[0].rect().topLeft() == QPointF(*layout.tile_origin(2))

    wanted, atlases = [], []
    view.visualise_requested.connect(wanted.append)
    view.atlas_requested.connect(atlases.append)
    qtbot.mouseClick(view.canvas.viewport(), Qt.MouseButton.RightButton, pos=centre)
    copy, visualise, atlas = view.context_menu.actions()[:3]
    copy.trigger()
    assert QGuiApplication.clipboard().text() == "13"
    visualise.trigger()
    atlas.trigger()
    assert wanted == atlases == [Unit("features.4", 13)]
    view.context_menu.close()


def test_switching_layer_for_the_same_image_does_not_rerun_the_model(make_window):
    window = shapes_window(make_window)
    view = window.show_view(ActivationsView)
    cache = window.session.activations
    assert cache.forward_passes == 1, "the tree's sparsity pass fills the shared cache"
    runs = []
    counter = window.session.model.module.register_forward_pre_hook(lambda *_: runs.append(1))
    try:
        for layer in ("features.4", "features.0.2", "features.7.relu1", "classifier"):
            show_layer(window, layer)
            assert view.result.layer == layer
    finally:
        counter.remove()
    assert runs == [] and cache.forward_passes == 1
    grid = view.result.panels[0].grid
    assert grid.units and grid.shape == (6, 1, 1), "a Linear layer is shown as units"


def test_tree_shows_each_layers_zero_fraction_and_dead_channels(make_window):
    window = shapes_window(make_window)
    dock, handle, image = window.model_dock, window.session.model, window.session.image
    pixels = handle.pixels(image)
    for name in ("features.0.0", "features.2.2", "features.7.relu1"):
        stats = channel_stats(capture(handle, pixels, [name]).output(name))
        zeros, dead = dock.sparsity_cells(name)
        assert zeros.text() == f"{100 * stats.layer_zero_fraction:.0f} %"
        signed = stats.min.min() < 0
        assert dead.text() == ("–" if signed else f"{stats.dead_count}/{stats.max.size}")
    assert dock.sparsity["features.0.0"].zero_fraction == 0.0, "a convolution's output is not sparse"
    assert dock.sparsity_cells("features.0.0")[1].text() == "–", "no dead channels where values can be negative"
    assert dock.sparsity["features.7.relu1"].zero_fraction > 0.3
    assert COLUMNS.index("Zeros") < COLUMNS.index("Params"), "next to the output, visible without scrolling"


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_export_writes_the_same_pixels_and_settings_as_the_cli(make_window, tmp_path):
    sample = sample_images()[1]
    window = shapes_window(make_window, [sample])
    view = window.show_view(ActivationsView)
    show_layer(window, "features.5.2")
    view.controls.norm_box.setCurrentIndex(view.controls.norm_box.findData("layer"))
    view.controls.sort_box.setCurrentIndex(view.controls.sort_box.findData("mean"))
    view.controls.dead_box.setChecked(True)
    assert window.wait_for_jobs(WAIT_MS)
    grid_bottom = max(panel.layout.shape[0] for panel in view.result.panels)
    strip = view.result.pixels[grid_bottom:]
    assert strip.shape[0] > 40 and (strip.std(axis=1) > 20).any(), "the picture carries its colour bar below the grid"
    gui_png, gui_sidecar = window.export_current_view(tmp_path / "gui.png")
    cli_png = tmp_path / "cli.png"
    assert main(["export", "activations", "--model", "builtin:shapes", "--device", "cpu", "--image", str(sample),
                 "--layer", "features.5.2", "--norm", "layer", "--sort", "mean", "--hide-dead",
                 "--out", str(cli_png)]) == 0
    np.testing.assert_array_equal(read_png(gui_png), read_png(cli_png))
    gui, cli = (json.loads(p.read_text())["settings"] for p in (gui_sidecar, tmp_path / "cli.png.json"))
    assert {k: gui[k] for k in cli} == cli
    assert gui["output_index"] == 0


def test_difference_of_an_image_with_itself_is_the_middle_colour(make_window, tmp_path):
    pixels = np.asarray(Image.open(sample_images()[2]).convert("RGB"))
    png, bmp = tmp_path / "same.png", tmp_path / "same.bmp"
    Image.fromarray(pixels).save(png)
    Image.fromarray(pixels).save(bmp)
    window = shapes_window(make_window, [png, bmp])
    view = window.show_view(ActivationsView)
    show_layer(window, "features.2.0")
    single_width = view.result.panels[0].width
    view.controls.compare_box.setCurrentIndex(view.controls.compare_box.findText("same.png"))
    assert window.wait_for_jobs(WAIT_MS)
    assert [p.name for p in view.result.panels] == ["same.bmp", "same.png"]
    assert [(p.left, p.width) for p in view.result.panels] == [(0, single_width), (single_width + SPACER, single_width)]

    view.controls.difference_box.setChecked(True)
    assert window.wait_for_jobs(WAIT_MS)
    (panel,) = view.result.panels
    assert panel.grid.cmap == "diverging"
    assert np.nanmax(np.abs(panel.grid.values - 0.5)) == 0
    middle = colormap_table("diverging")[128]
    for channel in range(panel.grid.shape[0]):
        x, y = panel.layout.tile_origin(channel)
        centre = view.result.pixels[y + panel.layout.tile_h // 2 + 2, x + panel.layout.tile_w // 2]
        assert centre.tolist() == middle.tolist()
    settings = view.picture()[1]
    assert settings["compare"]["difference"] is True and settings["compare"]["image"] == str(png)


class Poison(nn.Module):
    """Puts NaN into the first row of every channel."""

    def forward(self, x):
        x = x.clone()
        x[:, :, 0] = float("nan")
        return x


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.poison = Poison()
        self.unused = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.nan_to_num(self.poison(self.conv(x)))
        return self.head(x.mean((2, 3)))


def test_messages_for_missing_layer_unused_branch_and_nan_values(make_window, image_file):
    window = make_window()
    view = window.show_view(ActivationsView)
    handle = ModelHandle("tiny", Tiny().eval(), torch.device("cpu"),
                         Preprocessing(3, (8, 8), (0.5,) * 3, (0.5,) * 3), ["a", "b", "c"], "none", False)
    window.session.set_model(handle, summarize_handle(handle))
    window.open_files([str(image_file)])
    assert window.wait_for_jobs(WAIT_MS)
    assert "Select a layer in the Model tree" in view.message.text()

    show_layer(window, "unused")
    assert "'unused' produced no output" in view.message.text() and view.picture() is None

    show_layer(window, "poison")
    assert "8 NaN value(s) shown in magenta" not in view.message.text()
    assert "32 NaN value(s) shown in magenta" in view.message.text()
    assert view.picture() is not None

    show_layer(window, "head")
    assert view.result.panels[0].grid.units, "a model's Linear layer still shows, as units"
    assert window.messages == []
    expected = activation_grid(capture(handle, handle.pixels(load_image(image_file)),
                                       ["head"]).output("head"))
    np.testing.assert_array_equal(view.result.panels[0].grid.values, expected.values)


def test_the_class_scores_are_named_as_classes_not_channels(make_window):
    window = shapes_window(make_window)
    view = window.show_view(ActivationsView)
    show_layer(window, "classifier")
    assert "the class scores, 6 classes" in view.message.text() and "dead" not in view.message.text()
    window.session.set_unit(Unit("classifier", 3))
    assert window.wait_for_jobs(WAIT_MS)
    assert "class 3: star" in view.unit_panel.title.text() and "class 3: star" in view.unit_panel.details.text()
    show_layer(window, "features.2.0")
    window.session.set_unit(Unit("features.2.0", 3))
    assert window.wait_for_jobs(WAIT_MS)
    assert "channel 3" in view.unit_panel.title.text() and "dead" in view.message.text()


def test_the_caption_says_the_normalisation_chosen_and_the_readout_never_outlives_its_picture(make_window, tmp_path):
    window = shapes_window(make_window, sample_images()[:2])
    view = window.show_view(ActivationsView)
    show_layer(window, "features.2.0")
    view.hover.setText("channel 5 · min 0 · max 1")  # as a hover over the grid would
    view.controls.norm_box.setCurrentIndex(view.controls.norm_box.findData("layer"))
    view.controls.compare_box.setCurrentIndex(1)
    assert window.wait_for_jobs(WAIT_MS) and view.result.options.compare is not None
    assert "one range for the layer, shared by both images" in view.message.text()
    assert "fixed range" not in view.message.text()
    assert view.hover.text().strip() == ""
