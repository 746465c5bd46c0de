"""Gradient flow: per-layer gradient norms and update/weight ratios read after backward, without extra passes."""

from __future__ import annotations

import csv

import numpy as np
import torch
from torch import nn

from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.data import open_data
from cnnexplorer.core.training.gradient_flow import FlowRecorder, GradientFlow, GradientLog
from cnnexplorer.core.training.loop import BatchMetrics, train
from cnnexplorer.core.training.transfer import prepare_model


def test_norms_and_ratios_are_those_of_the_gradients_and_the_step():
    """Plain SGD moves w by lr·g, so ‖Δw‖/‖w‖ must be lr·‖g‖/‖w‖; a frozen layer is not a row."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2), nn.Linear(2, 2))
    model[4].requires_grad_(False)
    recorder = FlowRecorder(model, every=1)
    assert recorder.names == ("0", "3")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(4, 1, 8, 8)).square().sum().backward()
    grads = [torch.cat([p.grad.flatten() for p in model[i].parameters()]).norm().item() for i in (0, 3)]
    weights = [torch.cat([p.detach().flatten() for p in model[i].parameters()]).norm().item() for i in (0, 3)]
    recorder.before_step()
    optimizer.step()
    flow = recorder.after_step(1)
    assert np.allclose(flow.grad_norms, grads, rtol=1e-5)
    assert np.allclose(flow.update_ratios, 0.1 * np.array(grads) / np.array(weights), rtol=1e-4)


def test_the_loop_yields_the_flow_every_k_steps_and_it_exports_as_csv(tmp_path):
    handle = load_model("builtin:lenet5", "cpu")
    data = open_data("builtin:shapes", handle.input_size, shapes_epoch=256, shapes_validation=64)
    handle = prepare_model(handle, data.class_names)
    config = TrainConfig(epochs=1, batch_size=32, snapshots=False)
    items = []
    drive(train(handle, data, config, arch="builtin:lenet5", gradient_every=3), items.append)
    flows = [i for i in items if isinstance(i, GradientFlow)]
    steps = [i.step for i in items if isinstance(i, BatchMetrics)]
    assert steps == list(range(1, 9)) and [f.step for f in flows] == [3, 6]
    assert flows[0].layers == ("features.0", "features.3", "features.6", "classifier.0", "classifier.2")
    assert all((f.grad_norms > 0).all() and np.isfinite(f.update_ratios).all() for f in flows)
    log = GradientLog()
    for flow in flows:
        log.add(flow)
    rows = list(csv.DictReader(open(log.write_csv(tmp_path / "g.csv"))))
    assert len(rows) == 2 * 5 and rows[0]["layer"] == "features.0" and rows[-1]["step"] == "6"
    assert float(rows[0]["grad_norm"]) == float(f"{flows[0].grad_norms[0]:.6g}")
