"""``cnnexplorer train`` with the course's transfer-learning flags: --head, --binary, --freeze-base,
--unfreeze-from, --base-lr, --aux-weight and --input-size; bad values are one clear line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.cli import build_parser
from cnnexplorer.cli_train import train_request
from cnnexplorer.core.checkpoints import read_model_file
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.heads import NewHead
from cnnexplorer.core.training.transfer import prepare_model
from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli


def two_classes(root, n: int = 6):
    rng = np.random.default_rng(0)
    for name, level in (("dark", 60), ("light", 190)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(rng.normal(level, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


TINYVGG = ("train", "--model", "builtin:tinyvgg", "--device", "cpu", "--epochs", "1", "--batch-size", "8")


@pytest.mark.parametrize("flags, words", [
    (("--head", "256,relux"), ("cannot read the head spec '256,relux'", "did you mean relu?")),
    (("--freeze-base", "--unfreeze-from", "features.55"), ("no layer 'features.55'", "did you mean features.5")),
    (("--binary",), ("exactly 2 classes", "the data has 6")),
    (("--unfreeze-from", "features.5"), ("unfreeze-from NAME needs freeze-base",)),
    (("--unfreeze-top", "2"), ("unfreeze-top N needs freeze-base",)),
    (("--base-lr", "0"), ("base-lr",)),
    (("--aux-weight", "2"), ("aux-weight",)),
])
def test_bad_transfer_settings_are_one_clear_line(capsys, tmp_path, flags, words):
    code, _, err = run_cli(capsys, *TINYVGG, "--data", "builtin:shapes", "--out", tmp_path / "run.pt", *flags)
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "run.pt").exists()


def test_a_new_binary_head_on_a_frozen_base_at_another_input_size_trains_and_reopens(capsys, tmp_path):
    data, out = two_classes(tmp_path / "data"), tmp_path / "run.pt"
    code, stdout, err = run_cli(capsys, *TINYVGG, "--data", f"folder:{data}", "--out", out, "--json",
                                "--input-size", "3,48,48", "--head", "16,relu", "--binary", "--freeze-base",
                                "--unfreeze-from", "features.5", "--base-lr", "1e-4",
                                "--mean", "0.4,0.4,0.4", "--std", "0.2,0.2,0.2")  # normalised for this data
    assert code == 0 and last_json(stdout)["epochs"] == 1, err
    assert "a new head takes its place: Flatten → Linear 16 → ReLU → Linear 1 → sigmoid" in err
    assert "from features.5 on" in err and "learn at 0.0001" in err
    saved = read_model_file(out)
    assert saved.preprocessing.size == (48, 48)  # tinyvgg's own classifier fits 64 px only; the new head is measured
    assert saved.preprocessing.mean == (0.4, 0.4, 0.4) and saved.preprocessing.std == (0.2, 0.2, 0.2)
    assert saved.extra["head"]["in_features"] == 10 * 9 * 9 and saved.extra["head"]["binary"] is True
    reopened = load_model(str(out), "cpu")
    assert isinstance(reopened.module.flatten, NewHead) and reopened.class_names == ["dark", "light"]


def test_the_courses_vgg16_at_150_px_gets_its_16812353_parameters():
    args = build_parser().parse_args(["train", "--model", "torchvision:vgg16:none", "--device", "cpu",
                                      "--input-size", "3,150,150", "--data", "folder:cats-vs-dogs", "--out", "x.pt",
                                      "--head", "256,relu", "--binary", "--freeze-base"])
    request = train_request(args)
    assert request.model.input_size == (3, 150, 150)
    model = prepare_model(request.model, ["cat", "dog"], head=request.config.head, binary=request.config.binary)
    assert sum(p.numel() for p in model.module.parameters()) == 16_812_353
