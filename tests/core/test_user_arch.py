"""The user's own architectures: a Python file's class or a pickled module, opened with trust, trained,
saved and reopened."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from cnnexplorer.core.checkpoints import NeedsTrust, read_model_file
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.models import FileOptions, load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.run import TrainRequest, training_job
from tests.cli.cli_helpers import assert_one_line_error, run_cli
from tests.cli.test_train import make_folder

NET = textwrap.dedent("""
    import torch
    from torch import nn

    HELPER = 3

    class TinyNet(nn.Module):
        input_size = (3, 32, 32)

        def __init__(self, num_classes=5, width=4):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
            self.classifier = nn.Linear(4 * width, num_classes)

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    class FixedHead(nn.Module):
        input_size = (3, 32, 32)

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(2, 7)

        def forward(self, x):
            return self.fc(self.body(x))

    class Broken(nn.Module):
        def __init__(self, depth=2):
            super().__init__()
            raise ValueError(f"depth {depth} is too shallow")
""")

TRUST = FileOptions(trust=True)


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def predictions(handle, images):
    with torch.no_grad(), eval_mode(handle.module):
        return torch.softmax(handle.pixel_model()(images), 1)


def test_a_python_architecture_runs_code_so_it_needs_trust(net_file):
    with pytest.raises(NeedsTrust, match="runs code from a file of yours; pass --trust"):
        load_model(f"{net_file}:TinyNet", "cpu")


def test_a_python_architecture_is_built_with_its_keyword_arguments_and_input_size(net_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handle = load_model('net.py:TinyNet:{"width": 6}', "cpu", TRUST)
    assert handle.spec == f'python:{net_file}:TinyNet:{{"width": 6}}'  # absolute, so a checkpoint finds it anywhere
    assert handle.module.features[0].out_channels == 6 and handle.num_classes == 5 and not handle.trained
    assert handle.input_size == (3, 32, 32) and "TinyNet from" in handle.about


@pytest.mark.parametrize("cls", ["TinyNet", "FixedHead"])
def test_a_python_architecture_trains_saves_and_reopens(net_file, tmp_path, cls):
    """TinyNet takes num_classes; FixedHead does not, so its 7-way Linear is replaced for the data's 2 classes."""
    handle = load_model(f"python:{net_file}:{cls}", "cpu", TRUST)
    out = tmp_path / "run.pt"
    request = TrainRequest(out=out, model=handle, data=f"folder:{make_folder(tmp_path / 'pets', 8)}",
                           config=TrainConfig(epochs=1, batch_size=8))
    result = drive(training_job(request))
    assert read_model_file(out).arch == f"python:{net_file}:{cls}"
    with pytest.raises(NeedsTrust):
        load_model(str(out), "cpu")
    reopened = load_model(str(out), "cpu", TRUST)
    images = torch.rand(3, 3, 32, 32)
    assert reopened.class_names == ["cats", "dogs"]
    torch.testing.assert_close(predictions(reopened, images), predictions(result.handle, images), atol=1e-6, rtol=0)


def test_a_pickled_module_trains_saves_and_reopens(tmp_path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    pickled = tmp_path / "whole.pt"
    torch.save(module, pickled)
    handle = load_model(str(pickled), "cpu", FileOptions(trust=True, input_size=(3, 32, 32)))
    out = tmp_path / "run.pt"
    request = TrainRequest(out=out, model=handle, data=f"folder:{make_folder(tmp_path / 'pets', 8)}",
                           config=TrainConfig(epochs=1, batch_size=8))
    result = drive(training_job(request))
    assert read_model_file(out).arch == f"pickle:{pickled.resolve()}"
    reopened = load_model(str(out), "cpu", TRUST)
    images = torch.rand(2, 3, 32, 32)
    assert reopened.input_size == (3, 32, 32) and reopened.num_classes == 2
    torch.testing.assert_close(predictions(reopened, images), predictions(result.handle, images), atol=1e-6, rtol=0)


@pytest.mark.parametrize("tail, words", [
    ("Missing", ("no nn.Module class named Missing", "it defines Broken, FixedHead, TinyNet")),
    ("HELPER", ("no nn.Module class named HELPER",)),
    ("Broken", ("Broken()", "ValueError: depth 2 is too shallow", "fix the class")),
    ('TinyNet:{"width": 4', ("are not JSON", "JSON object")),
    ("TinyNet:[4]", ("a JSON list, not an object",)),
    ('TinyNet:{"depth": 4}', ("TinyNet(depth=4)", "unexpected keyword argument")),
])
def test_a_bad_python_architecture_is_one_line(net_file, capsys, tail, words):
    code, _, err = run_cli(capsys, "summary", "--model", f"{net_file}:{tail}", "--trust")
    assert_one_line_error(code, err, *words)


def test_a_missing_architecture_file_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "summary", "--model", f"python:{tmp_path / 'gone.py'}:Net", "--trust")
    assert_one_line_error(code, err, "gone.py not found")
    with pytest.raises(UserError, match="does not name a Python file and a class"):
        load_model(f"python:{tmp_path / 'gone.txt'}", "cpu", TRUST)


def test_train_builds_a_new_model_of_the_architecture_arch_names(net_file, tmp_path, capsys):
    data = make_folder(tmp_path / "pets", 8)
    out = tmp_path / "run.pt"
    code, _, err = run_cli(capsys, "train", "--arch", f'{net_file}:TinyNet:{{"width": 3}}', "--data", f"folder:{data}",
                           "--out", out, "--epochs", "1", "--batch-size", "8")
    assert code == 2 and "pass --trust" in err
    code, _, err = run_cli(capsys, "train", "--arch", f'{net_file}:TinyNet:{{"width": 3}}', "--trust", "--data",
                           f"folder:{data}", "--out", out, "--epochs", "1", "--batch-size", "8", "--json")
    assert code == 0, err
    assert read_model_file(out).arch == f'python:{net_file}:TinyNet:{{"width": 3}}'
    assert load_model(str(out), "cpu", TRUST).module.features[0].out_channels == 3
