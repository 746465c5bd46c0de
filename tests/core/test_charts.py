"""The table and bar-chart pictures: layout follows the content, and the same input gives the same pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import ImageFont
from torch import nn

from cnnexplorer.core.architecture import summarize
from cnnexplorer.core.builtin.nets import TinyVGG
from cnnexplorer.core.charts import BAR, FONT_SIZE, ROW_HEIGHT, render_predictions_chart, render_summary_table
from cnnexplorer.core.predict import ClassScore


@pytest.fixture(scope="module")
def tinyvgg():
    return summarize(TinyVGG(), (3, 64, 64), model_name="builtin:tinyvgg")


def test_table_is_an_rgb_image_and_deterministic(tinyvgg):
    first, second = render_summary_table(tinyvgg), render_summary_table(tinyvgg)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert np.array_equal(first, second)
    assert first.mean() > 200  # light background, dark text


def test_table_height_grows_with_the_rows(tinyvgg):
    shallow, deep = render_summary_table(tinyvgg, max_depth=1), render_summary_table(tinyvgg)
    extra_rows = sum(1 for layer in tinyvgg.layers if layer.depth > 1)
    assert extra_rows == 10
    assert deep.shape[0] - shallow.shape[0] == extra_rows * ROW_HEIGHT


def test_table_width_fits_the_longest_name():
    def table(name):
        model = nn.Sequential()
        model.add_module(name, nn.Conv2d(3, 4, 3))
        return render_summary_table(summarize(model, (3, 8, 8)))

    names = "layer_" + "x" * 20, "layer_" + "x" * 50
    short, long = map(table, names)
    font = ImageFont.load_default(size=FONT_SIZE)
    grown = font.getlength(names[1]) - font.getlength(names[0])
    assert abs(long.shape[1] - short.shape[1] - grown) <= 2
    assert short.shape[0] == long.shape[0]


def test_a_row_shows_its_layer(tinyvgg):
    """Changing one layer's figures (to narrower text: same column widths) changes that row's band only."""
    index = next(i for i, layer in enumerate(tinyvgg.layers) if layer.name == "features.2")
    changed = dataclasses.replace(tinyvgg.layers[index], params=1, type="X")
    altered = dataclasses.replace(tinyvgg, layers=[*tinyvgg.layers[:index], changed, *tinyvgg.layers[index + 1:]])
    before, after = render_summary_table(tinyvgg), render_summary_table(altered)
    rows = np.nonzero((before != after).any(axis=(1, 2)))[0]
    assert rows.size > 0
    assert rows.max() - rows.min() < ROW_HEIGHT
    # the band holds text in the layer column too: dark pixels near the left edge
    band = before[rows.min():rows.max() + 1, :200]
    assert (band.max(axis=2) < 100).sum() > 20


def bar_lengths(chart):
    is_bar = (chart == np.array(BAR, dtype=np.uint8)).all(axis=2)
    bar_rows = np.nonzero(is_bar.any(axis=1))[0]
    if bar_rows.size == 0:
        return []
    bands = np.split(bar_rows, np.nonzero(np.diff(bar_rows) > 1)[0] + 1)
    return [int(is_bar[band[len(band) // 2]].sum()) for band in bands]


def test_bar_length_is_proportional_to_probability():
    chart = render_predictions_chart([ClassScore(0, "cat", 1.0), ClassScore(1, "dog", 0.5),
                                      ClassScore(2, "bird", 0.25)], title="image.png")
    full, half, quarter = bar_lengths(chart)
    assert abs(full - 2 * half) <= 2 and abs(full - 4 * quarter) <= 2
    assert chart.dtype == np.uint8 and chart.shape[2] == 3


def test_chart_is_deterministic_and_handles_no_scores():
    scores = [ClassScore(3, "tabby, tabby cat", 0.71), ClassScore(5, "tiger cat", 0.12)]
    assert np.array_equal(render_predictions_chart(scores, "a"), render_predictions_chart(scores, "a"))
    assert not np.array_equal(render_predictions_chart(scores, "a"), render_predictions_chart(scores[:1], "a"))
    empty = render_predictions_chart([], title="nothing")
    assert empty.dtype == np.uint8 and empty.shape[0] > 0 and bar_lengths(empty) == []
