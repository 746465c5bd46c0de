"""Models with auxiliary classifiers train as their authors trained them: main loss + 0.3 × each auxiliary one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.aux_outputs import split_outputs, training_loss
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.run import TrainRequest, training_job
from tests.cli.test_train import make_folder

# torchvision's plain GoogLeNet builder warns that its default initialisation will change
pytestmark = pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet:FutureWarning")


@pytest.fixture(scope="module")
def googlenet():
    torch.manual_seed(0)
    return load_model("torchvision:googlenet:none", "cpu").module


@pytest.mark.parametrize("weight", [0.3, 0.0, 1.0])
def test_the_loss_adds_each_auxiliary_head_at_its_weight(googlenet, weight):
    images, labels = torch.rand(2, 3, 96, 96), torch.tensor([3, 7])
    googlenet.train()
    torch.manual_seed(1)
    outputs = googlenet(images)
    assert len(outputs) == 3  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
    loss, logits = training_loss(outputs, labels, weight)
    ce = nn.functional.cross_entropy
    expected = ce(outputs.logits, labels) + weight * (ce(outputs.aux_logits1, labels) + ce(outputs.aux_logits2, labels))
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert logits is outputs.logits


def test_a_plain_tensor_and_a_bad_output():
    logits = torch.randn(4, 3)
    assert split_outputs(logits) == (logits, [])
    with pytest.raises(TypeError, match="returned a dict"):
        split_outputs({"out": logits})


def test_googlenet_with_auxiliary_heads_trains_and_reopens(tmp_path):
    """Untrained torchvision GoogLeNet keeps its two auxiliary heads, and training mode returns all three."""
    torch.manual_seed(0)
    handle = load_model("torchvision:googlenet:none", "cpu")
    assert handle.module.aux_logits
    out = tmp_path / "g.pt"
    request = TrainRequest(out=out, model=handle, data=f"folder:{make_folder(tmp_path / 'pets', 4)}",
                           config=TrainConfig(epochs=1, batch_size=4, snapshots=False))
    result = drive(training_job(request))
    assert result.epochs_done == 1 and result.stopped is None
    reopened = load_model(str(out), "cpu")
    assert reopened.class_names == ["cats", "dogs"]
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        expected = result.handle.pixel_model().eval()(images)
        torch.testing.assert_close(reopened.pixel_model().eval()(images), expected, atol=1e-5, rtol=0)
