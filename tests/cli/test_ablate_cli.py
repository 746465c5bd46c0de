"""``--ablate`` on predict and export: the command runs on the edited model, says so, and the
sidecar records the edits so ``export --from-sidecar`` makes the edited picture again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.builtin.shapes_data import validation_set
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli


@pytest.fixture
def shape_png(tmp_path):
    pixels = (validation_set(1).images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "shape.png")
    return tmp_path / "shape.png"


def test_predict_runs_on_the_edited_model_and_says_so(capsys, shape_png):
    _, out, _ = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--top", "1", "--json")
    plain = last_json(out)
    code, out, _ = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--top", "1", "--json",
                           "--ablate", "features.7.conv2:0-95", "--ablate", "features.5.0:3*0.5")
    edited = last_json(out)
    assert code == 0 and plain["interventions"] == []
    assert [e["layer"] for e in edited["interventions"]] == ["features.7.conv2", "features.5.0"]
    assert edited["results"][0]["top"][0]["prob"] != plain["results"][0]["top"][0]["prob"]
    _, text, _ = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--ablate", "features.5.0:keep=1")
    assert text.startswith("edited: features.5.0: only 1 kept")
    code, out, _ = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--json",
                           "--ablate", "features.5.0:1,2=mean", "--ablate-data", shape_png.parent)
    assert code == 0 and len(last_json(out)["interventions"][0]["values"]) == 2


def test_bad_edits_are_one_line(capsys, shape_png):
    code, _, err = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--ablate", "features.5.0:96")
    assert_one_line_error(code, err, "layer features.5.0 has channels 0-95", "96")
    code, _, err = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--ablate", "features.5.0:a")
    assert_one_line_error(code, err, "'a' is not a channel number")
    code, _, err = run_cli(capsys, "predict", "--model", "builtin:shapes", shape_png, "--ablate", "features.5.0:1=mean")
    assert_one_line_error(code, err, "--ablate-data")


def test_the_sidecar_reproduces_the_edited_picture(capsys, shape_png, tmp_path):
    common = ["--model", "builtin:shapes", "--image", shape_png, "--layer", "features.5.0"]
    run_cli(capsys, "export", "activations", *common, "--out", tmp_path / "plain.png")
    code, out, _ = run_cli(capsys, "export", "activations", *common, "--out", tmp_path / "edited.png", "--json",
                           "--ablate", "features.2.0:0-40", "--ablate", "features.5.0:5*3")
    assert code == 0 and len(last_json(out)["interventions"]) == 2
    recorded = json.loads((tmp_path / "edited.png.json").read_text())["interventions"]
    assert recorded[1] == {"layer": "features.5.0", "channels": [5], "mode": "scale", "factor": 3.0}
    code, _, _ = run_cli(capsys, "export", "--from-sidecar", tmp_path / "edited.png.json", "--out", tmp_path / "again.png")
    assert code == 0
    again, edited = (np.asarray(Image.open(tmp_path / name)) for name in ("again.png", "edited.png"))
    assert np.array_equal(again, edited)
    assert not np.array_equal(edited, np.asarray(Image.open(tmp_path / "plain.png")))
