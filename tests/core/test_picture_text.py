"""Text in every rendered picture is readable at 100 % zoom: its letters' stems are as tall as the
pictures' smallest size (``picture_style.SMALL``) draws them, measured in the pixels themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cnnexplorer.core.activations import activation_grid, render_activation_picture
from cnnexplorer.core.adversarial import PGD, panel, render_adversarial_panel
from cnnexplorer.core.architecture import summarize
from cnnexplorer.core.builtin.nets import TinyVGG
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, generate_shapes
from cnnexplorer.core.charts import TABLE_TOP, render_predictions_chart, render_summary_table
from cnnexplorer.core.featurevis import render_featurevis_picture
from cnnexplorer.core.filters import filter_view, render_filter_picture
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.picture_style import INK, MIN_CAP_HEIGHT, PAPER, SMALL, pil_font
from cnnexplorer.core.predict import ClassScore
from cnnexplorer.core.training.augment import preview_picture
from cnnexplorer.core.training.curves import History, render_curves


def stem_height(mask: np.ndarray) -> int:
    """The longest vertical run of True in ``mask``: a letter's stem (l, p, d, H, 1) at its text size."""
    run = np.zeros(mask.shape[1], dtype=np.int64)
    best = 0
    for row in mask:
        run = (run + 1) * row
        best = max(best, int(run.max(initial=0)))
    return best


def ink(picture: np.ndarray) -> np.ndarray:
    """Dark grey pixels (text on paper), not the coloured bars, curves or tiles."""
    channels = picture.astype(np.int16)
    return (channels.max(axis=2) < 128) & (np.ptp(channels, axis=2) < 40)


def readable() -> int:
    """The stem height of "lp" at the smallest readable size."""
    image = Image.new("RGB", (60, 40), PAPER)
    ImageDraw.Draw(image).text((4, 4), "lp", font=pil_font(SMALL), fill=INK)
    return stem_height(ink(np.asarray(image)))


def test_readable_size_is_what_the_measure_expects():
    assert readable() > MIN_CAP_HEIGHT, "an ascender is taller than a capital"


def test_summary_table_text_is_readable():
    table = render_summary_table(summarize(TinyVGG(), (3, 64, 64), model_name="builtin:tinyvgg"))
    assert stem_height(ink(table[TABLE_TOP:])) >= readable()


def test_prediction_chart_text_is_readable():
    chart = render_predictions_chart([ClassScore(0, "apple pie", 0.7), ClassScore(1, "golden retriever", 0.2)])
    assert stem_height(ink(chart)) >= readable()


def test_adversarial_captions_are_readable():
    batch = generate_shapes(2, 5)
    model = load_model("builtin:shapes", "cpu").pixel_model()
    result = drive(PGD(steps=2).run(model, batch.images, batch.labels))
    picture = render_adversarial_panel(result, SHAPE_CLASSES)
    captions = picture[-(panel.MARGIN + 6 * panel.LINE):]
    assert stem_height(ink(captions)) >= readable()


def test_training_preview_names_are_readable():
    picture = preview_picture(torch.ones(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]), ["circle", "triangle"])
    assert stem_height(ink(picture)) >= readable()


def test_long_class_names_are_cut_to_their_tile():
    picture = preview_picture(torch.ones(2, 3, 8, 8), torch.tensor([0, 1]), ["a" * 40, "b"], tile=64)
    assert not ink(picture)[:, 4 + 64 + 1:4 + 64 + 4].any(), "no name runs into the next tile"


def test_training_curves_text_is_readable():
    history = History(step=[1, 2, 3], epoch=[0.5, 1, 1.5], time=[0.1, 0.2, 0.3], loss=[2, 1.5, 1],
                      acc=[0.2, 0.4, 0.6], lr=[0.1] * 3, images_per_s=[100] * 3, val_step=[2],
                      val_epoch=[1], val_time=[0.2], val_loss=[1.4], val_acc=[0.5])
    assert stem_height(ink(render_curves(history))) >= readable()


def _grids() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3))
    return {
        "activations": render_activation_picture(activation_grid(torch.rand(1, 12, 8, 8))),
        "filters": render_filter_picture(filter_view(conv, "0")),
        "featurevis": render_featurevis_picture(torch.zeros(12, 3, 16, 16), list(range(12))),
    }


@pytest.mark.parametrize("kind", ["activations", "filters", "featurevis"])
def test_grid_tile_numbers_are_readable(kind):
    picture = _grids()[kind]
    digits = (picture == 255).all(axis=2)
    assert stem_height(digits) >= MIN_CAP_HEIGHT, "the 1 of channels 1, 10 and 11 is a digit tall"
