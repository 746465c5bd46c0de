"""Concept relevance propagation: channels ranked by relevance, conditional heatmaps that conserve
each channel's relevance, reference images re-ranked by relevance, the model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnexplorer.core.attribution.concepts import concepts_job, references_job
from cnnexplorer.core.dataset.index_types import DatasetIndex, LayerIndex
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing

PRE = Preprocessing(3, (24, 24), (0.5,) * 3, (0.25,) * 3)


def bias_free_handle() -> ModelHandle:
    """Bias-free ReLU net (in-place ReLUs after the explained convolution, as in VGG): ε-LRP conserves exactly."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                        nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 3, bias=False))
    return ModelHandle("test", net.eval(), torch.device("cpu"), PRE, ["a", "b", "c"], "none", False)


def image(seed: int) -> torch.Tensor:
    return torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(seed))


def test_concepts_rank_channels_and_their_conditional_maps_conserve_relevance():
    handle = bias_free_handle()
    state = {k: v.clone() for k, v in handle.module.state_dict().items()}
    found = drive(concepts_job(handle, image(0), "3", top=8, composite="epsilon"))
    values = [c.relevance for c in found.concepts]
    assert values == sorted(values, reverse=True) and len(values) == 8
    assert sum(c.share for c in found.concepts) == pytest.approx(1.0, abs=1e-5)
    assert found.total == pytest.approx(found.heatmap.info["logit"], rel=0.01)
    for concept in found.concepts:
        assert concept.heatmap.info["relevance_sum"] == pytest.approx(concept.relevance, rel=0.01, abs=1e-4)
        assert concept.heatmap.info["channel"] == concept.channel and concept.heatmap.layer == "3"
    strongest = found.concepts[0].heatmap.map
    assert not np.allclose(strongest, found.concepts[-1].heatmap.map)
    assert all(torch.equal(state[k], v) for k, v in handle.module.state_dict().items())
    assert all(not m._forward_hooks and not m._backward_hooks for m in handle.module.modules())
    assert found.to_json()[0] == {"channel": found.concepts[0].channel, "relevance": values[0],
                                  "share": found.concepts[0].share}


def test_concepts_refuse_a_layer_without_channels_and_too_many_concepts():
    handle = bias_free_handle()
    with pytest.raises(UserError, match="unknown layer"):
        drive(concepts_job(handle, image(0), "nope"))
    with pytest.raises(UserError, match="--top"):
        drive(concepts_job(handle, image(0), "3", top=0))


def test_reference_images_rerank_the_index_candidates_by_the_channels_relevance():
    handle = bias_free_handle()
    images = {i: image(10 + i) for i in range(5)}
    layer_index = LayerIndex("3", (12, 12), np.zeros((8, 4), np.float32), np.array([[3, 1, 4, -1]] * 8),
                             np.zeros((8, 4), np.int32), np.zeros((8, 4), np.int32), np.zeros(8), np.zeros(8, np.float32),
                             np.zeros(8), np.linspace(0, 1, 3), np.zeros((8, 2), np.int64))
    index = DatasetIndex("k", "test", "set", 5, 4, {"3": layer_index}, {}, np.zeros(5, np.int64),
                         np.zeros((5, 3), np.int64), np.zeros((5, 3), np.float32), np.zeros((5, 32, 32, 3), np.uint8))
    refs = drive(references_job(handle, index, images.__getitem__, "3", channel=2, composite="epsilon"))
    assert refs.by_activation == (3, 1, 4)
    own = {i: next(c.relevance for c in drive(concepts_job(handle, images[i], "3", top=8, composite="epsilon")).concepts
                   if c.channel == 2) for i in (3, 1, 4)}
    assert [i for i, _ in refs.by_relevance] == sorted(own, key=lambda i: -own[i])
    for i, value in refs.by_relevance:
        assert value == pytest.approx(own[i], rel=1e-4, abs=1e-6)
    with pytest.raises(UserError, match="no record of layer 0"):
        drive(references_job(handle, index, images.__getitem__, "0", channel=2))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 6, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


def test_a_concept_inside_a_residual_block_keeps_only_its_own_relevance():
    """The skip connection around the explained convolution carries relevance too; a concept's map
    is only what passes through its channel (the layer's relevance, passed down from the layer)."""
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), Block(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 3, bias=False))
    handle = ModelHandle("test", net.eval(), torch.device("cpu"), PRE, ["a", "b", "c"], "none", False)
    found = drive(concepts_job(handle, image(1), "2.conv", top=6, composite="epsilon"))
    assert found.total < 0.9 * found.heatmap.info["logit"]  # the skip carries a real part of it
    for concept in found.concepts:
        assert concept.heatmap.info["relevance_sum"] == pytest.approx(concept.relevance, rel=0.01, abs=1e-4)
