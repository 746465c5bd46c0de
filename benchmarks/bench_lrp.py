"""LRP latency against one forward + backward to the input on the same model and input.

- shapes: the built-in demo net at its 64 px input (residual sums in forward code: ``lrp_rules``);
- resnet18: torchvision's (random init) at 224 px (zennit's ResNet canonizer).
The default composite (EpsilonPlusFlat) on both, every composite on resnet18, and zennit's own
attributor (its ``Gradient`` with EpsilonPlusFlat, on the model itself) beside ours on resnet18.
Goal: LRP ÷ forward + backward ≤ 1.5. Median of repeats after a warm-up, all functions in turn in
every round. The last line is JSON.

Where the time goes: zennit's rules recompute each layer's forward with modified weights inside the
backward pass (z⁺ rule: two such forwards, for the positive and negative parts), so a composite
costs about one extra forward and backward per modified forward; copying the module tree and
registering the rules add ~7 % on resnet18.
"""

from __future__ import annotations

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
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_number:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def timings(handle: ModelHandle, composites=("epsilon-plus-flat",), with_zennit: bool = False) -> dict[str, float]:
    pixels = torch.rand(1, *handle.input_size, device=handle.device)
    pixel_model = handle.pixel_model()

    def forward_backward():
        x = pixels.clone().requires_grad_(True)
        torch.autograd.grad(pixel_model(x)[0, 1], x)

    fns = {"forward_backward": forward_backward}
    for name in composites:
        fns[name] = lambda name=name: compute_heatmap(handle, pixels, "lrp", target=1, composite=name)
    if with_zennit:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer

        one_hot = torch.eye(handle.num_classes, device=handle.device)[[1]]
        normalised = ((pixels - pixel_model.mean) / pixel_model.std).detach()

        def zennit_lrp():
            with Gradient(handle.module, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
                attributor(normalised.clone().requires_grad_(True), lambda out: out * one_hot)

        fns["zennit"] = zennit_lrp
    return median_times(fns)


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
        times = timings(handle, COMPOSITES if big else ("epsilon-plus-flat",), with_zennit=big)
        base = times.pop("forward_backward")
        result[name] = {"forward_backward_ms": round(base * 1000, 2), "lrp_ms": round(times["epsilon-plus-flat"] * 1000, 2),
                        "lrp_over_fwdbwd": round(times["epsilon-plus-flat"] / base, 3),
                        "over_fwdbwd": {key: round(value / base, 3) for key, value in times.items()}}
        print(f"{name}: forward+backward {result[name]['forward_backward_ms']} ms, LRP {result[name]['lrp_ms']} ms, "
              f"ratio {result[name]['lrp_over_fwdbwd']} (goal ≤ 1.5); all ÷ forward+backward: {result[name]['over_fwdbwd']}")
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
