"""``cnnexplorer export concepts``: the ranked channels in the JSON, the same as the core's, and the
picture made again from its sidecar."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.attribution.concepts import concepts_job
from cnnexplorer.core.images import load_image
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.gui.window_jobs import sample_images
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli


def test_export_concepts_reports_the_core_ranking_and_round_trips(capsys, tmp_path):
    image = sample_images()[0]
    out = tmp_path / "concepts.png"
    code, stdout, _ = run_cli(capsys, "export", "concepts", "--model", "builtin:shapes", "--image", image,
                              "--layer", "features.7", "--top", "3", "--composite", "alpha2-beta1", "--target", "square",
                              "--out", out, "--json")
    assert code == 0
    report = last_json(stdout)
    handle = load_model("builtin:shapes", "cpu")
    found = drive(concepts_job(handle, handle.pixels(load_image(image)), "features.7", 1, 3, "alpha2-beta1"))
    assert report["layer"] == "features.7" and report["target"] == {"index": 1, "label": "square"}
    assert [c["channel"] for c in report["concepts"]] == [c.channel for c in found.concepts]
    for ours, core in zip(report["concepts"], found.concepts):
        assert ours["relevance"] == pytest.approx(core.relevance, rel=1e-4)
        assert ours["share"] == pytest.approx(core.share, rel=1e-4)
    assert report["logit"] == pytest.approx(found.heatmap.info["logit"], rel=1e-5)
    again = tmp_path / "again.png"
    code, stdout, _ = run_cli(capsys, "export", "--from-sidecar", f"{out}.json", "--out", again, "--json")
    assert code == 0 and last_json(stdout)["concepts"] == report["concepts"]
    np.testing.assert_array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))


def test_export_concepts_needs_a_layer(capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", "concepts", "--model", "builtin:shapes", "--image", sample_images()[0],
                           "--out", tmp_path / "c.png")
    assert_one_line_error(code, err, "needs a layer")
