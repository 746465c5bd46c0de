"""What only a CUDA GPU can check: ``make test-gpu`` on a machine with one.

CI has no GPU, so these live outside ``tests/`` (``make test`` does not collect them), and they
fail, rather than skip, where CUDA is missing. Each one runs a feature on the GPU and checks
what it must do there: mixed precision and channels-last while training, the hint after a real
out-of-memory error, and the views' computations giving the CPU's answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
from cnnexplorer.core.adversarial import PGD
from cnnexplorer.core.attribution import compute_heatmap
from cnnexplorer.core.builtin.shapes_data import generate_shapes
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import Settings, render_units, run_to
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import DataSource, open_data
from cnnexplorer.core.training.loop import train
from cnnexplorer.core.training.state import read_resume
from cnnexplorer.core.training.transfer import prepare_model


@pytest.fixture(scope="session", autouse=True)
def cuda():
    assert torch.cuda.is_available(), "make test-gpu needs a CUDA GPU; on a machine without one, run make test"


def test_auto_precision_trains_in_fp16_channels_last_with_loss_scaling(tmp_path):
    handle = load_model("builtin:lenet5", "cuda")
    data = open_data("builtin:shapes", handle.input_size, shapes_epoch=2048, shapes_validation=512)
    handle = prepare_model(handle, data.class_names)
    seen = []
    conv = next(m for m in handle.module.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, args, out: seen.append(  # copied along with the trainer's copy
        (out.dtype, out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())))
    result = drive(train(handle, data, TrainConfig(epochs=3, batch_size=128, snapshots=False),
                         arch="builtin:lenet5", out=tmp_path / "run.pt"))
    assert set(seen) == {(torch.float16, True)}
    loss = result.history.val_loss
    assert loss[2] < loss[0], "the run did not learn"
    parameters = list(result.handle.module.parameters())
    assert all(p.is_cuda and p.dtype == torch.float32 and p.is_contiguous() for p in parameters)
    assert read_resume(tmp_path / "run.pt")[0]["scaler"]["scale"] > 1


def test_a_real_out_of_memory_suggests_half_the_batch_and_gives_the_memory_back():
    handle = prepare_model(load_model("torchvision:resnet50:none", "cuda"), ["a", "b"])
    batch = 8192  # resnet50's activations at 224 px: several hundred GB
    images, labels = torch.rand(batch, 3, 224, 224), torch.arange(batch) % 2
    data = DataSource("huge", ["a", "b"], batch, batch, lambda *_: iter([(images, labels)]),
                      lambda _: iter([(images, labels)]))
    free_before = torch.cuda.mem_get_info()[0]
    with pytest.raises(UserError, match=rf"batch of {batch} images does not fit in cuda.*--batch-size {batch // 2}"):
        drive(train(handle, data, TrainConfig(epochs=1, batch_size=batch, snapshots=False),
                    arch="torchvision:resnet50"))
    assert torch.cuda.mem_get_info()[0] > free_before - 2**30


def test_feature_visualisation_on_the_gpu_finds_what_it_finds_on_the_cpu():
    """As tests/core/test_featurevis_quality.py, on the GPU: each image drives its channel of the
    trained shapes net's features.2 ten times above its mean on noise (CPU: 11× to 58×)."""
    handle = load_model("builtin:shapes", "cuda")
    channels = [0, 1, 2, 3, 5, 6]  # 4 and 7 stay at 0 from a grey start, on any device
    result = drive(render_units(handle, "features.2", channels, settings=Settings(size=64, steps=48), seed=0))
    assert result.images.shape == (6, 3, 64, 64)
    noise = torch.rand(32, 3, 64, 64, generator=torch.Generator().manual_seed(1)).cuda()
    with torch.no_grad():
        on_noise = run_to(handle.pixel_model(), handle.module, ["features.2"], noise)["features.2"].mean((0, 2, 3))
    ratios = torch.from_numpy(result.values) / on_noise[channels].cpu()
    assert (ratios >= 10).all(), ratios


def test_pgd_on_the_gpu_fools_the_shapes_net_within_budget_and_leaves_it_untouched():
    handle = load_model("builtin:shapes", "cuda")
    weights = {k: v.clone() for k, v in handle.module.state_dict().items()}
    modes = [m.training for m in handle.module.modules()]
    data = generate_shapes(64, 1)
    result = drive(PGD().run(handle.pixel_model(), data.images, data.labels))
    assert float(result.success.float().mean()) >= 0.95
    assert int((result.linf * 255).round().max()) <= 8
    assert all(torch.equal(v, weights[k]) for k, v in handle.module.state_dict().items())
    assert [m.training for m in handle.module.modules()] == modes


def test_grad_cam_on_the_gpu_matches_the_cpu():
    """Up to the GPU's float arithmetic (convolutions may use TF32, with a 10-bit mantissa)."""
    data = generate_shapes(4, 2)
    maps = {device: [compute_heatmap(load_model("builtin:shapes", device), image, "gradcam").map
                     for image in data.images] for device in ("cpu", "cuda")}
    for on_cpu, on_gpu in zip(maps["cpu"], maps["cuda"]):
        assert np.corrcoef(on_cpu.ravel(), on_gpu.ravel())[0, 1] > 0.999
        assert np.abs(on_cpu - on_gpu).max() <= 1e-2 * np.abs(on_cpu).max()
