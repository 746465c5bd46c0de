"""The layer table as text to paste: tab-separated for a spreadsheet, Markdown for a report."""

from __future__ import annotations

import dataclasses

import pytest

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.layer_text import TABLE_COLUMNS, summary_table_text
from cnnexplorer.core.models import load_model


@pytest.fixture(scope="module")
def summary():
    return summarize_handle(load_model("builtin:lenet5", "cpu"))


def test_tab_separated_rows_have_every_column_and_the_totals(summary):
    lines = summary_table_text(summary, "tsv").splitlines()
    layers = [l for l in summary.layers if l.name]
    assert lines[0].split("\t") == list(TABLE_COLUMNS)
    rows = [line.split("\t") for line in lines[1:1 + len(layers)]]
    assert all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert [row[0] for row in rows] == [l.name for l in layers]  # dotted names: unique in a spreadsheet
    conv = next(row for row in rows if row[1] == "Conv2d")
    assert conv[3] == f"{next(l for l in layers if l.type == 'Conv2d').params:,}" and "/" in conv[6]
    assert lines[-1].startswith("Total: ") and "parameters" in lines[-1]


def test_markdown_is_a_table_with_right_aligned_numbers(summary):
    lines = summary_table_text(summary, "markdown").splitlines()
    assert lines[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert lines[1] == "|---|---|---|---:|---:|---|---:|---:|"
    body = [line for line in lines[2:] if line.startswith("|")]
    assert len(body) == sum(1 for l in summary.layers if l.name)
    assert all(line.count(" | ") == len(TABLE_COLUMNS) - 1 for line in body)
    with pytest.raises(ValueError):
        summary_table_text(summary, "csv")


def test_totals_split_conv_and_fully_connected_and_the_floored_mark(summary):
    from cnnexplorer.core.layer_text import FLOORED_MARK, floored_mark, floored_tip, split_text, summary_totals

    assert summary_totals(summary) == ("61,706 parameters (conv 50.7 k, fully connected 11 k; 61,706 trainable, "
                                       "0 frozen) · 417 k MACs (conv 406 k, fully connected 10.9 k) at 1×32×32")
    assert split_text(summary) == "conv 50.7 k params, 406 k MACs; fully connected 11 k params, 10.9 k MACs"
    conv = summary.layer("features.0")
    assert floored_mark(conv) == "" and floored_tip(conv) == ""
    floored = dataclasses.replace(conv, floored=True, floor_note="output size (10 − 3 + 2·0)/2 + 1 = 4.5 is not whole")
    assert floored_mark(floored) == FLOORED_MARK and "4.5" in floored_tip(floored) and "not possible" in floored_tip(floored)
