"""The Lab tab: the course's numbers come out on each page, and the pages follow the session."""

from __future__ import annotations

import numpy as np
import pytest

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.hooks import find_layer
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import drive as drive_job
from cnnexplorer.core.models import load_model
from cnnexplorer.gui.session import Session, Unit
from cnnexplorer.gui.views.lab_view import LabView
from cnnexplorer.gui.window_jobs import sample_images
from cnnexplorer.gui.workers import JobRunner

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def shapes():
    handle = load_model("builtin:shapes", "cpu")
    return handle, summarize_handle(handle), load_image(sample_images()[0])


@pytest.fixture
def lab(qtbot, shapes):
    session = Session()
    jobs = JobRunner()
    view = LabView(session, jobs)
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    handle, summary, image = shapes
    session.set_model(handle, summary)
    session.add_images([image])
    yield view
    jobs.shutdown()


def test_arithmetic_flags_the_courses_impossible_size_and_gives_same_padding(lab):
    page = lab.arithmetic
    lab.show_page(page)
    for box, value in ((page.size, 10), (page.kernel, 3), (page.stride, 2), (page.padding, 0), (page.filters, 4),
                       (page.depth, 3)):
        box.setValue(value)
    text = page.result.text()
    assert "(10 − 3 + 2·0)/2 + 1 = 4.5: not possible" in text and "PyTorch's output: <b>4×4×4</b>" in text
    assert "<b>112</b>" in text  # 4 × (3·3·3 + 1) parameters
    page.stride.setValue(1)
    page.same.click()
    assert page.padding.value() == 1 and "= 10: a whole number" in page.result.text()
    page.kernel.setValue(4)
    page.same.click()
    assert page.padding.value() == 1 and "no \"same\" padding" in page.result.text()
    page.mode.setCurrentText("Pooling")
    for box, value in ((page.size, 5), (page.kernel, 2), (page.stride, 2), (page.padding, 0)):
        box.setValue(value)
    assert "PyTorch's output: <b>2×2</b>" in page.result.text()
    page.ceil_mode.setChecked(True)
    assert "PyTorch's output: <b>3×3</b> (ceil_mode)" in page.result.text()


def test_transposed_convolution_as_the_course_draws_it(lab):
    page = lab.arithmetic
    page.mode.setCurrentText("Transposed convolution")
    for size, padding, course in ((5, 0, 3), (5, 1, 5), (3, 2, 5)):  # a 3×3 kernel; the last is the upsampling case
        for box, value in ((page.size, size), (page.kernel, 3), (page.stride, 1), (page.padding, padding)):
            box.setValue(value)
        assert f"convolved at stride 1: <b>{course}×{course}</b>" in page.result.text()


def test_the_stepper_takes_the_fields(lab):
    page = lab.arithmetic
    for box, value in ((page.size, 4), (page.kernel, 3), (page.stride, 1), (page.padding, 0)):
        box.setValue(value)
    page.from_fields.click()
    assert page.stepper.output.shape == (2, 2)
    page.stepper.advance()
    assert page.stepper.formula.text().endswith("= 54")  # 1+2+3+5+6+7+9+10+11
    page.size.setValue(20)
    page.from_fields.click()
    assert "up to 9×9" in page.stepper.formula.text()


def test_the_courses_worked_kernel_examples_come_out(lab):
    lab.show_page(lab.kernels)
    lab.kernels.show_mode(1)
    matrix = lab.kernels.on_matrix
    for example, value in (("sharpen", "320"), ("curve", "6600")):
        matrix.load_example(example)
        assert matrix.explanation.text().endswith(f"= {value}</p>")
        assert matrix.response.item(0, 0).text() == value


def test_a_typed_kernel_on_the_image_and_a_clicked_pixel_explained(lab):
    lab.show_page(lab.kernels)
    page = lab.kernels.on_image
    page.chooser.typed.setText("0 0 0; 0 1 0; 0 0 0")  # the identity: the response is the grey image
    np.testing.assert_allclose(page.response, page.grey, atol=1e-3)
    explained = page.explain(5, 7)
    assert explained.total == pytest.approx(page.response[5, 7], abs=1e-3)
    page.chooser.typed.setText("1 2; 3")
    assert "different lengths" in page.caption.text()


def test_a_conv_units_pixel_traced_to_its_receptive_field_and_input_channels(lab, shapes):
    handle = shapes[0]
    lab.show_page(lab.kernels)
    lab.kernels.show_mode(2)
    page = lab.kernels.on_layer
    assert "Select a convolution layer" in page.message.text()
    lab.session.set_unit(Unit("features.2.0", 3))
    assert lab.jobs.wait(WAIT_MS)
    assert "features.2.0, channel 3" in page.message.text()
    page.show_pixel(4, 5)
    assert page.box.isVisible() and "the input channels that raised it most" in page.details.text()
    assert page.marker.isVisible() and page.marker.rect().topLeft().toTuple() == (5, 4)
    rect = page.box.rect()
    assert 1 < rect.width() <= 64 and 1 < rect.height() <= 64
    from cnnexplorer.core.lab.kernels import top_input_channels

    conv = find_layer(handle.module, "features.2.0")
    _, _, channel, layer_input, values = page.recorded
    every = top_input_channels(conv, layer_input, channel, 4, 5, count=conv.in_channels)
    total = sum(value for _, value in every) + (0.0 if conv.bias is None else float(conv.bias[channel]))
    assert total == pytest.approx(float(values[4, 5]), abs=1e-4)  # the recorded input made the recorded map


def test_tradeoffs_show_the_courses_numbers_and_follow_c(lab):
    page = lab.tradeoffs
    lab.show_page(page)
    assert "45 % fewer" in page.result.text() and "200,768" in page.result.text()
    page.boxes["channels"].setValue(128)
    assert f"{128 * (49 * 128 + 1):,}" in page.result.text()
    page.list.setCurrentRow(3)  # depthwise-separable
    assert "19,200" in page.result.text() and "843" in page.result.text()
    page.list.setCurrentRow(1)
    page.boxes["channels"].setValue(7)  # the bottleneck halves C
    assert "must be even" in page.result.text()


def test_batch_norm_plots_gamma_beta_and_running_statistics(lab, shapes):
    page = lab.batchnorm
    lab.show_page(page)
    assert "7 BatchNorm layers" in page.message.text() and 'href="features.0.1"' in page.message.text()
    page.message.linkActivated.emit("features.0.1")
    assert lab.session.layer == "features.0.1"
    module = find_layer(shapes[0].module, "features.0.1")
    for key, plot in page.plots.items():
        (bars,) = plot.getPlotItem().items
        tensor = getattr(module, {"gamma": "weight", "beta": "bias"}.get(key, key))
        np.testing.assert_allclose(bars.opts["height"], tensor.detach().numpy(), atol=1e-6)
    assert "24 channels" in page.message.text()
    lab.session.set_layer("features.0.0")
    assert page.plot_area.isHidden() and "features.0.0 is no BatchNorm layer" in page.message.text()


def test_tradeoffs_link_to_the_models_blocks(lab):
    page = lab.tradeoffs
    lab.show_page(page)
    assert lab.jobs.wait(WAIT_MS)
    assert 'href="features.4.conv1"' in page.blocks.text()  # the shapes net's residual block: two 3×3 in a row
    page.blocks.linkActivated.emit("features.4.conv1")
    assert lab.session.layer == "features.4.conv1"
    page.list.setCurrentRow(3)
    assert "has no such block" in page.blocks.text()


def test_all_layers_on_one_page_and_a_click_selects_a_layer(lab, shapes):
    from cnnexplorer.pictures.layers import HEADER, LayersOptions, layers_picture
    from cnnexplorer.pictures.base import Inputs

    page = lab.layers
    lab.show_page(page)
    assert lab.jobs.wait(WAIT_MS)
    expected, rows = drive_job(layers_picture(Inputs(shapes[0], lab.session.image), LayersOptions()))
    assert np.array_equal(page.pixels, expected) and lab.view_name == "layers"  # what Export writes
    pixels, settings = lab.picture()
    assert pixels is page.pixels and settings["scale"] == "sigma2" and settings["per_row"] == 16
    assert page.export_button.isEnabled() and f"{len(rows)} layers" in page.caption.text()
    page._on_click(rows[2].top + 1.0)  # a tile of the third layer
    assert lab.session.layer == rows[2].layer.split("#")[0]
    assert page.row_at(rows[0].top - HEADER) == rows[0] and page.row_at(0) is None
    job = page._job
    lab.session.set_layer(rows[4].layer)
    assert page._job is job  # another layer: the same picture, nothing recomputed
    page.scale.setCurrentIndex(page.scale.findData("layer"))
    assert lab.jobs.wait(WAIT_MS) and lab.picture()[1]["scale"] == "layer"


def test_a_conv_map_is_recorded_before_an_in_place_relu_changes_it(qtbot):
    import torch
    from torch import nn

    from cnnexplorer.core.model_handle import ModelHandle, Preprocessing

    torch.manual_seed(0)
    torch_module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, 2)).eval()
    handle = ModelHandle("inplace", torch_module, torch_module[0].weight.device,
                         Preprocessing(3, (16, 16), (0.5,) * 3, (0.5,) * 3), ["a", "b"], "none", False)
    session, jobs = Session(), JobRunner()
    view = LabView(session, jobs)
    qtbot.addWidget(view)
    view.show()
    session.set_model(handle, summarize_handle(handle))
    session.add_images([load_image(sample_images()[0])])
    view.show_page(view.kernels)
    view.kernels.show_mode(2)
    session.set_layer("0")
    assert jobs.wait(WAIT_MS)
    values = view.kernels.on_layer.recorded[4]
    assert values.min() < 0  # the conv's own output, not the ReLU's
    jobs.shutdown()


def test_the_arithmetic_fields_come_from_the_trees_layer(lab):
    page = lab.arithmetic
    lab.show_page(page)
    assert not page.from_layer.isEnabled()  # no layer selected
    lab.session.set_layer("features.0.2")  # a ReLU
    page.from_layer.click()
    assert "Select a Conv2d" in page.result.text()
    lab.session.set_layer("features.2.0")  # Conv2d(24 → 48, 3×3, padding 1) on 24×32×32
    page.from_layer.click()
    assert lab.jobs.wait(WAIT_MS)
    fields = [box.value() for box in (page.size, page.kernel, page.padding, page.stride, page.filters, page.depth)]
    assert fields == [32, 3, 1, 1, 48, 24] and page.mode.currentText() == "Convolution"
    assert "features.2.0 (Conv2d) of builtin:shapes, its input 24×32×32" in page.result.text()
    assert f"<b>{48 * (3 * 3 * 24 + 1):,}</b>" in page.result.text()
    lab.session.set_layer("features.1")  # MaxPool2d(2) on 24×64×64
    page.from_layer.click()
    assert lab.jobs.wait(WAIT_MS)
    assert (page.mode.currentText(), page.size.value(), page.kernel.value(), page.stride.value()) == \
        ("Pooling", 64, 2, 2) and "PyTorch's output: <b>32×32</b>" in page.result.text()
