"""Model-zoo rows come from torchvision metadata and the listed timm models, fast, with the cache state."""

from __future__ import annotations

import time

import pytest
import torch
import torchvision

from cnnexplorer.core.weights import cache_path
from cnnexplorer.core.zoo import zoo_entries


def test_resnet50_entry_and_cache_flag(hub_dir):
    def resnet50():
        return next(e for e in zoo_entries() if e.arch == "resnet50")

    entry = resnet50()
    assert entry.weights == "IMAGENET1K_V2" and entry.spec == "torchvision:resnet50"
    assert entry.params == 25_557_032
    assert entry.acc1 == pytest.approx(80.858) and entry.acc5 == pytest.approx(95.434)
    assert entry.gmacs == pytest.approx(4.089) and entry.file_size_mb == pytest.approx(97.79, abs=0.01)
    assert not entry.cached

    path = cache_path(torchvision.models.ResNet50_Weights.IMAGENET1K_V2)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placeholder")
    assert resnet50().cached
    assert not next(e for e in zoo_entries() if e.arch == "resnet18").cached


def test_all_classifiers_listed_fast(hub_dir):
    start = time.perf_counter()
    entries = zoo_entries()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    ours = [e for e in entries if e.library == "torchvision"]
    assert [e.arch for e in ours] == sorted(torchvision.models.list_models(module=torchvision.models))
    assert all(e.params > 0 and e.gmacs > 0 and e.acc1 is not None for e in ours)
    timm = [e for e in entries if e.library == "timm"]
    assert {"timm:resnet18", "timm:efficientnet_b0", "timm:convnext_atto", "timm:regnetx_002"} <= {e.spec for e in timm}
    assert all(e.params > 0 and e.gmacs is None and e.acc1 is None for e in timm)
    assert all(isinstance(e.depth, int) and e.depth > 0 for e in entries)


@pytest.mark.parametrize("arch, depth", [("alexnet", 8), ("vgg16", 16), ("googlenet", 22), ("resnet50", 50)])
def test_depth_counts_weight_layers_on_the_main_path_as_the_course_does(arch, depth):
    from cnnexplorer.core.lab.depth import weight_depth
    from cnnexplorer.core.zoo import DEPTHS

    kwargs = {"init_weights": False} if arch == "googlenet" else {}
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(**kwargs)
    assert weight_depth(model, (3, 64, 64)) == DEPTHS[arch] == depth


def test_timm_weights_in_the_hugging_face_cache_are_marked(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    snapshot = tmp_path / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"placeholder")
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("0123abcd")
    cached = {e.spec for e in zoo_entries() if e.cached}
    assert "timm:resnet18" in cached and "timm:resnet50" not in cached
