"""LRP latency against one forward + backward to the input on the same model and input.

- shapes: the built-in demo net at its 64 px input (residual sums in forward code: ``lrp_rules``);
- resnet18: torchvision's (random init) at 224 px (zennit's ResNet canonizer).
The default composite (EpsilonPlusFlat) on both, every composite on resnet18, and zennit's own
attributor (its ``Gradient`` with EpsilonPlusFlat, on the model itself) beside ours on resnet18.
Goal: LRP ÷ forward + backward ≤ 1.5. Median of repeats after a warm-up, all functions in turn in
every round. The last line is JSON.

The floor: the z⁺ rule of every convolution needs that convolution once more with W⁺ (its
denominator), so LRP costs at least one forward + backward plus one more forward. ``floor`` times
exactly that (a forward and backward, then a forward without gradients) beside LRP.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time

import cnnexplorer  # noqa: F401 - sets the OpenMP wait policy before torch loads
import torch
import torchvision

from cnnexplorer.core.attribution import compute_heatmap
from cnnexplorer.core.attribution.lrp import COMPOSITES
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import ModelHandle, Preprocessing
from cnnexplorer.core.models import open_model

REPEATS = 7


def median_times(fns: dict, repeats: int = REPEATS) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_number in range(repeats + 1):
        for name, fn in fns.items():
            prepare = getattr(fn, "prepare", None)
            if prepare is not None:
                prepare()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_number:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def timings(handle: ModelHandle, composites=("epsilon-plus-flat",), with_zennit: bool = False) -> dict[str, float]:
    """Each LRP variant ÷ forward + backward, timed in its own block of rounds beside forward + backward
    (a user explains with one composite at a time; the model's prepared shadow is kept between calls),
    and the first call on a model (preparing its shadow: a fresh copy of the model every round)."""
    pixels = torch.rand(1, *handle.input_size, device=handle.device)
    pixel_model = handle.pixel_model()

    def forward_backward():
        x = pixels.clone().requires_grad_(True)
        torch.autograd.grad(pixel_model(x)[0, 1], x)

    def floor():
        forward_backward()
        with torch.no_grad():
            pixel_model(pixels)

    fresh = {"handle": handle}

    def first_call():
        compute_heatmap(fresh["handle"], pixels, "lrp", target=1)

    first_call.prepare = lambda: fresh.update(handle=dataclasses.replace(handle, module=copy.deepcopy(handle.module)))
    variants = {name: lambda name=name: compute_heatmap(handle, pixels, "lrp", target=1, composite=name)
                for name in composites}
    variants["floor"] = floor
    variants["first call"] = first_call
    if with_zennit:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer

        one_hot = torch.eye(handle.num_classes, device=handle.device)[[1]]
        normalised = ((pixels - pixel_model.mean) / pixel_model.std).detach()

        def zennit_lrp():
            with Gradient(handle.module, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
                attributor(normalised.clone().requires_grad_(True), lambda out: out * one_hot)

        variants["zennit"] = zennit_lrp
    ratios, base = {}, []
    for name, fn in variants.items():
        times = median_times({"forward_backward": forward_backward, name: fn})
        ratios[name] = times[name] / times["forward_backward"]
        base.append(times["forward_backward"])
    return {"forward_backward": statistics.median(base), **ratios}


def main() -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    shapes = drive(open_model("builtin:shapes", device))
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    pre = Preprocessing(3, (224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    resnet = ModelHandle("torchvision:resnet18:none", model, device, pre, [str(i) for i in range(1000)], "none", False)
    result = {"device": device.type, "threads": torch.get_num_threads()}
    for name, handle in (("shapes", shapes), ("resnet18", resnet)):
        big = name == "resnet18"
        ratios = timings(handle, COMPOSITES if big else ("epsilon-plus-flat",), with_zennit=big)
        base = ratios.pop("forward_backward")
        result[name] = {"forward_backward_ms": round(base * 1000, 2),
                        "lrp_over_fwdbwd": round(ratios["epsilon-plus-flat"], 3),
                        "floor_over_fwdbwd": round(ratios.pop("floor"), 3),
                        "over_fwdbwd": {key: round(value, 3) for key, value in ratios.items()}}
        print(f"{name}: forward+backward {result[name]['forward_backward_ms']} ms, LRP ÷ that "
              f"{result[name]['lrp_over_fwdbwd']} (goal ≤ 1.5, floor {result[name]['floor_over_fwdbwd']}); "
              f"all ÷ forward+backward: {result[name]['over_fwdbwd']}")
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
